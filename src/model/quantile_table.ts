/**
 * The predictive m² threshold as a function of the effective n, for one (alpha, d): the engine needs
 * it per key and batch, and n changes with every batch of a young key (a Newton solve each time
 * would cost more than scoring the batch). Tabulated lazily on a grid in u = ln(n − d), step 1/256,
 * and read by 4-point Lagrange interpolation: the threshold is smooth in u (≈ χ²-quantile·(1 +
 * a·e^{−u})), so the interpolation error is below ~1e−9 relative — flags agree with `p < alpha` up to
 * rows that close to the threshold. Close to n = d (u < 2) and beyond the grid it is solved exactly.
 *
 * @module
 */
import { chi2Isf } from "../chi2.ts";
import { predictiveThreshold } from "./f_tail.ts";

const STEPS = 256;
const U_MIN = 2;
const U_MAX = 21; // n − d up to ~1.3e9

/** m² threshold of the predictive tail at `alpha` for effective n, dimension d. */
export class PredictiveQuantile {
  readonly #alpha: number;
  readonly #d: number;
  readonly #grid: Float64Array;
  readonly #chi2: number;

  constructor(alpha: number, d: number) {
    this.#alpha = alpha;
    this.#d = d;
    this.#grid = new Float64Array((U_MAX + 1) * STEPS + 4).fill(NaN);
    this.#chi2 = chi2Isf(alpha, d);
  }

  /** The threshold (Infinity when n ≤ d; the χ² quantile for n = Infinity). */
  value(n: number): number {
    const d = this.#d;
    if (n === Infinity) return this.#chi2;
    if (!(n > d)) return Infinity;
    const u = Math.log(n - d);
    if (u < U_MIN || u >= U_MAX) return predictiveThreshold(this.#alpha, n, d, this.#chi2);
    const s = u * STEPS;
    const i = Math.floor(s);
    const t = s - i;
    const y0 = this.#at(i - 1), y1 = this.#at(i), y2 = this.#at(i + 1), y3 = this.#at(i + 2);
    // Lagrange through nodes −1, 0, 1, 2 at t.
    return (-t * (t - 1) * (t - 2) / 6) * y0 + ((t + 1) * (t - 1) * (t - 2) / 2) * y1 -
      ((t + 1) * t * (t - 2) / 2) * y2 + ((t + 1) * t * (t - 1) / 6) * y3;
  }

  #at(i: number): number {
    let v = this.#grid[i];
    if (Number.isNaN(v)) {
      const n = this.#d + Math.exp(i / STEPS);
      const near = this.#grid[i - 1];
      v = predictiveThreshold(this.#alpha, n, this.#d, Number.isNaN(near) ? this.#chi2 : near);
      this.#grid[i] = v;
    }
    return v;
  }
}
