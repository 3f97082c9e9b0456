import assert from "node:assert/strict";
import { betaInc, fIsf, fSf, logGamma } from "../src/model/f_dist.ts";

const FIX = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/f_dist.json", import.meta.url)),
) as Record<string, number[][]>;

function near(actual: number, expected: number, rel: number, what: string): void {
  const err = Math.abs(actual - expected);
  assert.ok(err <= rel * Math.abs(expected) + 1e-300, `${what}: ${actual} vs ${expected}`);
}

Deno.test("log Γ matches closed forms", () => {
  assert.ok(Math.abs(logGamma(1)) < 1e-14, "log Γ(1) = 0");
  near(Math.exp(logGamma(5)), 24, 1e-13, "Γ(5)");
  near(Math.exp(logGamma(0.5)), Math.sqrt(Math.PI), 1e-13, "Γ(1/2)");
  near(logGamma(100), 359.13420536957540, 1e-13, "log Γ(100)");
});

Deno.test("regularized incomplete beta matches closed forms and scipy", async (t) => {
  await t.step("closed forms: I_x(1, 1) = x, I_x(a, 1) = x^a, I_x(1, b) = 1 − (1 − x)^b", () => {
    for (const x of [0.1, 0.5, 0.9]) {
      near(betaInc(1, 1, x), x, 1e-13, "I(1,1)");
      near(betaInc(3, 1, x), x ** 3, 1e-13, "I(3,1)");
      near(betaInc(1, 4, x), 1 - (1 - x) ** 4, 1e-13, "I(1,4)");
    }
  });
  await t.step(`scipy.special.betainc at ${FIX.betainc.length} points`, () => {
    for (const [a, b, x, want] of FIX.betainc) {
      near(betaInc(a, b, x), want, 1e-9, `I_${x}(${a}, ${b})`);
    }
  });
});

Deno.test("F tail and quantile match scipy", async (t) => {
  await t.step("closed form: F(2, 2) tail is 1/(1 + x)", () => {
    for (const x of [0.5, 1, 7]) near(fSf(x, 2, 2), 1 / (1 + x), 1e-13, "F(2,2)");
  });
  await t.step(`scipy.stats.f.sf at ${FIX.f_sf.length} points`, () => {
    for (const [x, d1, d2, want] of FIX.f_sf) {
      near(fSf(x, d1, d2), want, 1e-8, `sf(${x}; ${d1}, ${d2})`);
    }
  });
  await t.step(`scipy.stats.f.isf at ${FIX.f_isf.length} points`, () => {
    for (const [p, d1, d2, want] of FIX.f_isf) {
      near(fIsf(p, d1, d2), want, 1e-9, `isf(${p}; ${d1}, ${d2})`);
    }
  });
});
