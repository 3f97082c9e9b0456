/**
 * Issue 11, floors 1 and 3: the natural step is exact (the MLE of what a key has seen, NumPy-
 * computed, in awkward units), the forgetting is the exponentially weighted MLE, and the result
 * does not depend on how the stream is batched.
 */
import assert from "node:assert/strict";
import { batchWeights, forgetting, kishN } from "../src/model/natural_step.ts";
import { chol, cpuEngine, feed, klHeads, klToHead } from "./helpers/learning.ts";
import { gaussian, mvnRows, rng } from "./helpers/synthetic.ts";

interface MleFixture {
  d: number;
  n: number;
  rows: number[];
  mean: number[];
  cov: number[][];
  horizon?: number;
  n_eff?: number;
}
async function fixture(name: string): Promise<MleFixture> {
  return JSON.parse(await Deno.readTextFile(new URL(`./fixtures/${name}`, import.meta.url)));
}

Deno.test("natural step: exact MLE, forgetting, batch invariance", async (t) => {
  await t.step("KL(MLE_N ‖ learned) ≤ 0.01 at N = 50·d, awkward units (NumPy MLE)", async () => {
    for (const d of [3, 8, 16, 32]) {
      const fx = await fixture(`mle_awkward_d${d}.json`);
      for (const batch of [1, 37, 4096]) {
        if (d === 32 && batch === 1) continue; // same path as 37, slower
        await using engine = await cpuEngine({ dim: d });
        await feed(engine, Float64Array.from(fx.rows), d, batch);
        const [h] = await engine.snapshot();
        const kl = klToHead(fx.mean, fx.cov, h);
        console.log(`d=${d} N=${fx.n} batch=${batch}: KL(MLE ‖ learned) = ${kl.toExponential(2)}`);
        assert(kl <= 0.01, `d=${d} batch=${batch}: KL ${kl}`);
      }
    }
  });

  await t.step("forgetting: the exponentially weighted MLE and its Kish n (NumPy)", async () => {
    const fx = await fixture("mle_forgetting_d3.json");
    for (const batch of [1, 10, 64, 500]) {
      // No robust down-weighting, no change detection: the estimate is the weighted MLE exactly.
      await using engine = await cpuEngine({
        dim: 3,
        horizon: fx.horizon,
        robust_p: 1e-300,
        change_threshold: 0,
      });
      await feed(engine, Float64Array.from(fx.rows), 3, batch);
      const [h] = await engine.snapshot();
      for (let a = 0; a < 3; a++) {
        assert(Math.abs(h.loc[a] - fx.mean[a]) < 1e-7 * (1 + Math.abs(fx.mean[a])));
        for (let b = 0; b < 3; b++) {
          const e = Math.abs(h.covariance[a][b] - fx.cov[a][b]);
          assert(
            e < 1e-7 * fx.cov[a][a],
            `batch ${batch} cov ${a},${b}: ${h.covariance[a][b]} vs ${fx.cov[a][b]}`,
          );
        }
      }
      const n = engine.bank.nEff(engine.bank.head("k")!);
      assert(Math.abs(n - fx.n_eff!) < 1e-6 * fx.n_eff!, `n_eff ${n} vs ${fx.n_eff}`);
    }
  });

  await t.step("batch weights in closed form", () => {
    const lam = forgetting(50);
    let w = 0, w2 = 0;
    for (let k = 0; k < 17; k++) {
      w += lam ** k;
      w2 += lam ** (2 * k);
    }
    const bw = batchWeights(lam, 17);
    assert(Math.abs(bw.w - w) < 1e-12 && Math.abs(bw.w2 - w2) < 1e-12);
    assert(Math.abs(kishN(bw.w, bw.w2) - (w * w) / w2) < 1e-9);
    assert.deepEqual(batchWeights(1, 5), { w: 5, w2: 5 });
  });

  await t.step("batch 1 / 64 / 4096 give the same head (KL ≤ 1e-3), defaults", async () => {
    const g = gaussian(rng(301));
    const tril = [[2, 0, 0], [1.5, 0.5, 0], [-30, 10, 40]];
    const rows = mvnRows(30_000, [10, -3, 1000], tril, g);
    // 1 % of points at 10σ in a random direction: the robust weights see them differently
    // depending on the batch (parameters from before the batch).
    const u = rng(302);
    for (let i = 0; i < 30_000; i++) {
      if (u() < 0.01) { for (let a = 0; a < 3; a++) rows[i * 3 + a] += 10 * tril[a][a]; }
    }
    const heads = [];
    for (const batch of [1, 64, 4096]) {
      await using engine = await cpuEngine({ dim: 3 });
      await feed(engine, rows, 3, batch);
      heads.push((await engine.snapshot())[0]);
    }
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        if (i === j) continue;
        const kl = klHeads(heads[i], heads[j]);
        console.log(
          `batch invariance: KL(${[1, 64, 4096][i]} ‖ ${[1, 64, 4096][j]}) = ${
            kl.toExponential(2)
          }`,
        );
        assert(kl <= 1e-3, `KL ${kl}`);
      }
    }
  });

  await t.step("chol helper", () => {
    const l = chol([[4, 2], [2, 5]]);
    assert.deepEqual(l, [[2, 0], [1, 2]]);
  });
});
