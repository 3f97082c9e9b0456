/**
 * Issue 11, floor 2 (explicit memory, both ends of the trade-off) and the robustness floor, with
 * the default settings: a long stationary stream is learned to KL ≤ 1e-3, a 3σ mean shift or a
 * doubled variance is re-learned (anomaly rate < 1 %) within 2,000 observations, and 1 % of points
 * at 10σ move loc by < 0.1σ.
 */
import assert from "node:assert/strict";
import { cusumRun, cusumStep } from "../src/model/change_detector.ts";
import { cpuEngine, feed, klToHead } from "./helpers/learning.ts";
import { gaussian, mvnRows, rng } from "./helpers/synthetic.ts";

const LOC = [5, -20, 300];
const TRIL = [[2, 0, 0], [-1.2, 0.6, 0], [30, 15, 50]];
const COV = TRIL.map((r) => TRIL.map((s) => r.reduce((x, v, k) => x + v * s[k], 0)));

Deno.test("the CUSUM's batch loop equals its per-row step", () => {
  const g = gaussian(rng(405));
  const m2 = Float64Array.from({ length: 2000 }, (_, i) => {
    const s = i < 1000 ? 0 : 1.5;
    return (g() + s) ** 2 + g() ** 2 + g() ** 2;
  });
  const rows = Int32Array.from(m2, (_, i) => i);
  let s = 0, alarm = -1;
  for (let r = 0; r < rows.length && alarm < 0; r++) {
    s = cusumStep(s, m2[r], 5_000, 3);
    if (s > 24) alarm = r;
  }
  const out = new Float64Array(1);
  const got = cusumRun(m2, rows, 0, 5_000, 3, 24, out);
  assert.equal(got, alarm);
  assert.ok(alarm > 1000 && Math.abs(out[0] - s) < 1e-9);
});

Deno.test("memory and change handling (defaults)", async (t) => {
  await t.step("60,000 stationary observations, d = 3: KL(true ‖ learned) ≤ 1e-3", async () => {
    for (const batch of [1, 256]) {
      const rows = mvnRows(60_000, LOC, TRIL, gaussian(rng(401)));
      await using engine = await cpuEngine({ dim: 3 });
      await feed(engine, rows, 3, batch);
      const [h] = await engine.snapshot();
      const kl = klToHead(LOC, COV, h);
      console.log(`stationary 60k, batch ${batch}: KL(true ‖ learned) = ${kl.toExponential(2)}`);
      assert(kl <= 1e-3, `KL ${kl}`);
      assert.equal(engine.bank.head("k")!.restarts, 0);
    }
  });

  for (const kind of ["3σ mean shift", "doubled variance"] as const) {
    await t.step(`${kind}: anomaly rate < 1 % within 2,000 observations`, async () => {
      for (const batch of [1, 64]) {
        const g = gaussian(rng(402));
        const before = mvnRows(20_000, LOC, TRIL, g);
        const loc2 = kind === "3σ mean shift" ? [LOC[0] + 3 * TRIL[0][0], LOC[1], LOC[2]] : LOC;
        const tril2 = kind === "3σ mean shift"
          ? TRIL
          : TRIL.map((r, a) => (a === 0 ? r.map((v) => v * Math.SQRT2) : r));
        const after = mvnRows(12_000, loc2, tril2, g);
        const rows = new Float64Array(before.length + after.length);
        rows.set(before);
        rows.set(after, before.length);
        await using engine = await cpuEngine({ dim: 3 });
        const flags = new Uint8Array(32_000);
        await feed(engine, rows, 3, batch, "k", (a, i0) => flags.set(a, i0));
        // Rate over the 10,000 observations from 2,000 after the change on.
        let n = 0;
        for (let i = 22_000; i < 32_000; i++) n += flags[i];
        const rate = n / 10_000;
        let early = 0;
        for (let i = 20_000; i < 22_000; i++) early += flags[i];
        console.log(
          `${kind}, batch ${batch}: anomaly rate ${(100 * rate).toFixed(3)} % from 2,000 after ` +
            `(first 2,000: ${(early / 20).toFixed(2)} %), restarts ${
              engine.bank.head("k")!.restarts
            }`,
        );
        assert(rate < 0.01, `rate ${rate}`);
      }
    });
  }

  await t.step("1 % of points at 10σ move loc by < 0.1σ", async () => {
    for (const batch of [1, 256]) {
      const g = gaussian(rng(403));
      const rows = mvnRows(30_000, LOC, TRIL, g);
      const clean = rows.slice();
      const u = rng(404);
      for (let i = 0; i < 30_000; i++) {
        if (u() < 0.01) {
          // 10σ along a random axis, either sign (σ of that axis).
          const a = Math.floor(3 * u());
          const sd = Math.sqrt(COV[a][a]);
          rows[i * 3 + a] += (u() < 0.5 ? -10 : 10) * sd;
        }
      }
      const heads = [];
      for (const data of [clean, rows]) {
        await using engine = await cpuEngine({ dim: 3 });
        await feed(engine, data, 3, batch);
        heads.push((await engine.snapshot())[0]);
      }
      let worst = 0;
      for (let a = 0; a < 3; a++) {
        worst = Math.max(worst, Math.abs(heads[0].loc[a] - heads[1].loc[a]) / Math.sqrt(COV[a][a]));
      }
      console.log(`outliers 1 % at 10σ, batch ${batch}: loc moved by ${worst.toFixed(4)}σ`);
      assert(worst < 0.1, `moved ${worst}σ`);
    }
  });
});
