/**
 * The nats.js internals that `src/nats/client_internals.ts` relies on, checked against the
 * installed client and a real nats-server: a client upgrade that breaks one fails here, by name,
 * rather than somewhere in the live worker.
 */
import assert from "node:assert/strict";
import { AckPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import * as internal from "@nats-io/nats-core/internal";
import {
  checkOptions,
  connectWithTransport,
  DataBuffer,
  deferred,
  extractProtocolMessage,
  fetchWithCallback,
  INFO,
  kvReadTarget,
  kvWriteSubject,
  publishWithHeaderFrame,
} from "../src/nats/client_internals.ts";
import { DenoTcpTransport } from "../src/nats/deno_transport.ts";
import { startNatsServer } from "./helpers/nats_server.ts";

Deno.test("the internal symbols client_internals.ts uses exist with the expected shapes", () => {
  assert.equal(typeof internal.NatsConnectionImpl, "function", "NatsConnectionImpl");
  assert.equal(
    typeof internal.NatsConnectionImpl.connect,
    "function",
    "NatsConnectionImpl.connect",
  );
  assert.equal(typeof internal.setTransportFactory, "function", "setTransportFactory");
  assert.equal(typeof checkOptions, "function", "checkOptions");
  assert.equal(typeof deferred, "function", "deferred");
  assert.equal(typeof extractProtocolMessage, "function", "extractProtocolMessage");
  assert.ok(INFO instanceof RegExp, "INFO is a RegExp");
  // What deno_transport.ts does with them when the server's INFO arrives.
  const buf = new DataBuffer();
  const line = 'INFO {"server_id":"x","max_payload":1048576}\r\n';
  buf.fill(new TextEncoder().encode(line + "PING\r\n"));
  const pm = extractProtocolMessage(buf.peek());
  assert.equal(pm, line);
  const m = INFO.exec(pm);
  assert.ok(m !== null, "INFO matches the server's INFO line");
  assert.deepEqual(JSON.parse(m[1]), { server_id: "x", max_payload: 1048576 });
  const d = deferred<number>();
  d.resolve(7);
  return d.then((v) => assert.equal(v, 7));
});

Deno.test("against a nats-server, each internal use works as client_internals.ts says", async (t) => {
  await using server = await startNatsServer();
  let made = 0;
  const nc: NatsConnection = await connectWithTransport({ servers: server.url }, () => {
    made++;
    return new DenoTcpTransport();
  });
  try {
    await t.step("connectWithTransport connects on the transport its factory makes", async () => {
      assert.ok(made >= 1, "expected the transport factory to be used");
      const sub = nc.subscribe("echo", { max: 1, callback: (_e, m) => void m.respond(m.data) });
      const r = await nc.request("echo", "ping", { timeout: 5_000 });
      sub.unsubscribe();
      assert.equal(r.string(), "ping");
    });

    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "INTERNALS", subjects: ["internals.>"] });

    await t.step("publishWithHeaderFrame: the header block arrives as headers", async () => {
      const enc = new TextEncoder();
      const frame = "NATS/1.0\r\nNats-Msg-Id: hf-1\r\nX-Mvn-Test: a value\r\n\r\n";
      // Views into one larger buffer, as the acked publisher passes them.
      const bytes = enc.encode(`junk${frame}payload-1junk`);
      const headers = bytes.subarray(4, 4 + frame.length);
      const data = bytes.subarray(4 + frame.length, 4 + frame.length + "payload-1".length);
      const got = new Promise<{ id?: string; x?: string; data: string; reply?: string }>((r) => {
        nc.subscribe("core.hf", {
          max: 1,
          callback: (_e, m) =>
            r({
              id: m.headers?.get("Nats-Msg-Id"),
              x: m.headers?.get("X-Mvn-Test"),
              data: m.string(),
              reply: m.reply,
            }),
        });
      });
      await nc.flush();
      publishWithHeaderFrame(nc, "core.hf", data, "reply.hf", headers);
      assert.deepEqual(await got, {
        id: "hf-1",
        x: "a value",
        data: "payload-1",
        reply: "reply.hf",
      });
    });

    await t.step("publishWithHeaderFrame: JetStream reads its Nats-Msg-Id", async () => {
      const enc = new TextEncoder();
      const acks: string[] = [];
      const inbox = "acks.hf";
      const sub = nc.subscribe(inbox, { callback: (_e, m) => void acks.push(m.string()) });
      const frame = enc.encode("NATS/1.0\r\nNats-Msg-Id: js-1\r\n\r\n");
      publishWithHeaderFrame(nc, "internals.a", enc.encode("one"), inbox, frame);
      publishWithHeaderFrame(nc, "internals.a", enc.encode("one again"), inbox, frame);
      const deadline = Date.now() + 10_000;
      while (acks.length < 2 && Date.now() < deadline) await nc.flush();
      sub.unsubscribe();
      assert.equal(acks.length, 2, "expected two acknowledgements");
      assert.deepEqual(JSON.parse(acks[0]), { stream: "INTERNALS", seq: 1 });
      assert.deepEqual(JSON.parse(acks[1]), { stream: "INTERNALS", seq: 1, duplicate: true });
      const stored = await jsm.streams.getMessage("INTERNALS", { seq: 1 });
      assert.equal(stored?.header.get("Nats-Msg-Id"), "js-1");
      assert.equal(stored?.string(), "one");
    });

    await t.step("fetchWithCallback hands every message to the callback, in order", async () => {
      const js = jetstream(nc);
      for (let i = 2; i <= 4; i++) await js.publish("internals.b", `m${i}`);
      await jsm.consumers.add("INTERNALS", {
        durable_name: "internals",
        ack_policy: AckPolicy.Explicit,
      });
      const consumer = await js.consumers.get("INTERNALS", "internals");
      const seen: number[] = [];
      const it = await fetchWithCallback(
        consumer,
        { max_messages: 4, expires: 5_000 },
        (m: JsMsg) => {
          seen.push(m.seq);
          m.ack();
        },
      );
      const ended = await it.closed();
      assert.ok(!(ended instanceof Error), `expected the request to end cleanly, found ${ended}`);
      assert.deepEqual(seen, [1, 2, 3, 4], "expected the callback option to be honoured");
    });
    await t.step("kvWriteSubject: the subject kv.put stores a key under", async () => {
      const kv = await new Kvm(nc).create("internals_kv", { history: 1 });
      assert.equal(kvWriteSubject(kv, "p1.k"), "$KV.internals_kv.p1.k");
      // A request: its reply is the stream's acknowledgement, sent once the entry is stored.
      await nc.request(kvWriteSubject(kv, "p1.k"), "v", { timeout: 5_000 });
      assert.equal((await kv.get("p1.k"))?.string(), "v");
    });
    await t.step("kvReadTarget: the bucket's stream and the subjects of a key filter", async () => {
      const kv = await new Kvm(nc).create("internals_kv", { history: 1 });
      const { js, stream, filterSubject } = kvReadTarget(kv, "p1.>");
      assert.equal(stream, "KV_internals_kv");
      assert.equal(filterSubject, "$KV.internals_kv.p1.>");
      assert.equal((await (await js.jetstreamManager()).streams.info(stream)).config.name, stream);
    });
  } finally {
    await nc.close();
  }
});
