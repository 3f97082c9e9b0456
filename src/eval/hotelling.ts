/**
 * The classical baseline of `deno task eval`: a fit-once Hotelling T² chart. Phase I: mean x̄ and
 * (unbiased) covariance S of the first n rows; phase II: each later row x is flagged when
 *
 *   T² = (x − x̄)ᵀ S⁻¹ (x − x̄)  >  p(n + 1)(n − 1) / (n(n − p)) · F_{1−α}(p, n − p),
 *
 * the control limit for a new observation independent of the phase I sample (Montgomery,
 * "Introduction to Statistical Quality Control", §11.3), at the same α as the project's anomaly flag.
 *
 * @module
 */
import { cholesky } from "../model/linalg.ts";
import { fIsf } from "../model/f_tail.ts";

/** A fitted chart. */
export class HotellingT2 {
  readonly d: number;
  readonly n: number;
  readonly alpha: number;
  /** Upper control limit of T². */
  readonly limit: number;
  readonly mean: Float64Array;
  /** Lower Cholesky factor of S (ridge-regularised when S is singular). */
  readonly #l: Float64Array;

  private constructor(d: number, n: number, alpha: number, mean: Float64Array, l: Float64Array) {
    this.d = d;
    this.n = n;
    this.alpha = alpha;
    this.mean = mean;
    this.#l = l;
    this.limit = ((d * (n + 1) * (n - 1)) / (n * (n - d))) * fIsf(alpha, d, n - d);
  }

  /** Fits on the first n rows of `rows` (row-major, d per row); n > d + 1. */
  static fit(rows: ArrayLike<number>, n: number, d: number, alpha: number): HotellingT2 {
    if (!(n > d + 1)) throw new RangeError(`expected more than ${d + 1} phase I rows, found ${n}`);
    const mean = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let a = 0; a < d; a++) mean[a] += rows[i * d + a];
    for (let a = 0; a < d; a++) mean[a] /= n;
    const s = new Float64Array(d * d);
    for (let i = 0; i < n; i++) {
      for (let a = 0; a < d; a++) {
        const da = rows[i * d + a] - mean[a];
        for (let b = 0; b <= a; b++) s[a * d + b] += da * (rows[i * d + b] - mean[b]);
      }
    }
    for (let a = 0; a < d; a++) {
      for (let b = 0; b <= a; b++) {
        s[a * d + b] /= n - 1;
        s[b * d + a] = s[a * d + b];
      }
    }
    const l = new Float64Array(d * d);
    let trace = 0;
    for (let a = 0; a < d; a++) trace += s[a * d + a];
    // A constant or collinear column: the smallest ridge that makes S positive definite.
    for (let ridge = 0; !cholesky(s, d, l); ridge = ridge === 0 ? 1e-12 * trace : ridge * 10) {
      for (let a = 0; a < d; a++) s[a * d + a] += ridge === 0 ? 1e-12 * trace : ridge * 9;
    }
    return new HotellingT2(d, n, alpha, mean, l);
  }

  /** T² of the row at `rows[off .. off + d)`. */
  t2(rows: ArrayLike<number>, off = 0): number {
    const d = this.d;
    const l = this.#l;
    const z = new Float64Array(d);
    let t2 = 0;
    for (let a = 0; a < d; a++) {
      let v = rows[off + a] - this.mean[a];
      for (let b = 0; b < a; b++) v -= l[a * d + b] * z[b];
      z[a] = v / l[a * d + a];
      t2 += z[a] * z[a];
    }
    return t2;
  }
}
