import assert from "node:assert/strict";
import { EpisodeCounter } from "../src/replay/episode_metrics.ts";
import { EpisodeMetricsOut } from "../schemas/replay.ts";

Deno.test("episode metrics of a hand-worked two-key sequence", () => {
  const c = new EpisodeCounter();
  // key a: segments at 2–4 (flagged from 3: delay 1) and 7–8 (missed); flagged runs at 1 (false),
  // 3–5 (true) and 10–11 (false, still on at the end).
  const la = [0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0];
  const fa = [0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1];
  // key b, interleaved with a: one segment flagged at once.
  const lb = [1, 1];
  const fb = [1, 0];
  for (let i = 0; i < la.length; i++) {
    c.add("a", la[i] as 0 | 1, fa[i] === 1);
    if (i < lb.length) c.add("b", lb[i] as 0 | 1, fb[i] === 1);
  }
  const m = EpisodeMetricsOut.parse(c.metrics());
  assert.deepEqual(m, {
    observations: 14,
    segments: 3,
    detected: 2,
    missed: 1,
    mean_delay: 0.5,
    median_delay: 0.5,
    flagged_episodes: 4,
    false_episodes: 2,
    false_per_10k: 2e4 / 14,
  });
});

Deno.test("no labels: nothing to rate, rates are null", () => {
  const m = new EpisodeCounter().metrics();
  assert.equal(m.segments, 0);
  assert.equal(m.mean_delay, null);
  assert.equal(m.false_per_10k, null);
});

Deno.test("episode metrics by dense key id equal those by key, past the first 1,024 ids", () => {
  const byKey = new EpisodeCounter();
  const byId = new EpisodeCounter();
  let seed = 5;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 20000; i++) {
    const id = Math.floor(next() * 1500);
    const label = next() < 0.3 ? 1 : 0;
    const flag = next() < (label === 1 ? 0.5 : 0.1);
    byKey.add(`k${id}`, label, flag);
    byId.addAt(id, label, flag);
  }
  assert.deepEqual(byId.metrics(), byKey.metrics());
});
