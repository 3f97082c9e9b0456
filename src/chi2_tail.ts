/**
 * Fast P(χ²_d ≥ x) for one fixed d, for the per-row hot path.
 *
 * With u = √x, g(u) = ln P(χ²_d ≥ u²) + u²/2 is smooth and slowly varying on [0, U_MAX), so it is
 * tabulated once per d as piecewise cubic Hermite polynomials (values and exact derivatives from the
 * log-space `chi2LogSf` and the χ² density), step 1/256: relative error of the tail below 1e−11 (~2e−12 measured).
 * Then P = e^{−(u²/2 − g(u))}, with e^{−y} from a table and a short polynomial (no Math.exp). Beyond
 * U_MAX (P below ~1e−28 for d = 3) it defers to the exact `chi2Sf`.
 *
 * @module
 */
import { chi2LogSf, chi2Sf } from "./chi2.ts";

const STEPS_PER_UNIT = 256;
const U_MAX = 12;
const CELLS = U_MAX * STEPS_PER_UNIT;

// e^{−y} without Math.exp (~20 ns here): y = (256·m + j)·ln2/256 + r with |r| ≤ ln2/512, and
// e^{−y} = 2^{−m} · 2^{−j/256} · e^{−r}, the last by its degree-4 Taylor polynomial (error < 1e−16).
const _FRAC_BITS = 8;
const _FRAC = 1 << _FRAC_BITS;
const _LN2_F = Math.LN2 / _FRAC;
const _INV_LN2_F = _FRAC / Math.LN2;
const _EXP2_FRAC = Float64Array.from({ length: _FRAC }, (_, j) => Math.pow(2, -j / _FRAC));
const _EXP2_INT = Float64Array.from({ length: 1076 }, (_, m) => Math.pow(2, -m));

function _lnGammaHalf(d: number): number {
  let v = d % 2 === 1 ? 0.5 * Math.log(Math.PI) : 0;
  for (let k = d % 2 === 1 ? 1 : 2; k < d; k += 2) v += Math.log(k / 2);
  return v;
}

/** P(χ²_d ≥ x) for a fixed d, fast. */
export class Chi2Tail {
  readonly d: number;
  /** CELLS × 4 cubic coefficients in t ∈ [0, 1) per cell. */
  private readonly _poly: Float64Array;

  constructor(d: number) {
    if (!Number.isInteger(d) || d < 1 || d > 64) {
      throw new RangeError(`expected an integer dimension in [1, 64], found ${d}`);
    }
    this.d = d;
    const h = 1 / STEPS_PER_UNIT;
    const lnNorm = (d / 2) * Math.LN2 + _lnGammaHalf(d);
    const g = new Float64Array(CELLS + 1);
    const dg = new Float64Array(CELLS + 1);
    for (let i = 0; i <= CELLS; i++) {
      const u = i * h;
      const x = u * u;
      const lq = chi2LogSf(x, d);
      g[i] = lq + x / 2;
      // d/du ln Q(u²) = −2u·f(u²)/Q(u²), f the χ²_d density (in log space); at u = 0 its limit.
      let dlq = 0;
      if (u > 0) dlq = -2 * u * Math.exp((d / 2 - 1) * Math.log(x) - x / 2 - lnNorm - lq);
      else if (d === 1) dlq = -Math.sqrt(2 / Math.PI);
      dg[i] = dlq + u;
    }
    this._poly = new Float64Array(CELLS * 4);
    for (let i = 0; i < CELLS; i++) {
      const p0 = g[i], p1 = g[i + 1], m0 = dg[i] * h, m1 = dg[i + 1] * h;
      const o = i * 4;
      this._poly[o] = p0;
      this._poly[o + 1] = m0;
      this._poly[o + 2] = 3 * (p1 - p0) - 2 * m0 - m1;
      this._poly[o + 3] = 2 * (p0 - p1) + m0 + m1;
    }
    this.sf = _tailFunction(this._poly, d);
  }

  /** P(χ²_d ≥ x). */
  readonly sf: (x: number) => number;
}

function _tailFunction(c: Float64Array, d: number): (x: number) => number {
  return (x: number): number => {
    if (!(x > 0)) return Number.isNaN(x) ? NaN : 1;
    const s = Math.sqrt(x) * STEPS_PER_UNIT;
    if (s >= CELLS) return chi2Sf(x, d);
    const i = s | 0;
    const t = s - i;
    const o = i * 4;
    const y = 0.5 * x - (c[o] + t * (c[o + 1] + t * (c[o + 2] + t * c[o + 3])));
    if (!(y > 0)) return Math.min(1, Math.exp(-y));
    // e^{−y}, y < 72 here (u < U_MAX), so no range checks.
    const q = (y * _INV_LN2_F + 0.5) | 0;
    const r = y - q * _LN2_F;
    return _EXP2_INT[q >> _FRAC_BITS] * _EXP2_FRAC[q & (_FRAC - 1)] *
      (1 - r * (1 - r * (0.5 - r * (1 / 6 - r * (1 / 24)))));
  };
}
