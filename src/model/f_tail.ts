/**
 * Upper tail of the F distribution, P(F(ν₁, ν₂) ≥ f), with relative accuracy far into the tail,
 * for real ν₁, ν₂ > 0 (ν₂ = effective n − d is not an integer under forgetting), and its inverse.
 *
 * P(F ≥ f) = I_x(ν₂/2, ν₁/2) with x = ν₂/(ν₂ + ν₁·f): the regularized incomplete beta function,
 * evaluated as in Numerical Recipes (§6.4) — the Lentz continued fraction on whichever side of
 * the mean it converges fast, with the prefactor x^a·(1−x)^b/(a·B(a, b)) kept in log space, so
 * nothing underflows before the final exp. Both x and 1 − x are formed without cancellation.
 *
 * @module
 */

import { chi2Isf, chi2Sf } from "./chi2.ts";

const EPS = 1e-16;
const TINY = 1e-300;
const MAX_ITER = 10_000;

/** Lanczos coefficients (g = 607/128, 15 terms): lnΓ to ~1e−15 relative. */
const LANCZOS_G = 607 / 128;
const LANCZOS = [
  0.99999999999999709182,
  57.156235665862923517,
  -59.597960355475491248,
  14.136097974741747174,
  -0.49191381609762019978,
  0.33994649984811888699e-4,
  0.46523628927048575665e-4,
  -0.98374475304879564677e-4,
  0.15808870322491248884e-3,
  -0.21026444172410488319e-3,
  0.21743961811521264320e-3,
  -0.16431810653676389022e-3,
  0.84418223983852743293e-4,
  -0.26190838401581408670e-4,
  0.36899182659531622704e-5,
];
const HALF_LN_2PI = 0.5 * Math.log(2 * Math.PI);

/** ln Γ(x) for x > 0. */
export function lnGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const z = x - 1;
  let s = LANCZOS[0];
  for (let k = 1; k < LANCZOS.length; k++) s += LANCZOS[k] / (z + k);
  const t = z + LANCZOS_G + 0.5;
  return HALF_LN_2PI + (z + 0.5) * Math.log(t) - t + Math.log(s);
}

/** Stirling's correction lnΓ(x) − [(x − ½)ln x − x + ½ln 2π], x ≥ 10. */
function stirlingCorr(x: number): number {
  const r = 1 / x, r2 = r * r;
  return r * (1 / 12 - r2 * (1 / 360 - r2 * (1 / 1260 - r2 * (1 / 1680 - r2 / 1188))));
}

/**
 * ln B(a, b). When one argument is large, lnΓ(b) − lnΓ(a + b) is formed from Stirling's series
 * directly (the two logs would each be ~b·ln b and cancel).
 */
function lnBeta(a: number, b: number): number {
  if (a > b) {
    // A swap by temporary: a destructured swap may build an array, once per p-value.
    const t = a;
    a = b;
    b = t;
  }
  if (b < 10) return lnGamma(a) + lnGamma(b) - lnGamma(a + b);
  const diff = -a * Math.log(b) - (a + b - 0.5) * Math.log1p(a / b) + a + stirlingCorr(b) -
    stirlingCorr(a + b);
  return lnGamma(a) + diff;
}

/** Continued fraction of I_x(a, b) (NR `betacf`), y = 1 − x given separately. */
function betaCf(a: number, b: number, x: number): number {
  const qab = a + b, qap = a + 1, qam = a - 1;
  let c = 1;
  let dd = 1 - (qab * x) / qap;
  if (Math.abs(dd) < TINY) dd = TINY;
  dd = 1 / dd;
  let h = dd;
  for (let m = 1; m <= MAX_ITER; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    dd = 1 + aa * dd;
    if (Math.abs(dd) < TINY) dd = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    dd = 1 / dd;
    h *= dd * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    dd = 1 + aa * dd;
    if (Math.abs(dd) < TINY) dd = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    dd = 1 / dd;
    const del = dd * c;
    h *= del;
    if (Math.abs(del - 1) < EPS) return h;
  }
  return h;
}

/** ln I_x(a, b), with y = 1 − x passed in (computed without cancellation by the caller). */
export function logBetaInc(x: number, y: number, a: number, b: number): number {
  if (!(x > 0)) return x === 0 ? -Infinity : NaN;
  if (!(y > 0)) return y === 0 ? 0 : NaN;
  const lnFront = a * Math.log(x) + b * Math.log(y) - lnBeta(a, b);
  if (x < (a + 1) / (a + b + 2)) return lnFront + Math.log(betaCf(a, b, x) / a);
  // I_x(a, b) = 1 − I_y(b, a); the subtracted part is below ~1/2 here.
  const other = Math.exp(lnFront + Math.log(betaCf(b, a, y) / b));
  return Math.log1p(-Math.min(other, 1));
}

/** ln P(F(ν₁, ν₂) ≥ f). 0 for f ≤ 0; NaN in, NaN out. */
export function fLogSf(f: number, nu1: number, nu2: number): number {
  if (Number.isNaN(f)) return NaN;
  if (f <= 0) return 0;
  if (f === Infinity) return -Infinity;
  const den = nu2 + nu1 * f;
  return logBetaInc(nu2 / den, (nu1 * f) / den, nu2 / 2, nu1 / 2);
}

/** P(F(ν₁, ν₂) ≥ f). */
export function fSf(f: number, nu1: number, nu2: number): number {
  return Math.exp(fLogSf(f, nu1, nu2));
}

/** ln of the F(ν₁, ν₂) density at f > 0. */
function fLogPdf(f: number, nu1: number, nu2: number): number {
  const r = (nu1 * f) / nu2;
  return 0.5 * nu1 * Math.log(nu1 / nu2) + (0.5 * nu1 - 1) * Math.log(f) -
    0.5 * (nu1 + nu2) * Math.log1p(r) - lnBeta(0.5 * nu1, 0.5 * nu2);
}

/**
 * The f with P(F(ν₁, ν₂) ≥ f) = p, 0 < p < 1: Newton on ln f for ln P (d ln P/d ln f =
 * −f·pdf/P), from `guess` (default: the χ² limit); bisection if Newton does not settle.
 * ~1e−13 relative.
 */
export function fIsf(p: number, nu1: number, nu2: number, guess?: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`expected a probability in (0, 1), found ${p}`);
  const target = Math.log(p);
  const start = guess !== undefined && guess > 0
    ? guess
    : Number.isInteger(nu1) && nu1 <= 64
    ? chi2Isf(p, nu1) / nu1
    : 1;
  let u = Math.log(start);
  {
    for (let it = 0; it < 50; it++) {
      const f = Math.exp(u);
      const ls = fLogSf(f, nu1, nu2);
      const slope = -f * Math.exp(fLogPdf(f, nu1, nu2) - ls);
      if (!(slope < 0) || !Number.isFinite(ls)) break;
      let step = (target - ls) / slope;
      if (step > 2) step = 2;
      else if (step < -2) step = -2;
      u += step;
      // Quadratic convergence: after a step below 1e−7 the error is ~1e−14.
      if (Math.abs(step) < 1e-7) return Math.exp(u);
    }
  }
  return _fIsfBisect(target, nu1, nu2);
}

function _fIsfBisect(target: number, nu1: number, nu2: number): number {
  let lo = 0, hi = 1;
  while (fLogSf(hi, nu1, nu2) > target) {
    lo = hi;
    hi *= 2;
    if (hi > 1e300) return Infinity;
  }
  for (let it = 0; it < 200 && hi - lo > 1e-14 * hi; it++) {
    const mid = 0.5 * (lo + hi);
    if (fLogSf(mid, nu1, nu2) > target) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/**
 * The predictive tail of a new observation's Mahalanobis² m² = (x − x̄)ᵀΣ̂⁻¹(x − x̄), with (x̄, Σ̂)
 * the mean and *biased* (MLE) covariance of n Gaussian observations in d dimensions, x independent
 * of them: T² = (n − 1)/(n + 1)·m² is Hotelling's T², and (n − d)/(d·(n + 1))·m² ~ F(d, n − d).
 * Returns the factor c with F = c·m² (0 when n ≤ d: no information, p = 1).
 */
export function predictiveFactor(n: number, d: number): number {
  return n > d ? (n - d) / (d * (n + 1)) : 0;
}

/**
 * P-value of m² under the predictive distribution with n (effective) observations; n = Infinity
 * (parameters taken as known) gives the χ²_d tail.
 */
export function predictiveSf(m2: number, n: number, d: number): number {
  if (n === Infinity) return chi2Sf(m2, d);
  const c = predictiveFactor(n, d);
  if (c === 0) return Number.isNaN(m2) ? NaN : 1;
  return fSf(c * m2, d, n - d);
}

/**
 * The m² above which the predictive p-value is below alpha (Infinity when n ≤ d); `guess`: an
 * m² threshold near the answer (a previous one) to start Newton from.
 */
export function predictiveThreshold(alpha: number, n: number, d: number, guess?: number): number {
  if (n === Infinity) return chi2Isf(alpha, d);
  const c = predictiveFactor(n, d);
  if (c === 0) return Infinity;
  const g = guess !== undefined && Number.isFinite(guess) ? guess * c : undefined;
  return fIsf(alpha, d, n - d, g) / c;
}
