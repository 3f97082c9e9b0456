/**
 * The engine's memory reuse (released score buffers, shared scratch) changes no number, and the
 * one-pass cpu loop keeps its statistics exact around rows it handles apart (robust weights,
 * score-only rows, wild values).
 */
import assert from "node:assert/strict";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import { createEngine } from "../src/engine/thread/compute_thread.ts";
import type { ScoringEngine } from "../src/engine/engine.ts";
import type { ObservationBatch, ScoreBatch } from "../src/engine/types.ts";
import { BACKENDS } from "./helpers/backends.ts";
import { gaussian, mvnRows, rng } from "./helpers/synthetic.ts";

const LOC = [1.5, -2, 0.3];
const TRIL = [[2, 0, 0], [0.8, 0.5, 0], [-0.3, 0.2, 1.2]];

/** Batches of n rows over `keys` keys, with a few score-only and re-delivered rows. */
function batches(count: number, n: number, keys: number, seed: number): ObservationBatch[] {
  const g = gaussian(rng(seed));
  const u = rng(seed + 1);
  return Array.from({ length: count }, () => {
    const keyIndex = Uint32Array.from({ length: n }, () => Math.floor(u() * keys));
    return {
      dim: 3,
      n,
      values: mvnRows(n, LOC, TRIL, g),
      keyIndex,
      keys: Array.from({ length: keys }, (_, k) => `k${k}`),
      learn: Uint8Array.from({ length: n }, () => (u() < 0.05 ? 0 : 1)),
      counted: Uint8Array.from({ length: n }, () => (u() < 0.02 ? 0 : 1)),
    };
  });
}

function copy(b: ObservationBatch): ObservationBatch {
  return {
    ...b,
    values: b.values.slice(),
    keyIndex: b.keyIndex.slice(),
    learn: b.learn?.slice(),
    counted: b.counted?.slice(),
  };
}

/** Plain arrays of a score batch, read before it is released. */
function plain(s: ScoreBatch): number[][] {
  return [s.logProb, s.mahalanobis2, s.pValue, s.anomaly, s.contrib, s.seq].map((a) =>
    Array.from(a)
  );
}

async function run(engine: ScoringEngine, input: ObservationBatch[], release: boolean) {
  const out: number[][][] = [];
  for (const b of input) {
    const s = await engine.process(copy(b));
    out.push(plain(s));
    if (release) engine.release(s);
  }
  return { out, state: await engine.exportState() };
}

Deno.test("released score buffers are reused without changing any score or state", async (t) => {
  const input = [
    ...batches(6, 700, 3, 11),
    ...batches(4, 5000, 1, 12), // a larger batch than the pooled buffers
    ...batches(6, 300, 5, 13), // smaller ones again: served from the larger buffers
  ];
  for (const thread of [false, true]) {
    await t.step(`${thread ? "compute thread" : "calling thread"}`, async () => {
      const config = resolveHeadConfig({ dim: 3, backend: "cpu" });
      await using a = await createEngine(config, { thread, log: () => {} });
      await using b = await createEngine(config, { thread, log: () => {} });
      const fresh = await run(a, input, false);
      const pooled = await run(b, input, true);
      assert.deepEqual(pooled.out, fresh.out);
      assert.deepEqual(pooled.state, fresh.state);
    });
  }
});

Deno.test("batches not awaited one by one are still processed in call order", async () => {
  const config = resolveHeadConfig({ dim: 3, backend: "cpu" });
  await using a = await createEngine(config, { thread: false, log: () => {} });
  await using b = await createEngine(config, { thread: false, log: () => {} });
  const input = batches(8, 200, 2, 21);
  const sequential = await run(a, input, false);
  const all = await Promise.all(input.map((x) => b.process(copy(x))));
  assert.deepEqual(all.map(plain), sequential.out);
});

Deno.test("after one wild but finite value, a 3σ shift is still learned within 5,000 observations", async (t) => {
  // With a constant robust floor, a 1e12 glitch swamped the statistics and Adam's second moment,
  // and learning froze: the anomaly rate after the shift stayed near 17 %.
  for (const backend of BACKENDS) {
    await t.step(backend, async () => {
      const g = gaussian(rng(5));
      await using engine = await createEngine(resolveHeadConfig({ dim: 3, backend }), {
        log: () => {},
      });
      const feed = async (X: Float64Array) =>
        await engine.process({
          dim: 3,
          n: X.length / 3,
          values: X,
          keyIndex: new Uint32Array(X.length / 3),
          keys: ["k"],
        });
      for (let i = 0; i < 100; i++) await feed(mvnRows(64, LOC, TRIL, g));
      const X = mvnRows(64, LOC, TRIL, g);
      X[3 * 17 + 1] = 1e12;
      const s = await feed(X);
      assert.equal(s.anomaly[17], 1);
      // 3σ along the first axis (TRIL[0][0] = 2).
      const shifted = [LOC[0] + 6, LOC[1] + 2.4, LOC[2] - 0.9];
      let flagged = 0, seen = 0;
      for (let i = 0; i < 100; i++) {
        const r = await feed(mvnRows(64, shifted, TRIL, g));
        if (i * 64 >= 4000) {
          flagged += r.anomaly.reduce((a, b) => a + b, 0);
          seen += 64;
        }
      }
      assert.ok(flagged / seen < 0.01, `anomaly rate ${flagged / seen} after the shift`);
    });
  }
});

Deno.test("a finite row whose Mahalanobis² overflows is scored saturated; a NaN row is refused with the batch, state unchanged", async () => {
  const g = gaussian(rng(6));
  await using engine = await createEngine(resolveHeadConfig({ dim: 3, backend: "cpu" }), {
    log: () => {},
  });
  const batch = (X: Float64Array): ObservationBatch => ({
    dim: 3,
    n: X.length / 3,
    values: X,
    keyIndex: new Uint32Array(X.length / 3),
    keys: ["k"],
  });
  for (let i = 0; i < 5; i++) await engine.process(batch(mvnRows(256, LOC, TRIL, g)));
  const X = mvnRows(256, LOC, TRIL, g);
  X[3 * 9] = 1e200; // finite, but its m² is not: scored saturated
  const s = await engine.process(batch(X.slice()));
  assert.equal(s.mahalanobis2[9], Number.MAX_VALUE);
  assert.equal(s.anomaly[9], 1);
  const before = await engine.exportState();
  X[3 * 9] = NaN; // not finite: the batch is refused
  await assert.rejects(() => engine.process(batch(X)), /expected finite values.*row 9/);
  assert.deepEqual(await engine.exportState(), before);
});

Deno.test("rows sorted by key or interleaved get the same scores and the same learning", async (t) => {
  // Sorted rows run as one segment per key, interleaved ones as one row-order pass (d = 3) or
  // gathered per key (other d): three loops, one result up to summation order.
  for (const d of [3, 5]) {
    await t.step(`d=${d}`, async () => {
      const config = resolveHeadConfig({ dim: d, backend: "cpu" });
      await using a = await createEngine(config, { thread: false, log: () => {} });
      await using b = await createEngine(config, { thread: false, log: () => {} });
      const g = gaussian(rng(31 + d));
      const u = rng(32 + d);
      const keys = ["a", "b", "c", "d"];
      for (let step = 0; step < 30; step++) {
        const n = 400;
        const keyIndex = Uint32Array.from({ length: n }, () => Math.floor(u() * keys.length));
        const values = Float64Array.from({ length: n * d }, (_, e) => g() + keyIndex[(e / d) | 0]);
        values[7 * d] = 40 + step; // beyond the robust threshold every batch
        const perm = Array.from({ length: n }, (_, i) => i).sort((p, q) =>
          keyIndex[p] - keyIndex[q] || p - q
        );
        const sa = await a.process({ dim: d, n, values, keyIndex, keys });
        const sb = await b.process({
          dim: d,
          n,
          values: Float64Array.from(
            { length: n * d },
            (_, e) => values[perm[(e / d) | 0] * d + e % d],
          ),
          keyIndex: Uint32Array.from(perm, (i) => keyIndex[i]),
          keys,
        });
        perm.forEach((i, r) => {
          assert.ok(
            Math.abs(sa.logProb[i] - sb.logProb[r]) <= 1e-9 * (1 + Math.abs(sa.logProb[i])),
          );
          assert.equal(sa.seq[i], sb.seq[r]);
          assert.equal(sa.anomaly[i], sb.anomaly[r]);
        });
      }
      const [pa, pb] = [await a.snapshot(), await b.snapshot()];
      pa.forEach((s, k) => {
        s.loc.forEach((v, e) => assert.ok(Math.abs(v - pb[k].loc[e]) < 1e-9, `loc ${s.key}`));
      });
    });
  }
});
