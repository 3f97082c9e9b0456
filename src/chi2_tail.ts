/**
 * Fast P(χ²_d ≥ x) for one fixed d, for the per-row hot path. Uses the finite closed forms
 *   even d = 2k:   Q = e^{−y}·Σ_{j<k} y^j/j!
 *   odd d = 2k+1:  Q = erfc(√y) + e^{−y}·Σ_{j<k} y^{j+½}/Γ(j+3/2)
 * (y = x/2), all terms positive so relative accuracy holds. erfc(s) = e^{−s²}·erfcx(s) with erfcx
 * from piecewise Chebyshev fits built at construction from the exact `chi2Sf` (d = 1). Far in the
 * tail (y > 18 for odd d, y > 700 for even d) it defers to the exact log-space `chi2Sf`.
 *
 * @module
 */
import { chi2Sf } from "./chi2.ts";

const PIECE = 0.25;
const S_MAX = 6; // erfc fits cover √y in [0, 6): y < 36 would do; 18 keeps the fits well inside.
const PIECES = S_MAX / PIECE;
const DEGREE = 14;
const Y_ODD_MAX = 18;
const Y_EVEN_MAX = 700;

function _erfcxFits(): Float64Array {
  const coef = new Float64Array(PIECES * DEGREE);
  const f = new Float64Array(DEGREE);
  for (let p = 0; p < PIECES; p++) {
    const a = p * PIECE;
    const b = a + PIECE;
    for (let k = 0; k < DEGREE; k++) {
      const t = Math.cos((Math.PI * (k + 0.5)) / DEGREE);
      const s = 0.5 * (a + b) + 0.5 * (b - a) * t;
      // erfc(s) = P(χ²₁ ≥ 2s²); erfcx(s) = erfc(s)·e^{s²}.
      f[k] = chi2Sf(2 * s * s, 1) * Math.exp(s * s);
    }
    for (let j = 0; j < DEGREE; j++) {
      let sum = 0;
      for (let k = 0; k < DEGREE; k++) sum += f[k] * Math.cos((Math.PI * j * (k + 0.5)) / DEGREE);
      coef[p * DEGREE + j] = ((j === 0 ? 1 : 2) / DEGREE) * sum;
    }
  }
  return coef;
}

let _fits: Float64Array | null = null;

// e^{−y} without Math.exp (which costs ~20 ns here): y = (64·m + j)·ln2/64 + r, |r| ≤ ln2/128,
// e^{−y} = 2^{−m} · 2^{−j/64} · e^{−r}, the last by its degree-6 Taylor polynomial (error < 1e−18).
const _LN2_64 = Math.LN2 / 64;
const _EXP2_FRAC = Float64Array.from({ length: 64 }, (_, j) => Math.pow(2, -j / 64));
const _EXP2_INT = Float64Array.from({ length: 1076 }, (_, m) => Math.pow(2, -m));

/** e^{−y} for y ≥ 0, to about 2 ulp; 0 beyond the subnormal range. */
export function expNeg(y: number): number {
  const q = Math.round(y / _LN2_64);
  if (q >= 1076 * 64) return 0;
  const r = y - q * _LN2_64;
  const poly = 1 - r * (1 - r * (0.5 - r * (1 / 6 - r * (1 / 24 - r * (1 / 120 - r / 720)))));
  return _EXP2_INT[q >> 6] * _EXP2_FRAC[q & 63] * poly;
}

/** P(χ²_d ≥ x) for a fixed d, fast. */
export class Chi2Tail {
  readonly d: number;
  readonly #k: number;
  readonly #odd: boolean;
  /** Odd d: 1/Γ(j + 3/2); even d: 1/j!. */
  readonly #c: Float64Array;
  readonly #fits: Float64Array;

  constructor(d: number) {
    if (!Number.isInteger(d) || d < 1 || d > 64) {
      throw new RangeError(`expected an integer dimension in [1, 64], found ${d}`);
    }
    this.d = d;
    this.#odd = d % 2 === 1;
    this.#k = Math.floor(d / 2);
    this.#c = new Float64Array(Math.max(this.#k, 1));
    let g = this.#odd ? 0.5 * Math.sqrt(Math.PI) : 1; // Γ(3/2) or 0!
    for (let j = 0; j < this.#k; j++) {
      if (this.#odd) {
        this.#c[j] = 1 / g;
        g *= j + 1.5;
      } else {
        this.#c[j] = 1 / g;
        g *= j + 1;
      }
    }
    this.#fits = _fits ??= _erfcxFits();
  }

  /** P(χ²_d ≥ x). */
  sf(x: number): number {
    if (!(x > 0)) return Number.isNaN(x) ? NaN : 1;
    const y = 0.5 * x;
    if (this.#odd) {
      if (y >= Y_ODD_MAX) return chi2Sf(x, this.d);
      const s = Math.sqrt(y);
      const e = expNeg(y);
      let q = e * this.#erfcx(s);
      if (this.#k > 0) {
        let term = s; // y^{j+½}
        let sum = 0;
        for (let j = 0; j < this.#k; j++) {
          sum += term * this.#c[j];
          term *= y;
        }
        q += e * sum;
      }
      return q;
    }
    if (y >= Y_EVEN_MAX) return chi2Sf(x, this.d);
    let term = 1;
    let sum = 0;
    for (let j = 0; j < this.#k; j++) {
      sum += term * this.#c[j];
      term *= y;
    }
    return expNeg(y) * sum;
  }

  #erfcx(s: number): number {
    const p = Math.min(Math.floor(s / PIECE), PIECES - 1);
    const a = p * PIECE;
    const t = (2 * (s - a)) / PIECE - 1;
    const c = this.#fits;
    const base = p * DEGREE;
    // Clenshaw recurrence for Σ c_j T_j(t) (c_0 already halved via the 1/DEGREE weight).
    let b1 = 0;
    let b2 = 0;
    const t2 = 2 * t;
    for (let j = DEGREE - 1; j >= 1; j--) {
      const b0 = t2 * b1 - b2 + c[base + j];
      b2 = b1;
      b1 = b0;
    }
    return t * b1 - b2 + c[base];
  }
}
