/**
 * The KV checkpoint store against a real nats-server: `load` of single keys (idle-key eviction's
 * reload) reads what `save` wrote under the partition's prefix, and remembers the revision, so the
 * next write of that key is an update that another writer's change still makes a conflict. Each
 * case runs with the writes one request each and batched (`KvBatchWriter`).
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import type { Checkpoint } from "../schemas/messages.ts";
import {
  CheckpointConflictError,
  InvalidCheckpointError,
  KvCheckpointStore,
} from "../src/nats/checkpoint_store.ts";
import { KvBatchWriter } from "../src/nats/kv_writer.ts";
import { fakeHeadState } from "./helpers/live_fakes.ts";
import { startNatsServer } from "./helpers/nats_server.ts";

const cp = (key: string, last_seq: number): Checkpoint => ({
  last_seq,
  state: fakeHeadState(key, last_seq),
  written_at: "2026-01-01T00:00:00Z",
});

for (const batched of [false, true]) {
  Deno.test(`checkpoint store (${batched ? "batched" : "one request each"}): load single keys, then write them revision-checked`, async (t) => {
    await using srv = await startNatsServer();
    const nc = await connect({ servers: srv.url });
    const writer = batched ? new KvBatchWriter(nc) : undefined;
    try {
      const kv = await new Kvm(nc).create("test_checkpoints");
      const first = new KvCheckpointStore(kv, () => {}, { keyPrefix: "p3.", writer });
      await first.save([cp("site.pump-7", 4), cp("b", 5)]);

      await t.step("load returns the checkpoints of the keys that have one", async () => {
        const again = new KvCheckpointStore(kv, () => {}, { keyPrefix: "p3.", writer });
        assert.deepEqual(await again.load(["site.pump-7", "missing"]), [cp("site.pump-7", 4)]);
        // Under another prefix (another partition) nothing is found.
        const other = new KvCheckpointStore(kv, () => {}, { keyPrefix: "p4.", writer });
        assert.deepEqual(await other.load(["site.pump-7"]), []);
      });

      await t.step(
        "a loaded key is updated at its revision; a stale writer conflicts",
        async () => {
          const again = new KvCheckpointStore(kv, () => {}, { keyPrefix: "p3.", writer });
          await again.load(["site.pump-7"]);
          await again.save([cp("site.pump-7", 9)]);
          assert.deepEqual(await again.load(["site.pump-7"]), [cp("site.pump-7", 9)]);
          await assert.rejects(first.save([cp("site.pump-7", 6)]), CheckpointConflictError);
        },
      );

      await t.step(
        "the same checkpoint again without its revision (a lost reply) is kept",
        async () => {
          // A fresh store expects no entry: its write is refused, and the entry read back is this
          // very checkpoint (as after our own write whose acknowledgement was lost).
          const fresh = new KvCheckpointStore(kv, () => {}, { keyPrefix: "p3.", writer });
          await fresh.save([cp("b", 5), cp("new-key", 1)]);
          await fresh.save([cp("b", 7)]);
          assert.deepEqual(await fresh.load(["b", "new-key"]), [cp("b", 7), cp("new-key", 1)]);
        },
      );

      await t.step("a deleted entry is written again", async () => {
        const fresh = new KvCheckpointStore(kv, () => {}, { keyPrefix: "p3.", writer });
        await kv.delete("p3.new-key");
        await fresh.save([cp("new-key", 3)]);
        assert.deepEqual(await fresh.load(["new-key"]), [cp("new-key", 3)]);
      });

      await t.step("an invalid entry is an error at once, not retried", async () => {
        await kv.put("p3.bad", JSON.stringify({ last_seq: "x" }));
        await assert.rejects(
          first.load(["bad"]),
          (e: unknown) => e instanceof InvalidCheckpointError && e.code === "invalid_checkpoint",
        );
      });
    } finally {
      writer?.close();
      await nc.close();
    }
  });
}

Deno.test("checkpoint store: loadAll hands every checkpoint of its prefix over in chunks (deleted ones left out), revisions remembered, its reader removed", async () => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  try {
    const kv = await new Kvm(nc).create("test_checkpoints_all");
    const writer = new KvBatchWriter(nc);
    const keys = Array.from({ length: 1_100 }, (_, i) => `k${i}`);
    await new KvCheckpointStore(kv, () => {}, { keyPrefix: "p1.", writer })
      .save(keys.map((k, i) => cp(k, i + 1)));
    await new KvCheckpointStore(kv, () => {}, { keyPrefix: "p2.", writer }).save([cp("other", 1)]);
    // A deleted entry (its delete marker is the key's last value) is no checkpoint.
    await kv.put("p1.gone", JSON.stringify(cp("gone", 1)));
    await kv.delete("p1.gone");

    const store = new KvCheckpointStore(kv, () => {}, { keyPrefix: "p1." });
    const chunks: number[] = [];
    const seen = new Map<string, number>();
    const n = await store.loadAll((cps) => {
      chunks.push(cps.length);
      for (const c of cps) seen.set(c.state.key, c.last_seq);
      return Promise.resolve();
    });
    assert.equal(n, keys.length);
    assert.ok(chunks.length > 1 && chunks.every((c) => c > 0 && c < keys.length), `${chunks}`);
    assert.deepEqual([...seen.keys()].sort(), [...keys].sort());
    for (const [k, s] of seen) assert.equal(s, Number(k.slice(1)) + 1);
    // Each key's revision was remembered: its next write is an update, not a conflict.
    await store.save([cp("k7", 100)]);
    assert.deepEqual(await store.load(["k7"]), [cp("k7", 100)]);
    // The consumer it read through is gone.
    const jsm = await jetstreamManager(nc);
    assert.deepEqual(await jsm.consumers.list("KV_test_checkpoints_all").next(), []);
  } finally {
    await nc.close();
  }
});
