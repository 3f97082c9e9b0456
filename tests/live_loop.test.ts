/**
 * The learning loop's delivery rules with in-memory I/O (`tests/helpers/live_fakes.ts`):
 * publication, sequencing, checkpoints and acks, redeliveries and restarts, dead letters and
 * engine refusals, fences, alarms and parameters.
 */
import assert from "node:assert/strict";
import {
  type ArraySource,
  fakeCheckpoint,
  fakeHeadState,
  type MemorySink,
  runUntilDrained,
  setup,
  trickle,
} from "./helpers/live_fakes.ts";
import { waitFor } from "./helpers/nats_server.ts";

Deno.test("learning loop with in-memory I/O", async (t) => {
  await t.step(
    "publishes one score per observation with stream msg ids, acks after checkpoint",
    async () => {
      const { events, source, sink, store, loop } = setup();
      source.add(1, "a", "[1,2]");
      source.add(2, "b", '[{"v":[3,4]},{"v":[5,6]}]');
      source.add(3, "a", '{"v":[7,8],"t":"x"}');
      await runUntilDrained(loop, source);
      assert.deepEqual(sink.scores.map((s) => s.msgId).sort(), [
        "TELEMETRY:1",
        "TELEMETRY:2:0",
        "TELEMETRY:2:1",
        "TELEMETRY:3",
      ]);
      const r3 = sink.scores.find((s) => s.msgId === "TELEMETRY:3")!.record;
      assert.equal(r3.mahalanobis2, 49 + 64);
      assert.equal(r3.t, "x");
      assert.equal(r3.stream_seq, 3);
      assert.equal(r3.seq, 2);
      assert.equal(store.saved.get("a")?.last_seq, 3);
      assert.equal(store.saved.get("b")?.last_seq, 2);
      for (const seq of [1, 2, 3]) {
        const ack = events.indexOf(`ack ${seq}`);
        assert.ok(ack > events.findIndex((e) => e.startsWith("score TELEMETRY:" + seq)));
        assert.ok(ack > events.findIndex((e) => e.startsWith("checkpoint")));
      }
    },
  );

  await t.step(
    "score messages per input message: one JSON array per multi-row message, one record otherwise",
    async () => {
      const { events, source, sink, loop } = setup([], 16, 0, "message");
      source.add(1, "a", "[1,2]");
      source.add(2, "b", '[{"v":[3,4]},{"v":[50,6]},{"v":[5,6]}]');
      // A redelivered copy in the same batch: a message of its own (same id, the server drops it).
      source.add(2, "b", '[{"v":[3,4]},{"v":[50,6]},{"v":[5,6]}]');
      source.add(3, "a", '[{"v":[7,8]}]');
      await runUntilDrained(loop, source);
      assert.deepEqual(sink.messages.map((m) => m.msgId), [
        "TELEMETRY:1",
        "TELEMETRY:2",
        "TELEMETRY:2",
        "TELEMETRY:3",
      ]);
      const copies = sink.messages.filter((m) => m.msgId === "TELEMETRY:2");
      assert.deepEqual(copies.map((m) => "records" in m ? m.records.length : 1), [3, 3]);
      const byId = new Map(sink.messages.toReversed().map((m) => [m.msgId, m])); // first copies
      const one = byId.get("TELEMETRY:1")!;
      assert.ok("record" in one && one.record.mahalanobis2 === 5 && one.record.index === undefined);
      const two = byId.get("TELEMETRY:2")!;
      assert.ok("records" in two);
      assert.equal(two.key, "b");
      assert.deepEqual(two.records.map((r) => [r.index, r.seq, r.mahalanobis2, r.stream_seq]), [
        [0, 1, 25, 2],
        [1, 2, 2536, 2],
        [2, 3, 61, 2],
      ]);
      // An array of one row is still an array: its message has the form of its input.
      const three = byId.get("TELEMETRY:3")!;
      assert.ok("records" in three && three.records.length === 1 && three.records[0].index === 0);
      // Anomalies still go out record by record.
      assert.deepEqual(sink.anomalies.map((a) => [a.msgId, a.record.mahalanobis2]), [
        ["TELEMETRY:2:1", 2536],
      ]);
      assert.ok(events.indexOf("ack 3") > events.indexOf("score TELEMETRY:3"));
    },
  );

  await t.step("scores but never re-learns messages at or below a key's checkpoint", async () => {
    const cp = fakeCheckpoint;
    // Key a applied seqs 1 and 3 before the "crash"; b applied 2.
    const { engine, source, sink, store, loop } = setup([cp("a", 3, 2), cp("b", 2, 1)]);
    source.add(1, "a", "[1,1]");
    source.add(2, "b", "[2,2]");
    source.add(3, "a", "[3,3]");
    source.add(4, "b", "[4,4]");
    source.add(5, "a", "[5,5]");
    await runUntilDrained(loop, source);
    assert.equal(sink.scores.length, 5);
    assert.deepEqual(engine.learnedRows, ["b:4", "a:5"]);
    assert.equal(engine.obs.get("a"), 3);
    assert.equal(engine.obs.get("b"), 2);
    assert.equal(store.saved.get("a")?.last_seq, 5);
    assert.equal(store.saved.get("b")?.last_seq, 4);
  });

  await t.step(
    "alarms: records carry them, episodes go out once with ids from key and seqs, a restart from a checkpoint neither loses nor doubles one",
    async () => {
      // d = 2: p = exp(−m²/2). [4,0]: m² 16, −log10 p = 3.47; [0,0]: p = 1. CUSUM (h 5, k 1):
      // seqs 4–6 loud → S 2.47, 4.94, 7.4 → opens at 6; quiet 7–11 → S 4…0 → closes at 11
      // (episode 6–10); loud 15–16 → S 2.47, 4.94, never opens.
      const loud = new Set([4, 5, 6, 15, 16]);
      const body = (s: number) => (loud.has(s) ? "[4,0]" : "[0,0]");
      const feed = (src: ArraySource, from: number, to: number) => {
        for (let s = from; s <= to; s++) src.add(s, "a", body(s));
      };
      const whole = setup([], 1);
      feed(whole.source, 1, 20);
      await runUntilDrained(whole.loop, whole.source);
      const alarmOf = (sink: MemorySink) =>
        new Map(sink.scores.map((r) => [r.record.stream_seq, r.record.alarm]));
      const on = [...alarmOf(whole.sink)].filter(([, a]) => a).map(([s]) => s).sort((x, y) =>
        x - y
      );
      assert.deepEqual(on, [6, 7, 8, 9, 10]);
      assert.deepEqual(whole.sink.alarms.map((a) => a.msgId), ["TELEMETRY:alarm:a:6-10"]);
      const ep = whole.sink.alarms[0].episode;
      assert.deepEqual([ep.key, ep.start_seq, ep.end_seq, ep.observations], ["a", 6, 10, 5]);
      assert.ok(Math.abs(ep.peak_log_p - 16 / 2 / Math.LN10) < 1e-9);
      assert.deepEqual(ep.top_dims, [0]);
      assert.deepEqual(ep.top_shares, [1]);
      // The episode is published before the checkpoint of the batch that closed it.
      assert.ok(
        whole.events.indexOf("alarm TELEMETRY:alarm:a:6-10") <
          whole.events.indexOf("checkpoint a@11"),
      );

      for (const cut of [5, 6, 8, 10, 11]) {
        // Crash after publishing up to seq 12 with the checkpoint at `cut`: restart from it and
        // redeliver everything after cut - 2 (some already applied, some not).
        const before = setup([], 1);
        feed(before.source, 1, 12);
        await runUntilDrained(before.loop, before.source);
        const upTo = setup([], 1);
        feed(upTo.source, 1, cut);
        await runUntilDrained(upTo.loop, upTo.source);
        const cp = upTo.store.saved.get("a")!;
        assert.equal(cp.last_seq, cut);
        assert.ok(cp.alarm !== undefined);
        const after = setup([JSON.parse(JSON.stringify(cp))], 1);
        feed(after.source, Math.max(1, cut - 2), 20);
        await runUntilDrained(after.loop, after.source);
        // Same id, same record: whatever was published twice is dropped by the server.
        const byId = new Map(before.sink.scores.map((r) => [r.msgId, r.record]));
        for (const r of after.sink.scores) {
          const first = byId.get(r.msgId);
          if (first !== undefined && r.record.stream_seq > cut) {
            assert.deepEqual(r.record, first, `cut ${cut}: ${r.msgId}`);
          }
        }
        for (const [seq, alarm] of alarmOf(after.sink)) {
          if (seq > cut) assert.equal(alarm, alarmOf(whole.sink).get(seq), `cut ${cut}: ${seq}`);
        }
        const ids = new Map<string, unknown>();
        for (const a of [...before.sink.alarms, ...after.sink.alarms]) {
          if (ids.has(a.msgId)) assert.deepEqual(a.episode, ids.get(a.msgId));
          ids.set(a.msgId, a.episode);
        }
        assert.deepEqual([...ids.keys()], ["TELEMETRY:alarm:a:6-10"], `cut ${cut}`);
        assert.deepEqual(ids.get("TELEMETRY:alarm:a:6-10"), ep);
      }
    },
  );

  await t.step(
    "a checkpoint without an alarm state (older worker) loads, its key starts closed",
    async () => {
      const { source, sink, loop } = setup([{
        last_seq: 3,
        written_at: "2026-01-01T00:00:00Z",
        state: fakeHeadState("a", 3),
      }], 1);
      source.add(4, "a", "[0,0]");
      await runUntilDrained(loop, source);
      assert.equal(sink.scores[0].record.alarm, false);
    },
  );

  await t.step("a redelivered message in the same run is not learned again", async () => {
    const { engine, source, sink, loop } = setup();
    source.add(1, "a", "[1,1]");
    source.add(2, "a", "[2,2]");
    source.add(1, "a", "[1,1]");
    await runUntilDrained(loop, source);
    assert.equal(sink.scores.length, 3);
    assert.equal(engine.obs.get("a"), 2);
  });

  await t.step(
    "bad messages go to the dead letters with reason and sequence and are acked",
    async () => {
      const { events, source, sink, engine, loop } = setup();
      source.add(1, "a", "nope");
      source.add(2, "a", "[1,2,3]");
      source.add(3, "a", "[1,2]");
      await runUntilDrained(loop, source);
      assert.deepEqual(sink.dead.map((d) => [d.streamSeq, d.reason, d.msgId]), [
        [1, "malformed", "TELEMETRY:1"],
        [2, "dimension", "TELEMETRY:2"],
      ]);
      assert.equal(sink.dead[0].subject, "telemetry.obs.a");
      assert.equal(engine.obs.get("a"), 1);
      assert.ok(events.includes("ack 1") && events.includes("ack 2") && events.includes("ack 3"));
    },
  );

  await t.step(
    "a message the engine refuses goes to the DLQ; the rest of its batch is learned in order",
    async () => {
      const { engine, source, sink, events, loop } = setup([], 8);
      for (let s = 1; s <= 6; s++) source.add(s, "a", s === 4 ? "[666,1]" : `[${s},1]`);
      await runUntilDrained(loop, source);
      assert.deepEqual(engine.learnedRows, ["a:1", "a:2", "a:3", "a:5", "a:6"]);
      assert.deepEqual(sink.dead.map((d) => [d.streamSeq, d.reason]), [[4, "non_finite"]]);
      assert.match(sink.dead[0].detail, /engine refused/);
      assert.deepEqual(sink.scores.map((s) => s.record.stream_seq).sort(), [1, 2, 3, 5, 6]);
      for (let s = 1; s <= 6; s++) assert.ok(events.includes(`ack ${s}`));
    },
  );

  await t.step(
    "a refusal is recognised by its error code: another error with the same text is fatal",
    async () => {
      const { engine, source, sink, events, loop } = setup([], 8);
      engine.untypedRefusal = true;
      for (let s = 1; s <= 3; s++) source.add(s, "a", s === 2 ? "[666,1]" : `[${s},1]`);
      await loop.init();
      await assert.rejects(loop.run(), /expected finite values/);
      assert.deepEqual(sink.dead, []);
      assert.ok(!events.some((e) => e.startsWith("ack")));
    },
  );

  await t.step("a failed checkpoint stops the loop without acking that batch", async () => {
    const { events, source, store, loop } = setup([], 1);
    store.failOn = "b";
    source.add(1, "a", "[1,1]");
    source.add(2, "b", "[2,2]");
    source.add(3, "a", "[3,3]");
    await loop.init();
    await assert.rejects(loop.run(), /conflict/);
    assert.ok(events.includes("ack 1"));
    assert.ok(!events.includes("ack 2"));
    assert.ok(!events.includes("ack 3"));
  });

  await t.step(
    "a fence that throws (lease lost) stops commits: no checkpoint, no ack",
    async () => {
      let calls = 0;
      // The first commit passes (its two checks: before the checkpoint, before the ack).
      const fence = () => {
        if (++calls > 2) throw new Error("lease lost");
      };
      const { events, source, loop } = setup([], 1, 0, "row", fence);
      source.add(1, "a", "[1,1]");
      source.add(2, "b", "[2,2]");
      source.add(3, "a", "[3,3]");
      await loop.init();
      await assert.rejects(loop.run(), /lease lost/);
      assert.ok(events.includes("ack 1"));
      assert.ok(!events.some((e) => e.startsWith("checkpoint b")), events.join(", "));
      assert.ok(!events.includes("ack 2"));
      assert.ok(!events.includes("ack 3"));
    },
  );

  await t.step(
    "with a checkpoint interval, many batches share a checkpoint and every ack follows the checkpoint that covers it",
    async () => {
      const { events, source, loop } = setup([], 2, 40);
      await loop.init();
      const t0 = performance.now();
      const done = loop.run();
      // A trickle: one message every ~2 ms (or slower, on a busy machine), two keys.
      await trickle(source, 100, (s) => s % 2 === 0 ? "a" : "b");
      // Idle now: the last messages are still checkpointed and acked, without a stop.
      await waitFor("all 100 acked", () => events.includes("ack 100"), 120_000);
      const elapsed = performance.now() - t0;
      for (let s = 1; s <= 100; s++) assert.ok(events.includes(`ack ${s}`), `ack ${s}`);
      // At most one checkpoint per key per 40 ms interval (and the first and the idle one),
      // however long the trickle took.
      const checkpoints = events.filter((e) => e.startsWith("checkpoint"));
      const most = 2 * (Math.ceil(elapsed / 40) + 2);
      assert.ok(
        checkpoints.length <= most,
        `${checkpoints.length} checkpoint writes in ${elapsed.toFixed(0)} ms, expected ≤ ${most}`,
      );
      // The checkpoint of a key with last_seq ≥ s is written before message s is acked.
      for (let s = 1; s <= 100; s++) {
        const key = s % 2 === 0 ? "a" : "b";
        const ackAt = events.indexOf(`ack ${s}`);
        const covered = events.findIndex((e) => {
          const m = /^checkpoint (\w+)@(\d+)$/.exec(e);
          return m !== null && m[1] === key && Number(m[2]) >= s;
        });
        assert.ok(covered >= 0 && covered < ackAt, `message ${s}: checkpoint after its ack`);
      }
      await source.close();
      loop.stop();
      await done;
    },
  );

  await t.step(
    "with cumulative acks, one ack per checkpoint, after it, for its last message",
    async () => {
      const { events, source, loop } = setup([], 2, 30);
      source.cumulativeAck = true;
      await loop.init();
      const t0 = performance.now();
      const done = loop.run();
      // At least 120 ms of trickle: more than one 30 ms checkpoint interval.
      await trickle(source, 60, (s) => s % 3 === 0 ? "a" : "b");
      await waitFor("the ack of message 60", () => events.includes("ack 60"), 120_000);
      const elapsed = performance.now() - t0;
      const acks = events.filter((e) => e.startsWith("ack")).map((e) => Number(e.slice(4)));
      // One ack per checkpoint: at most one per 30 ms interval, however long the trickle took.
      const most = Math.ceil(elapsed / 30) + 2;
      assert.ok(
        acks.length >= 2 && acks.length <= most,
        `${acks.length} acks in ${elapsed.toFixed(0)} ms, expected 2 to ${most}`,
      );
      assert.equal(acks.at(-1), 60);
      assert.deepEqual(acks, [...acks].sort((a, b) => a - b));
      // Each ack follows the checkpoints of every key up to it.
      for (const seq of acks) {
        const ackAt = events.indexOf(`ack ${seq}`);
        for (const key of ["a", "b"]) {
          const lastOfKey = Array.from({ length: seq }, (_, i) => i + 1)
            .filter((s) => (s % 3 === 0 ? "a" : "b") === key).at(-1);
          // A key with no message up to this ack (a slow trickle can ack 1 or 2 alone) has
          // nothing to be covered.
          if (lastOfKey === undefined) continue;
          const covered = events.findIndex((e) => {
            const m = /^checkpoint (\w+)@(\d+)$/.exec(e);
            return m !== null && m[1] === key && Number(m[2]) >= lastOfKey;
          });
          assert.ok(covered >= 0 && covered < ackAt, `ack ${seq} before ${key}'s checkpoint`);
        }
      }
      await source.close();
      loop.stop();
      await done;
    },
  );

  await t.step("publishes parameters of the keys that learned", async () => {
    const { source, sink, loop } = setup();
    source.add(1, "a", "[1,1]");
    source.add(2, "b", "[2,2]");
    await runUntilDrained(loop, source);
    const last = new Map(sink.params.map((p) => [p.key, p]));
    assert.equal(last.get("a")?.observations, 1);
    assert.equal(last.get("b")?.observations, 1);
  });
});
