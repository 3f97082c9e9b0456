import assert from "node:assert/strict";
import {
  AlarmBank,
  alarmReference,
  evidence,
  EVIDENCE_CAP,
  newAlarmState,
  stepAlarm,
} from "../src/model/alarm.ts";
import { FLAT_MIN_CHANGES, flatEvidence } from "../src/model/flatline.ts";
import { AlarmEpisode, AlarmStateSchema } from "../schemas/alarm.ts";

/** Feeds p-values (and contribs) through a fresh key at h = 5, k = 1; alarm flags and episodes. */
function run(ps: (number | null)[], contribs?: number[][], armed?: boolean[]) {
  const bank = new AlarmBank(3, 5, 1);
  const alarms: boolean[] = [];
  const episodes = [];
  for (let i = 0; i < ps.length; i++) {
    const r = bank.step("k", {
      seq: i + 1,
      t: 100 + i,
      pValue: ps[i],
      contrib: contribs?.[i] ?? [1, 1, 1],
      armed: armed?.[i],
    });
    alarms.push(r.alarm);
    if (r.closed) episodes.push(r.closed);
  }
  return { alarms, episodes, bank };
}

Deno.test("evidence is −log10 p, capped for p = 0 and zero without a p-value", () => {
  assert.equal(evidence(0.1), 1);
  assert.equal(evidence(1), 0);
  assert.equal(evidence(null), 0);
  assert.equal(evidence(NaN), 0);
  assert.equal(evidence(0), EVIDENCE_CAP);
  assert.ok(Math.abs(EVIDENCE_CAP - 323.306) < 1e-3);
});

Deno.test("CUSUM of −log10 p at h = 5, k = 1: a hand-worked open/close pattern", async (t) => {
  // e:      0.30  3    3    2.5  0    4    0    0    0    0    0    7    0 0 0 0 0    0
  // S:      0     2    4    5.5→5 4   5    4    3    2    1    0    6→5  4 3 2 1 0    0
  // alarm:  -     -    -    on   on   on   on   on   on   on   off  on   on…on off   off
  const ps = [
    0.5,
    1e-3,
    1e-3,
    10 ** -2.5,
    1,
    1e-4,
    1,
    1,
    1,
    1,
    1,
    1e-7,
    1,
    1,
    1,
    1,
    1,
    1,
  ];
  const contribs = ps.map((_, i) => i === 3 ? [1, 0, 0] : i === 5 ? [0, 3, 1] : [1, 1, 1]);
  const { alarms, episodes } = run(ps, contribs);
  await t.step(
    "sustained evidence opens at the 4th observation; it closes when S is back at 0",
    () => {
      const on = alarms.map((a, i) => (a ? i + 1 : 0)).filter((s) => s > 0);
      assert.deepEqual(on, [4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16]);
    },
  );
  await t.step(
    "the first episode: seq 4–10, peak 4 decades, dims by evidence-weighted share",
    () => {
      const e = AlarmEpisode.parse(episodes[0]);
      assert.equal(e.key, "k");
      assert.equal(e.start_seq, 4);
      assert.equal(e.end_seq, 10);
      assert.equal(e.start_t, 103);
      assert.equal(e.end_t, 109);
      assert.equal(e.observations, 7);
      assert.ok(Math.abs(e.peak_log_p - 4) < 1e-12);
      // seq 4: e = 2.5 on dim 0; seq 6: e = 4 split 3:1 over dims 1, 2 → 2.5 : 3 : 1 of 6.5.
      assert.deepEqual(e.top_dims, [1, 0, 2]);
      const want = [3 / 6.5, 2.5 / 6.5, 1 / 6.5];
      e.top_shares.forEach((s, i) => assert.ok(Math.abs(s - want[i]) < 1e-12));
    },
  );
  await t.step("one overwhelming observation (p = 1e-7) opens at once", () => {
    const e = episodes[1];
    assert.equal(e.start_seq, 12);
    assert.equal(e.end_seq, 16);
    assert.equal(e.observations, 5);
    assert.ok(Math.abs(e.peak_log_p - 7) < 1e-12);
    assert.equal(episodes.length, 2);
  });
});

Deno.test("p-values at the reference (0.1 for k = 1) never open; warm-up observations add no evidence", () => {
  assert.ok(!run(new Array(1000).fill(0.1)).alarms.some((a) => a));
  const ps = [1e-9, 1e-9, 1, 1];
  assert.deepEqual(run(ps, undefined, [false, true, true, true]).alarms, [false, true, true, true]);
  assert.deepEqual(run(ps, undefined, [false, false, true, true]).alarms, [
    false,
    false,
    false,
    false,
  ]);
});

Deno.test("a saturated observation (p = 0) opens; its episode stays JSON-safe", () => {
  const ps = [0, 1, 1, 1, 1, 1];
  const { alarms, episodes } = run(ps, [[Number.MAX_VALUE, 2, 0], ...new Array(5).fill([1, 1, 1])]);
  assert.deepEqual(alarms, [true, true, true, true, true, false]);
  const e = AlarmEpisode.parse(JSON.parse(JSON.stringify(episodes[0])));
  assert.equal(e.peak_log_p, EVIDENCE_CAP);
  assert.deepEqual(e.top_dims, [0]);
  assert.deepEqual(e.top_shares, [1]);
});

Deno.test("a state exported mid-episode and imported elsewhere continues identically", () => {
  const ps = [1e-3, 1e-3, 1e-4, 0.5, 1e-6, 1, 1, 1, 1, 1, 1, 1e-2, 1e-2, 1e-3, 1, 1, 1, 1, 1, 1];
  const whole = run(ps);
  for (let cut = 1; cut < ps.length; cut++) {
    const a = run(ps.slice(0, cut));
    const saved = AlarmStateSchema.parse(JSON.parse(JSON.stringify(a.bank.export("k"))));
    const b = new AlarmBank(3, 5, 1);
    b.import("k", saved);
    const alarms = [...a.alarms];
    const episodes = [...a.episodes];
    for (let i = cut; i < ps.length; i++) {
      const r = b.step("k", { seq: i + 1, t: 100 + i, pValue: ps[i], contrib: [1, 1, 1] });
      alarms.push(r.alarm);
      if (r.closed) episodes.push(r.closed);
    }
    assert.deepEqual(alarms, whole.alarms, `cut at ${cut}`);
    assert.deepEqual(episodes, whole.episodes, `cut at ${cut}`);
  }
});

Deno.test("stepAlarm on a plain state: the default reference is −log10 of the default alpha", () => {
  const s = newAlarmState<null>(2, null);
  // Default reference k = 3 (alpha 1e-3): p = 1e-8 gives S = 5 = h, p = 1e-7 only 4.
  const r = stepAlarm(s, "x", { seq: 1, t: null, pValue: 1e-8, contrib: [1, 0] }, 5);
  assert.equal(r.alarm, true);
  assert.equal(s.cusum, 5);
  const s2 = newAlarmState<null>(2, null);
  assert.equal(
    stepAlarm(s2, "x", { seq: 1, t: null, pValue: 1e-7, contrib: [1, 0] }, 5).alarm,
    false,
  );
  assert.ok(Math.abs(s2.cusum - 4) < 1e-12);
  assert.equal(alarmReference(1e-3), 3);
  assert.throws(() => new AlarmBank(2, 0), RangeError);
  assert.throws(() => new AlarmBank(2, 5, 0), RangeError);
});

Deno.test("flatline evidence: exact repeats against each sensor's learned repeat chain", async (t) => {
  await t.step("closed form: −log10 of P(N→R)·P(R→R)^(r−1), Laplace estimates", () => {
    const f = {
      last: [0],
      run: [0],
      fromN: [998],
      nToR: [19],
      fromR: [40],
      rToR: [22],
    };
    // P(N→R) = 20/1000, P(R→R) = 23/42.
    assert.equal(flatEvidence(f, 0, 0), 0);
    assert.ok(Math.abs(flatEvidence(f, 0, 1) - -Math.log10(0.02)) < 1e-12);
    const want = -Math.log10(0.02) - 4 * Math.log10(23 / 42);
    assert.ok(Math.abs(flatEvidence(f, 0, 5) - want) < 1e-12);
    f.fromN[0] = FLAT_MIN_CHANGES - 1;
    assert.equal(flatEvidence(f, 0, 5), 0, "too few changes seen: no evidence");
  });

  /** A fresh key at h = 5, k = 3 fed `rows` (d = 2), all p-values 0.5: alarm flags and episodes. */
  const feed = (rows: number[][]) => {
    const bank = new AlarmBank(2, 5, 3);
    const alarms: boolean[] = [];
    const episodes = [];
    for (let i = 0; i < rows.length; i++) {
      const r = bank.step("k", {
        seq: i + 1,
        t: i,
        pValue: 0.5,
        contrib: [1, 1],
        values: rows[i],
      });
      alarms.push(r.alarm);
      if (r.closed) episodes.push(r.closed);
    }
    return { alarms, episodes, bank };
  };

  await t.step(
    "a continuous sensor that freezes opens an alarm; the stuck dimension carries it",
    () => {
      // 200 distinct readings per sensor, then sensor 1 repeats its last value for 20 rows.
      const rows: number[][] = [];
      for (let i = 0; i < 200; i++) rows.push([Math.sin(i) * 10, Math.cos(i * 1.3) * 7]);
      for (let i = 0; i < 20; i++) rows.push([Math.sin(200 + i) * 10, rows[199][1]]);
      rows.push([1, 2], [3, 4], [5, 6]);
      const { alarms, episodes, bank } = feed(rows);
      // Sensor 1 has 199 non-repeat transitions and no repeat: P(N→R) = 1/201, P(R→R) = 1/2, so
      // the run of r repeats has evidence log10 201 + (r − 1)·log10 2, less log10 2 (Bonferroni):
      // r = 1: 2.002, r = 2: 2.303, …; e − 3 turns positive at r = 5 (0.206), and the cumulated
      // Σ_{r=5..m} (log10 201 + (r − 2)·log10 2 − 3) = 0.206, 0.714, 1.522, 2.631, 4.042, 5.753
      // reaches h = 5 first at m = 10.
      let s = 0, opens = -1;
      for (let r = 1; r <= 20 && opens < 0; r++) {
        s = Math.max(0, s + Math.log10(201) + (r - 2) * Math.log10(2) - 3);
        if (s >= 5) opens = r;
      }
      assert.equal(opens, 10);
      assert.equal(alarms.indexOf(true), 200 + opens - 1);
      assert.ok(alarms.slice(200 + opens - 1, 220).every((a) => a));
      // Closes once the sensor moves again (h/k quiet rows at most).
      assert.equal(episodes.length, 1);
      // The flatline rows' evidence goes to the stuck sensor alone; the closing row's small
      // Gaussian evidence (0.3 decades) is shared by m².
      assert.equal(episodes[0].top_dims[0], 1);
      assert.ok(episodes[0].top_shares[0] > 0.99);
      assert.equal(bank.isOpen("k"), false);
      // The finished run joined the chain: N→R once, R→R 19 times, R→N once.
      const f = bank.export("k")!.flat!;
      assert.deepEqual([f.nToR[1], f.fromR[1], f.rToR[1], f.run[1]], [1, 20, 19, 0]);
      assert.equal(f.fromN[1], 199 + 3);
      AlarmStateSchema.parse(bank.export("k"));
    },
  );

  await t.step(
    "a quantised sensor that often repeats learns it: its usual runs add nothing",
    () => {
      // Sensor 0 holds each value for 3 rows (runs of 2 repeats), 1,500 rows; then a run of 4.
      const rows: number[][] = [];
      for (let i = 0; i < 1500; i++) rows.push([Math.floor(i / 3), i * 0.37]);
      for (let i = 0; i < 5; i++) rows.push([9999, 1e4 + i]);
      const { alarms, bank } = feed(rows);
      assert.ok(alarms.every((a) => !a));
      // 500 finished runs of 2 repeats, each N→R, R→R, R→N: P(N→R) = 501/502, P(R→R) = 501/1002.
      const f = bank.export("k")!.flat!;
      assert.deepEqual([f.fromN[0], f.nToR[0], f.fromR[0], f.rToR[0]], [500, 500, 1000, 500]);
      const e4 = -Math.log10(501 / 502) - 3 * Math.log10(501 / 1002);
      assert.ok(Math.abs(flatEvidence(f, 0, 4) - e4) < 1e-12);
      assert.ok(e4 - Math.log10(2) < 3, "a run of 4 is not beyond alpha for this sensor");
    },
  );

  await t.step("a constant column never counts as evidence", () => {
    const rows: number[][] = [];
    for (let i = 0; i < 500; i++) rows.push([42, i * 0.1]);
    assert.ok(feed(rows).alarms.every((a) => !a));
  });
});

Deno.test("a sparse bank steps exactly like a full one and keeps no quiet key", async (t) => {
  const full = new AlarmBank<number>(2, 5, 3);
  const sparse = new AlarmBank<number>(2, 5, 3, { sparse: true });
  // Deterministic p-values: mostly quiet, with bursts far beyond alpha on keys a and c.
  const keys = ["a", "b", "c"];
  let seq = 0;
  const fullOut: unknown[] = [];
  const sparseOut: unknown[] = [];
  for (let i = 0; i < 300; i++) {
    const key = keys[i % 3];
    const burst = (key === "a" && i % 90 < 12) || (key === "c" && i > 250);
    const obs = {
      seq: ++seq,
      t: i,
      pValue: burst ? 1e-6 : 0.5,
      contrib: [1, i % 7],
      armed: i > 3,
    };
    fullOut.push(full.step(key, obs));
    sparseOut.push(sparse.step(key, obs));
  }
  await t.step("same alarms and episodes", () => {
    assert.deepEqual(sparseOut, fullOut);
    assert.ok(fullOut.some((r) => (r as { closed: unknown }).closed !== null));
    assert.deepEqual(sparse.openEpisodes(), full.openEpisodes());
  });
  await t.step("no state for a key that never had evidence", () => {
    assert.equal(sparse.export("b"), undefined);
    assert.ok(full.export("b") !== undefined);
    assert.equal(sparse.isOpen("c"), true);
  });
});

Deno.test("a sparse bank learns every quiet key's repeat chain: its flatline alarms are a full bank's", async (t) => {
  const full = new AlarmBank<number>(2, 5, 3);
  const sparse = new AlarmBank<number>(2, 5, 3, { sparse: true });
  // Keys a and b: 300 rows of distinct readings (quiet: p = 0.5), then sensor 1 of key a freezes
  // for 20 rows — an alarm only the repeat chain learnt over the quiet rows can raise.
  let seq = 0;
  const fullOut: unknown[] = [];
  const sparseOut: unknown[] = [];
  for (let i = 0; i < 320; i++) {
    for (const key of ["a", "b"]) {
      const frozen = key === "a" && i >= 300;
      const obs = {
        seq: ++seq,
        t: i,
        pValue: 0.5,
        contrib: [1, 1],
        values: [Math.sin(i + seq), frozen ? 7.25 : Math.cos(i * 1.3 + seq)],
      };
      fullOut.push(full.step(key, obs));
      sparseOut.push(sparse.step(key, obs));
    }
  }
  await t.step("same alarms, and the frozen sensor opens one", () => {
    assert.deepEqual(sparseOut, fullOut);
    assert.equal(sparse.isOpen("a"), true);
    assert.equal(full.isOpen("a"), true);
    assert.equal(sparse.isOpen("b"), false);
  });
  await t.step("the open key's exported state carries the same repeat counts", () => {
    assert.deepEqual(sparse.export("a"), full.export("a"));
    assert.equal(sparse.export("b"), undefined);
  });
  await t.step("the exported state, imported into a new sparse bank, steps on the same", () => {
    const copy = new AlarmBank<number>(2, 5, 3, { sparse: true });
    copy.import("a", sparse.export("a")!);
    for (let i = 320; i < 340; i++) {
      const obs = {
        seq: ++seq,
        t: i,
        pValue: 0.5,
        contrib: [1, 1],
        values: [Math.sin(i + seq), i < 330 ? 7.25 : Math.cos(i)],
      };
      const want = full.step("a", obs);
      assert.deepEqual(sparse.step("a", obs), want);
      assert.deepEqual(copy.step("a", obs), want);
    }
    assert.deepEqual(copy.export("a"), sparse.export("a"));
  });
});
