import assert from "node:assert/strict";
import { chi2Isf, chi2LogSf, chi2Sf } from "../src/model/chi2.ts";

function rel(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}

/** Even d: Q(k, y) = e^{−y}·Σ_{j<k} y^j/j! (closed form, independent of the implementation). */
function evenSf(x: number, d: number): number {
  const y = x / 2;
  let term = 1;
  let sum = 1;
  for (let j = 1; j < d / 2; j++) {
    term *= y / j;
    sum += term;
  }
  return Math.exp(-y) * sum;
}

/**
 * P(χ²₃ ≥ 2y) far in the tail: Q(3/2, y) = erfc(√y) + 2√(y/π)·e^{−y}, with the asymptotic
 * erfc(s) ~ e^{−s²}/(s√π)·Σ (−1)^k (2k−1)!!/(2s²)^k (8 terms: exact to double precision at y ≫ 1).
 */
function asymptoticSf3(y: number): number {
  let series = 0;
  let term = 1;
  for (let k = 0; k < 8; k++) {
    series += term;
    term *= -(2 * k + 1) / (2 * y);
  }
  return (Math.exp(-y) / Math.sqrt(Math.PI * y)) * series +
    2 * Math.sqrt(y / Math.PI) * Math.exp(-y);
}

Deno.test("chi2 tail matches closed forms for even d across the range", () => {
  for (const d of [2, 4, 8, 16, 32]) {
    for (const x of [1e-6, 0.1, 1, d, 3 * d, 50, 200, 600]) {
      assert.ok(rel(chi2Sf(x, d), evenSf(x, d)) < 1e-12, `d=${d} x=${x}`);
    }
  }
});

Deno.test("chi2 tail keeps relative accuracy down to 1e-300", async (t) => {
  await t.step("d = 2: P = exp(−x/2) exactly", () => {
    const x = 2 * 690.7755; // exp(−690.78) ≈ 1e−300
    assert.ok(rel(chi2Sf(x, 2), Math.exp(-x / 2)) < 1e-12);
    assert.ok(chi2Sf(x, 2) > 0 && chi2Sf(x, 2) < 2e-300);
  });
  await t.step("d = 3 against the asymptotic erfc expansion", () => {
    const want = asymptoticSf3(680);
    assert.ok(want < 1e-290);
    assert.ok(rel(chi2Sf(2 * 680, 3), want) < 1e-12);
  });
  await t.step("log tail stays finite beyond double range", () => {
    const lp = chi2LogSf(5000, 3);
    assert.ok(Number.isFinite(lp) && lp < -2400);
  });
});

Deno.test("chi2 quantile inverts the tail", () => {
  for (const d of [1, 3, 5, 32]) {
    for (const p of [0.5, 1e-3, 1e-12]) assert.ok(rel(chi2Sf(chi2Isf(p, d), d), p) < 1e-9);
  }
  // Textbook value: the 95 % quantile of χ²₁ is 1.959964² = 3.841459.
  assert.ok(Math.abs(chi2Isf(0.05, 1) - 3.8414588) < 1e-6);
});

Deno.test("chi2 rejects dimensions it does not support", () => {
  assert.throws(() => chi2Sf(1, 0), RangeError);
  assert.throws(() => chi2Sf(1, 2.5), RangeError);
});

Deno.test("the fast per-d tail agrees with the closed forms and the exact routine", async (t) => {
  const { Chi2Tail } = await import("../src/model/chi2_tail.ts");
  // The fast tail is a tabulated interpolation: documented to 1e−11 relative (the exact one to 1e−12).
  await t.step("even d against e^{−y}·Σ y^j/j!", () => {
    for (const d of [2, 4, 32]) {
      const tail = new Chi2Tail(d);
      for (const x of [1e-6, 0.3, 1, d, 50, 300, 1300]) {
        assert.ok(rel(tail.sf(x), evenSf(x, d)) < 1e-12);
      }
    }
  });
  await t.step("odd d against the log-space routine on a dense grid", () => {
    for (const d of [1, 3, 5, 31]) {
      const tail = new Chi2Tail(d);
      for (let x = 1e-4; x < 200; x = x * 1.01 + 1e-3) {
        assert.ok(rel(tail.sf(x), chi2Sf(x, d)) < 1e-11, `d=${d} x=${x}`);
      }
    }
  });
  await t.step("d = 3 far tail against the asymptotic expansion", () => {
    assert.ok(rel(new Chi2Tail(3).sf(2 * 680), asymptoticSf3(680)) < 1e-12);
  });
});
