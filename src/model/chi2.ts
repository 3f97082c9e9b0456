/**
 * χ² tail probabilities P(χ²_d ≥ x) with relative accuracy far into the tail (down to the
 * smallest normal double, ~1e-308), for integer d ≥ 1.
 *
 * Q(a, y) = Γ(a, y)/Γ(a) with a = d/2, y = x/2: the power series for P = 1 − Q when y < a + 1,
 * the Lentz continued fraction for Q otherwise. Both carry the prefactor exp(−y + a·ln y − lnΓ(a))
 * in log space, so nothing underflows before the final exp.
 *
 * @module
 */

const EPS = 1e-16;
const TINY = 1e-300;
const MAX_ITER = 500;

/** lnΓ(d/2) for d = 1..64, exact recurrences from Γ(1) = 1 and Γ(1/2) = √π. */
const LN_GAMMA_HALF: Float64Array = (() => {
  const out = new Float64Array(65);
  out[1] = 0.5 * Math.log(Math.PI);
  out[2] = 0;
  for (let d = 3; d <= 64; d++) out[d] = out[d - 2] + Math.log(d / 2 - 1);
  return out;
})();

function lnGammaHalf(d: number): number {
  if (!Number.isInteger(d) || d < 1 || d > 64) {
    throw new RangeError(`expected an integer dimension in [1, 64], found ${d}`);
  }
  return LN_GAMMA_HALF[d];
}

/** ln P(χ²_d ≥ x); −Infinity only beyond double range, 0 for x ≤ 0. NaN in, NaN out. */
export function chi2LogSf(x: number, d: number): number {
  const lg = lnGammaHalf(d);
  if (Number.isNaN(x)) return NaN;
  if (x <= 0) return 0;
  if (x === Infinity) return -Infinity;
  const a = d / 2;
  const y = x / 2;
  const logPrefactor = -y + a * Math.log(y) - lg;
  if (y < a + 1) {
    // P(a, y) = prefactor/a · Σ y^n / ((a+1)…(a+n)); Q = 1 − P never underflows here (Q ≳ 0.08).
    let ap = a;
    let term = 1 / a;
    let sum = term;
    for (let n = 0; n < MAX_ITER; n++) {
      ap += 1;
      term *= y / ap;
      sum += term;
      if (term < sum * EPS) break;
    }
    const p = Math.exp(logPrefactor + Math.log(sum));
    return Math.log1p(-p);
  }
  // Continued fraction for Q(a, y) (modified Lentz), relative accuracy in the far tail.
  let b = y + 1 - a;
  let c = 1 / TINY;
  let dd = 1 / b;
  let h = dd;
  for (let i = 1; i <= MAX_ITER; i++) {
    const an = -i * (i - a);
    b += 2;
    dd = an * dd + b;
    if (Math.abs(dd) < TINY) dd = TINY;
    c = b + an / c;
    if (Math.abs(c) < TINY) c = TINY;
    dd = 1 / dd;
    const delta = dd * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPS) break;
  }
  return logPrefactor + Math.log(h);
}

/** P(χ²_d ≥ x). Underflows to 0 only below ~1e-308. */
export function chi2Sf(x: number, d: number): number {
  return Math.exp(chi2LogSf(x, d));
}

/** The x with P(χ²_d ≥ x) = p, for p in (0, 1), by bisection on the log tail (monotone). */
export function chi2Isf(p: number, d: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`expected a probability in (0, 1), found ${p}`);
  const target = Math.log(p);
  let lo = 0;
  let hi = Math.max(1, d);
  while (chi2LogSf(hi, d) > target) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = 0.5 * (lo + hi);
    if (chi2LogSf(mid, d) > target) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}
