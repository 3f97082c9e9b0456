/** AckedPublisher: stream sequences from the server's acknowledgements; a call stored whole or retried. */
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { AckedPublisher, type Publication } from "../src/nats/acked_publisher.ts";
import { startNatsServer } from "./helpers/nats_server.ts";

Deno.test("AckedPublisher settles a call whole: every sequence, or every publication rejected", async (t) => {
  await using server = await startNatsServer();
  const nc = await connect({ servers: server.url });
  try {
    await (await jetstreamManager(nc)).streams.add({ name: "S", subjects: ["s.>"] });
    const pub = new AckedPublisher(nc);

    await t.step("acked publications resolve with consecutive stream sequences", async () => {
      const pubs = [0, 1, 2].map((i) => ({ subject: "s.a", data: `m${i}`, msgID: `id-${i}` }));
      const r = await pub.publishAll(pubs, 5_000);
      assert.deepEqual(r.map((x) => x.status === "fulfilled" ? x.value : -1), [1, 2, 3]);
    });

    await t.step("a duplicate Nats-Msg-Id is acknowledged without a new message", async () => {
      const [r] = await pub.publishAll([{ subject: "s.a", data: "again", msgID: "id-1" }], 5_000);
      assert.equal(r.status, "fulfilled");
      const info = await (await jetstreamManager(nc)).streams.info("S");
      assert.equal(info.state.messages, 3);
    });

    await t.step(
      "a subject no stream takes rejects the whole call; its retry stores the rest once",
      async () => {
        const r = await pub.publishAll([
          { subject: "nowhere.x", data: "x", msgID: "n-1" },
          { subject: "s.b", data: "y", msgID: "n-2" },
        ], 5_000);
        // Which acknowledgement was whose is not known once one failed: nothing counts as stored.
        assert.deepEqual(r.map((x) => x.status), ["rejected", "rejected"]);
        assert.match(String((r[0] as PromiseRejectedResult).reason), /status 503/);
        const [again] = await pub.publishAll([{ subject: "s.b", data: "y", msgID: "n-2" }], 5_000);
        // Stored by the first call (sequence 4), acknowledged as its duplicate now.
        assert.deepEqual(again, { status: "fulfilled", value: 4 });
        const info = await (await jetstreamManager(nc)).streams.info("S");
        assert.equal(info.state.messages, 4);
      },
    );
    await t.step(
      "an acknowledged publication is rejected too when its call times out",
      async () => {
        // Taken by a core subscriber that never answers: only one of the two is acknowledged.
        const mute = nc.subscribe("mute.>");
        await nc.flush();
        const r = await pub.publishAll([
          { subject: "s.t", data: "stored", msgID: "t-1" },
          { subject: "mute.t", data: "unanswered", msgID: "t-2" },
        ], 300);
        mute.unsubscribe();
        assert.deepEqual(r.map((x) => x.status), ["rejected", "rejected"]);
        assert.match(String((r[0] as PromiseRejectedResult).reason), /within 300 ms/);
        const [again] = await pub.publishAll(
          [{ subject: "s.t", data: "stored", msgID: "t-1" }],
          5_000,
        );
        assert.deepEqual(again, { status: "fulfilled", value: 5 });
      },
    );
    await t.step(
      "payloads and headers arrive byte for byte, ASCII or not, mixed in one call",
      async () => {
        const pubs: Publication[] = [
          { subject: "s.c", data: '{"key":"plain","v":1}', msgID: "c-1" },
          { subject: "s.c", data: '{"key":"närrisch ✓","v":2}', msgID: "c-2" },
          {
            subject: "s.c",
            data: new Uint8Array([0, 255, 10, 13]),
            msgID: "c-3",
            headers: { "X-A": "é" },
          },
          { subject: "s.c", data: "", msgID: "c-4", headers: { "Content-Type": "text/plain" } },
        ];
        const r = await pub.publishAll(pubs, 5_000);
        assert.ok(r.every((x) => x.status === "fulfilled"), JSON.stringify(r));
        for (let i = 0; i < pubs.length; i++) {
          const seq = (r[i] as PromiseFulfilledResult<number>).value;
          const m = await (await jetstreamManager(nc)).streams.getMessage("S", { seq });
          assert.ok(m !== null, `expected stored message ${seq}`);
          const want = pubs[i].data;
          assert.deepEqual(
            m.data,
            typeof want === "string" ? new TextEncoder().encode(want) : want,
          );
          assert.equal(m.header.get("Nats-Msg-Id"), pubs[i].msgID);
          for (const [k, v] of Object.entries(pubs[i].headers ?? {})) {
            assert.equal(m.header.get(k), v);
          }
        }
      },
    );

    await t.step("a header value with CR or LF rejects that publication only", async () => {
      const r = await pub.publishAll([
        { subject: "s.d", data: "ok", msgID: "d-1" },
        { subject: "s.d", data: "bad", msgID: "d-2\r\nX-Evil: 1" },
      ], 5_000);
      assert.equal(r[0].status, "fulfilled");
      assert.equal(r[1].status, "rejected");
      assert.match(String((r[1] as PromiseRejectedResult).reason), /CR or LF/);
    });
    await t.step(
      "an error acknowledgement (wrong expected last sequence) is a rejection",
      async () => {
        const r = await pub.publishAll([{
          subject: "s.e",
          data: "x",
          msgID: "e-1",
          headers: { "Nats-Expected-Last-Sequence": "1" },
        }], 5_000);
        assert.equal(r[0].status, "rejected");
        assert.match(String((r[0] as PromiseRejectedResult).reason), /wrong last sequence/);
      },
    );
    pub.close();
  } finally {
    await nc.close();
  }
});

Deno.test("AckedPublisher fails what is unacknowledged when the connection is re-established", async () => {
  await using server = await startNatsServer();
  const nc = await connect({
    servers: server.url,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
  });
  // A subscriber that takes the messages and never answers: the acknowledgements never come.
  const silent = await connect({ servers: server.url, maxReconnectAttempts: -1 });
  try {
    silent.subscribe("mute.>");
    await silent.flush();
    const pub = new AckedPublisher(nc);
    const pending = pub.publishAll([
      { subject: "mute.a", data: "x", msgID: "r-1" },
      { subject: "mute.b", data: "y", msgID: "r-2" },
    ], 60_000);
    await nc.flush();
    await server.restart();
    const r = await pending;
    assert.deepEqual(r.map((x) => x.status), ["rejected", "rejected"]);
    // Settled by the reconnect, not by the call's own 60 s timeout.
    for (const x of r) {
      assert.match(String((x as PromiseRejectedResult).reason), /connection re-established/);
    }
  } finally {
    await silent.close();
    await nc.close();
  }
});
