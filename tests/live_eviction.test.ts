/**
 * Checkpoint writes and idle-key eviction in the learning loop, with in-memory I/O
 * (`tests/helpers/live_fakes.ts`): a barrier rewrites only keys that learned; a key dropped from
 * memory and reloaded from its checkpoint ends exactly as one never dropped, with every
 * observation learned once; keys restored at start-up are set aside until they are seen again;
 * and against a real server (the worker reloads keys from KV, also after a restart).
 */
import assert from "node:assert/strict";
import type { Checkpoint } from "../schemas/messages.ts";
import { LiveLoop } from "../src/live/loop.ts";
import { LiveMetrics } from "../src/live/metrics.ts";
import {
  ArraySource,
  fakeCheckpoint,
  MemorySink,
  MemoryStore,
  setup,
  trickle,
} from "./helpers/live_fakes.ts";
import { cpuEngine } from "./helpers/learning.ts";
import { connect } from "@nats-io/transport-node";
import { startWorker } from "../src/live/worker.ts";
import {
  assertExactlyOnce,
  inputs,
  liveConfig,
  publishInBatches,
  waitForScores,
} from "./helpers/live_worker.ts";
import { startNatsServer, waitFor } from "./helpers/nats_server.ts";
import { gaussian, rng } from "./helpers/synthetic.ts";

/** Stores what a KV bucket would: the checkpoint's JSON, read back as a new object. */
class JsonStore extends MemoryStore {
  override save(items: readonly Checkpoint[]): Promise<void> {
    return super.save(items.map((c) => JSON.parse(JSON.stringify(c)) as Checkpoint));
  }
}

/** A loop over a real cpu engine (d = 2), one observation per batch, a barrier after each. */
async function realLoop(evictIdleMs: number | undefined) {
  const events: string[] = [];
  const engine = await cpuEngine({ dim: 2, warmup: 4 });
  const source = new ArraySource(events);
  const sink = new MemorySink(events);
  const store = new JsonStore(events);
  const metrics = new LiveMetrics();
  const loop = new LiveLoop(engine, source, sink, store, {
    dim: 2,
    // One message per batch: both loops see the same batches whatever the timing.
    batch: 1,
    maxWaitMs: 5,
    paramsEveryMs: 0,
    checkpointEveryMs: 0,
    obsPrefix: "telemetry.obs.",
    maxMessageBytes: 10_000,
    inputStream: "TELEMETRY",
    alarmArmedFrom: 5,
    metrics,
    log: () => {},
    ...(evictIdleMs !== undefined ? { evictIdleMs } : {}),
  });
  await loop.init();
  const done = loop.run();
  /** Stops the loop once everything pulled is processed, checkpointed and acked. */
  const finish = async () => {
    await source.close();
    loop.stop();
    await done;
  };
  return {
    events,
    source,
    sink,
    store,
    metrics,
    loop,
    finish,
    async [Symbol.asyncDispose]() {
      await finish().finally(() => engine.close());
    },
  };
}

const acked = (events: readonly string[], seq: number) => events.includes(`ack ${seq}`);

Deno.test("checkpoint writes and idle-key eviction", async (t) => {
  await t.step("a barrier rewrites only the keys that learned since their checkpoint", async () => {
    const { events, source, store, loop } = setup();
    await loop.init();
    const done = loop.run();
    try {
      source.add(1, "a", "[1,1]");
      source.add(2, "b", "[2,2]");
      await waitFor("messages 1 and 2 acked", () => acked(events, 1) && acked(events, 2));
      // b's message 2 again (a redelivery: scored, not learned) with a's new one.
      source.add(2, "b", "[2,2]");
      source.add(3, "a", "[3,3]");
      await waitFor("message 3 acked", () => acked(events, 3));
    } finally {
      await source.close();
      loop.stop();
      await done;
    }
    assert.deepEqual(events.filter((e) => e.startsWith("checkpoint")), [
      "checkpoint a@1",
      "checkpoint b@2",
      "checkpoint a@3",
    ]);
    // b's checkpoint is the one written with its last learned message: still exact.
    assert.equal(store.saved.get("b")?.last_seq, 2);
    assert.equal(store.saved.get("b")?.state.observations, 1);
  });

  await t.step(
    "with eviction on, restored keys are set aside once their parameters are out, and come back from their checkpoints",
    async () => {
      const cp = fakeCheckpoint;
      // Idle for a minute before a sweep would drop a key: only start-up sets them aside here.
      const { events, engine, source, sink, store, loop } = setup(
        [cp("a", 3, 2), cp("b", 2, 1), cp("c", 5, 4)],
        4,
        0,
        "row",
        undefined,
        60_000,
      );
      assert.equal(await loop.init(), 3);
      assert.deepEqual(await loop.withEngine((e) => e.keys()), []);
      assert.equal(loop.lastApplied.size, 0);
      // Each restored key's parameters published once, from its checkpoint's state.
      assert.deepEqual(
        sink.params.map((p) => [p.key, p.observations]).sort(),
        [["a", 2], ["b", 1], ["c", 4]],
      );
      const done = loop.run();
      try {
        source.add(1, "a", "[1,1]"); // at or below a's checkpoint: scored, not learned
        source.add(6, "a", "[6,6]");
        source.add(7, "c", "[7,7]");
        await waitFor("message 7 acked", () => acked(events, 7));
      } finally {
        await source.close();
        loop.stop();
        await done;
      }
      assert.deepEqual(engine.learnedRows, ["a:6", "c:7"]);
      assert.equal(sink.scores.length, 3);
      assert.ok(!events.some((e) => e.startsWith("load ") && e.includes("b")), "b stays out");
      assert.deepEqual([store.saved.get("a")?.last_seq, store.saved.get("a")?.state.observations], [
        6,
        3,
      ]);
      assert.deepEqual([store.saved.get("c")?.last_seq, store.saved.get("c")?.state.observations], [
        7,
        5,
      ]);
      assert.equal(store.saved.get("b")?.last_seq, 2);
    },
  );

  await t.step(
    "keys evicted and reloaded while messages flow: every message scored, each learned once",
    async () => {
      // 20 keys, a message every ~2 ms, barriers every 10 ms, keys idle for 1 ms evicted: keys
      // leave and come back all along, racing batches in every state.
      const { events, engine, source, sink, store, loop } = setup([], 8, 10, "row", undefined, 1);
      await loop.init();
      const done = loop.run();
      try {
        await trickle(source, 200, (s) => `k${s % 20}`);
        // However slow the machine: some key is out before the second half brings them all back.
        await waitFor(
          "a key evicted",
          async () => (await loop.withEngine((e) => e.keys())).length < 20,
        );
        for (let s = 201; s <= 400; s++) {
          source.add(s, `k${s % 20}`, `[${s},1]`);
          await new Promise((r) => setTimeout(r, 2));
        }
        await waitFor("message 400 acked", () => acked(events, 400));
      } finally {
        await source.close();
        loop.stop();
        await done;
      }
      assert.ok(events.some((e) => e.startsWith("load ")), "some key was reloaded");
      assert.deepEqual(
        engine.learnedRows.map((r) => Number(r.split(":")[1])).sort((x, y) => x - y),
        Array.from({ length: 400 }, (_, i) => i + 1),
      );
      assert.deepEqual(
        sink.scores.map((s) => s.record.stream_seq).sort((x, y) => x - y),
        Array.from({ length: 400 }, (_, i) => i + 1),
      );
      // Each key's last checkpoint: its 20 observations, up to its last message (380 + i).
      for (let i = 0; i < 20; i++) {
        const c = store.saved.get(`k${i}`);
        assert.equal(c?.state.observations, 20, `k${i}`);
        assert.equal(c?.last_seq, i === 0 ? 400 : 380 + i, `k${i}`);
      }
    },
  );

  await t.step(
    "keys evicted and reloaded end as keys never evicted; nothing lost or learned twice",
    async () => {
      // Two keys, 40 messages: a calm start, a loud stretch of a (an alarm opens), calm again
      // (it closes); one redelivery of an early message of a after it was evicted.
      const g = gaussian(rng(7));
      const bodies: [string, string][] = [];
      for (let s = 1; s <= 40; s++) {
        const key = s % 2 === 0 ? "b" : "a";
        const loud = key === "a" && s >= 15 && s <= 21;
        const x = loud ? 40 + g() : g();
        bodies.push([key, `[${x},${g()}]`]);
      }
      type Run = {
        states: unknown[];
        checkpoints: unknown[];
        records: unknown[];
        alarms: unknown[];
        metrics: LiveMetrics;
      };
      const runs: Run[] = [];
      for (const evict of [undefined, 0]) {
        await using r = await realLoop(evict);
        const feed = async (from: number, to: number) => {
          for (let s = from; s <= to; s++) r.source.add(s, ...bodies[s - 1]);
          await waitFor(`message ${to} acked`, () => acked(r.events, to));
        };
        const gone = async () => {
          if (evict === undefined) return;
          await waitFor(
            "every key evicted",
            async () => (await r.loop.withEngine((e) => e.keys())).length === 0,
          );
        };
        await feed(1, 16);
        await gone();
        // Redelivered (at or below a's checkpoint): scored from the reloaded state, not learned.
        r.source.add(3, ...bodies[2]);
        await feed(17, 28);
        await gone();
        await feed(29, 40);
        await gone();
        // The scoring service's way in (withEngine with the key) reloads an evicted key too.
        const states = [];
        for (const key of ["a", "b"]) {
          states.push(...await r.loop.withEngine((e) => e.exportState([key]), key));
        }
        await r.finish();
        const byId = (x: { msgId: string }, y: { msgId: string }) =>
          x.msgId < y.msgId ? -1 : x.msgId > y.msgId ? 1 : 0;
        runs.push({
          states,
          checkpoints: [...r.store.saved.values()].map(({ written_at: _, ...c }) => c),
          records: r.sink.scores.toSorted(byId).map((s) => [s.msgId, s.record]),
          alarms: r.sink.alarms,
          metrics: r.metrics,
        });
      }
      const [kept, evicted] = runs;
      assert.equal(kept.metrics.keysEvicted, 0);
      assert.ok(evicted.metrics.keysEvicted >= 6, `evicted ${evicted.metrics.keysEvicted}`);
      assert.ok(evicted.metrics.keysReloaded >= 6, `reloaded ${evicted.metrics.keysReloaded}`);
      // Every observation learned once: 20 per key, 40 in all, in both runs.
      for (const r of runs) {
        assert.equal(r.metrics.observations, 40);
        assert.deepEqual(r.states.map((s) => (s as { observations: number }).observations), [
          20,
          20,
        ]);
        assert.equal(r.records.length, 41);
      }
      assert.deepEqual(evicted.states, kept.states);
      assert.deepEqual(evicted.checkpoints, kept.checkpoints);
      assert.deepEqual(evicted.records, kept.records);
      assert.ok(kept.alarms.length > 0, "an alarm episode closed");
      assert.deepEqual(evicted.alarms, kept.alarms);
    },
  );
});

Deno.test({
  name:
    "idle-key eviction with a real server: keys reloaded from KV, also after a restart that sets restored keys aside, every observation once",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using srv = await startNatsServer();
    const nc = await connect({ servers: srv.url });
    try {
      const flags = ["--params-every-ms", "50", "--evict-idle-s", "0.05"];
      const input = inputs(360, ["k0", "k1", "k2", "k3", "site.pump-7"]);
      {
        await using worker = await startWorker(liveConfig(srv.url, flags), { log: () => {} });
        await publishInBatches(nc, input.pubs.slice(0, 120), 40);
        await waitFor("a key evicted", () => worker.metrics.keysEvicted > 0);
        await publishInBatches(nc, input.pubs.slice(120, 240), 40);
        await waitFor("a key reloaded", () => worker.metrics.keysReloaded > 0);
        await worker.stop();
      }
      // The next worker restores the checkpoints and sets their keys aside at once (the idle
      // time has not passed): each comes back from KV on its next observation.
      await using worker = await startWorker(liveConfig(srv.url, flags), { log: () => {} });
      assert.ok(worker.metrics.keysEvicted > 0, "restored keys set aside at start-up");
      await publishInBatches(nc, input.pubs.slice(240), 40);
      await waitForScores(nc, input.obs, "every score");
      // Checkpoints follow the scores: stopping writes the last ones.
      await worker.stop();
      await assertExactlyOnce(nc, input);
      assert.ok(worker.metrics.keysReloaded > 0, "a restored key reloaded from its checkpoint");
    } finally {
      await nc.close();
    }
  },
});
