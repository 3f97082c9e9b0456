/** AckedPublisher: stream sequences from the server's acknowledgements, failures per message. */
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { AckedPublisher } from "../src/live/nats_io.ts";
import { startNatsServer } from "./_nats_server.ts";

Deno.test("AckedPublisher settles each publication by its own acknowledgement", async (t) => {
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

    await t.step("a subject no stream takes is rejected, the others still resolve", async () => {
      const r = await pub.publishAll([
        { subject: "nowhere.x", data: "x", msgID: "n-1" },
        { subject: "s.b", data: "y", msgID: "n-2" },
      ], 5_000);
      assert.equal(r[0].status, "rejected");
      assert.deepEqual(r[1], { status: "fulfilled", value: 4 });
    });
    pub.close();
  } finally {
    await nc.close();
  }
});
