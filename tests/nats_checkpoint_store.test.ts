/**
 * The KV checkpoint store against a real nats-server: `load` of single keys (idle-key eviction's
 * reload) reads what `save` wrote under the partition's prefix, and remembers the revision, so the
 * next write of that key is an update that another writer's change still makes a conflict.
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import type { Checkpoint } from "../schemas/messages.ts";
import {
  CheckpointConflictError,
  InvalidCheckpointError,
  KvCheckpointStore,
} from "../src/nats/checkpoint_store.ts";
import { fakeHeadState } from "./helpers/live_fakes.ts";
import { startNatsServer } from "./helpers/nats_server.ts";

const cp = (key: string, last_seq: number): Checkpoint => ({
  last_seq,
  state: fakeHeadState(key, last_seq),
  written_at: "2026-01-01T00:00:00Z",
});

Deno.test("checkpoint store: load single keys, then write them revision-checked", async (t) => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  try {
    const kv = await new Kvm(nc).create("test_checkpoints");
    const first = new KvCheckpointStore(kv, () => {}, { keyPrefix: "p3." });
    await first.save([cp("site.pump-7", 4), cp("b", 5)]);

    await t.step("load returns the checkpoints of the keys that have one", async () => {
      const again = new KvCheckpointStore(kv, () => {}, { keyPrefix: "p3." });
      assert.deepEqual(await again.load(["site.pump-7", "missing"]), [cp("site.pump-7", 4)]);
      // Under another prefix (another partition) nothing is found.
      const other = new KvCheckpointStore(kv, () => {}, { keyPrefix: "p4." });
      assert.deepEqual(await other.load(["site.pump-7"]), []);
    });

    await t.step("a loaded key is updated at its revision; a stale writer conflicts", async () => {
      const again = new KvCheckpointStore(kv, () => {}, { keyPrefix: "p3." });
      await again.load(["site.pump-7"]);
      await again.save([cp("site.pump-7", 9)]);
      assert.deepEqual(await again.load(["site.pump-7"]), [cp("site.pump-7", 9)]);
      await assert.rejects(first.save([cp("site.pump-7", 6)]), CheckpointConflictError);
    });

    await t.step("an invalid entry is an error at once, not retried", async () => {
      await kv.put("p3.bad", JSON.stringify({ last_seq: "x" }));
      await assert.rejects(
        first.load(["bad"]),
        (e: unknown) => e instanceof InvalidCheckpointError && e.code === "invalid_checkpoint",
      );
    });
  } finally {
    await nc.close();
  }
});
