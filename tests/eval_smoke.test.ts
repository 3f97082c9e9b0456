/**
 * `deno task eval` on a tiny suite: it runs end to end and reports every column for every output,
 * kind and dimension (the figures themselves are not checked here; docs/eval.md has them).
 */
import assert from "node:assert/strict";
import { markdown, METHODS, runEval } from "../src/eval/eval.ts";
import { ANOMALY_KINDS, generateSuite, QUICK_SUITE } from "../src/eval/suite.ts";
import { run } from "../src/cli/eval.ts";

Deno.test("eval: the suite is seeded and labelled as specified", () => {
  const a = generateSuite(QUICK_SUITE);
  const b = generateSuite(QUICK_SUITE);
  assert.equal(a.length, QUICK_SUITE.dims.length * ANOMALY_KINDS.length);
  for (let i = 0; i < a.length; i++) {
    assert.deepEqual(a[i].values, b[i].values);
    assert.equal(a[i].segments.length, QUICK_SUITE.segments);
    let labelled = 0;
    for (const s of a[i].segments) {
      assert.ok(s.start >= QUICK_SUITE.fitRows && s.end <= a[i].n && s.end > s.start);
      labelled += s.end - s.start;
    }
    assert.equal(a[i].labels.reduce((x, y) => x + y, 0), labelled);
    assert.ok(a[i].values.every(Number.isFinite));
  }
  const other = generateSuite({ ...QUICK_SUITE, seed: QUICK_SUITE.seed + 1 });
  assert.notDeepEqual(other[0].values, a[0].values);
});

Deno.test({
  name:
    "eval: a tiny suite runs and reports F1/FAR/MAR and episode metrics for anomaly, alarm and T²",
  sanitizeResources: false,
  fn: async () => {
    const r = await runEval({ suite: QUICK_SUITE, backend: "cpu" });
    assert.equal(r.recordings, 12);
    for (const group of [r.overall, ...Object.values(r.by_kind), ...Object.values(r.by_dim)]) {
      for (const m of METHODS) {
        const { point, episodes } = group[m];
        for (const k of ["f1", "far", "mar", "tp", "fp", "fn", "tn"] as const) {
          assert.ok(k in point, `${m}: ${k}`);
        }
        for (
          const k of [
            "segments",
            "detected",
            "missed",
            "mean_delay",
            "median_delay",
            "false_episodes",
            "false_per_10k",
          ] as const
        ) assert.ok(k in episodes, `${m}: ${k}`);
      }
    }
    assert.deepEqual(Object.keys(r.by_kind).sort(), [...ANOMALY_KINDS].sort());
    assert.equal(r.overall.alarm.episodes.segments, 12 * QUICK_SUITE.segments);
    const md = markdown(r);
    for (const col of ["F1", "FAR", "MAR", "segments detected", "median delay", "false episodes"]) {
      assert.ok(md.includes(col), col);
    }
    for (const kind of ANOMALY_KINDS) assert.ok(md.includes(`| ${kind} |`), kind);
  },
});

Deno.test("eval CLI: --help exits 0, bad flags exit 2", async () => {
  assert.equal(await run(["--help"]), 0);
  assert.equal(await run(["--seed", "x"]), 2);
  assert.equal(await run(["--nope"]), 2);
});
