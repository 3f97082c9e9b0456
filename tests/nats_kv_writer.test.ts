/**
 * The batched KV writer against a real nats-server: each write's own outcome (its revision, or a
 * refusal told apart as a wrong last sequence), the entries as `kv.get` reads them, and the
 * subject helper it publishes to.
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { kvWriteSubject } from "../src/nats/client_internals.ts";
import { encodeEach, KvBatchWriter, type KvWriteResult } from "../src/nats/kv_writer.ts";
import { startNatsServer } from "./helpers/nats_server.ts";

Deno.test("encodeEach: views of one encode for ASCII, one encode each otherwise", () => {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  for (const texts of [["a", "", "bcd"], ["é", "x", "日本"], []]) {
    assert.deepEqual(encodeEach(enc, texts).map((b) => dec.decode(b)), texts);
  }
});

Deno.test("KV batch writer: revisions, refusals one by one, entries as kv.put leaves them", async (t) => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  const writer = new KvBatchWriter(nc);
  try {
    const kv = await new Kvm(nc).create("test_writer", { history: 1 });

    await t.step("the subject is kv.put's; an invalid key throws as kv.put does", async () => {
      assert.equal(kvWriteSubject(kv, "p1.a"), "$KV.test_writer.p1.a");
      assert.throws(() => kvWriteSubject(kv, "bad key"));
      await assert.rejects(kv.put("bad key", "x"));
    });

    await t.step("creates (expect 0) and plain puts get their revisions", async () => {
      const r = await writer.writeAll(kv, [
        { key: "a", data: "1", expect: 0 },
        { key: "b", data: new TextEncoder().encode("zwei") },
        { key: "c", data: "drei, ü", expect: 0 },
      ], 5_000);
      assert.ok(r.every((x) => x.ok), JSON.stringify(r));
      for (
        const [key, value, i] of [["a", "1", 0], ["b", "zwei", 1], ["c", "drei, ü", 2]] as const
      ) {
        const e = await kv.get(key);
        assert.equal(e?.string(), value);
        const ri: KvWriteResult = r[i];
        assert.equal(ri.ok && ri.revision, e?.revision);
      }
    });

    await t.step("a wrong expected revision refuses that write only", async () => {
      const a = await kv.get("a");
      const r = await writer.writeAll(kv, [
        { key: "a", data: "stale", expect: (a?.revision ?? 0) + 100 },
        { key: "c", data: "exists", expect: 0 },
        { key: "a", data: "fresh", expect: a?.revision ?? 0 },
        { key: "bad key", data: "x" },
      ], 5_000);
      assert.deepEqual(r.map((x) => x.ok ? "ok" : x.wrongLast ? "wrong last" : "error"), [
        "wrong last",
        "wrong last",
        "ok",
        "error",
      ]);
      assert.equal((await kv.get("a"))?.string(), "fresh");
      assert.equal((await kv.get("c"))?.string(), "drei, ü");
    });

    await t.step("an empty call resolves at once", async () => {
      assert.deepEqual(await writer.writeAll(kv, [], 5_000), []);
    });
  } finally {
    writer.close();
    await nc.close();
  }
});
