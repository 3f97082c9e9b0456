import assert from "node:assert/strict";
import {
  fIsf,
  fLogSf,
  fSf,
  lnGamma,
  predictiveSf,
  predictiveThreshold,
} from "../src/model/f_tail.ts";
import { chi2Sf } from "../src/model/chi2.ts";

interface SfCase {
  nu1: number;
  nu2: number;
  f: number;
  sf: number;
  logsf: number;
}
const fx = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/f_tail.json", import.meta.url)),
) as { sf: SfCase[]; isf: { nu1: number; nu2: number; p: number; f: number }[] };

Deno.test("F tail against scipy.stats.f", async (t) => {
  await t.step("lnGamma at known values", () => {
    assert(Math.abs(lnGamma(1)) < 1e-14);
    assert(Math.abs(lnGamma(0.5) - 0.5 * Math.log(Math.PI)) < 1e-14);
    assert(Math.abs(lnGamma(101) - 363.73937555556347) / 363.7 < 1e-14);
  });
  await t.step("log sf: relative 1e-9 in the log (deep tail), sf relative 1e-9", () => {
    let worst = 0;
    for (const c of fx.sf) {
      const got = fLogSf(c.f, c.nu1, c.nu2);
      const err = Math.abs(got - c.logsf) / Math.max(1, Math.abs(c.logsf));
      worst = Math.max(worst, err);
      assert(err < 1e-9, `nu1=${c.nu1} nu2=${c.nu2} f=${c.f}: ${got} vs ${c.logsf}`);
      if (c.sf > 1e-300) {
        const e2 = Math.abs(fSf(c.f, c.nu1, c.nu2) - c.sf) / c.sf;
        assert(e2 < 1e-8, `sf nu1=${c.nu1} nu2=${c.nu2} f=${c.f}: ${e2}`);
      }
    }
  });
  await t.step("isf against scipy", () => {
    for (const c of fx.isf) {
      const got = fIsf(c.p, c.nu1, c.nu2);
      assert(Math.abs(got - c.f) / c.f < 1e-9, `${JSON.stringify(c)}: ${got}`);
    }
  });
  await t.step("predictive tail tends to chi2 as n grows; threshold inverts it", () => {
    for (const d of [3, 8]) {
      const m2 = 20;
      const p = predictiveSf(m2, 1e9, d);
      assert(Math.abs(p - chi2Sf(m2, d)) / chi2Sf(m2, d) < 1e-5);
      assert(predictiveSf(m2, 50, d) > chi2Sf(m2, d));
      const thr = predictiveThreshold(1e-3, 40, d);
      assert(Math.abs(predictiveSf(thr, 40, d) - 1e-3) < 1e-12);
      assert(predictiveSf(5, d, d) === 1 && predictiveThreshold(1e-3, d, d) === Infinity);
    }
  });
});

Deno.test("predictive threshold table matches the exact quantile", async (t) => {
  const { PredictiveQuantile } = await import("../src/model/quantile_table.ts");
  for (const [alpha, d] of [[1e-3, 3], [1e-2, 8], [1e-3, 32]]) {
    await t.step(`alpha=${alpha} d=${d}`, () => {
      const q = new PredictiveQuantile(alpha, d);
      let worst = 0;
      for (let k = 0; k < 400; k++) {
        const n = d + 1.01 + Math.exp(k * 0.045) * 0.5;
        if (n > 1e7) break;
        const exact = predictiveThreshold(alpha, n, d);
        worst = Math.max(worst, Math.abs(q.value(n) - exact) / exact);
      }
      assert(worst < 1e-8, `worst relative error ${worst}`);
      assert.equal(q.value(d), Infinity);
    });
  }
});
