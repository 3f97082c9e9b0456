/**
 * The predictive m² threshold as a function of the effective n, for one (alpha, d): the engine needs
 * it per key and batch, and n changes with every batch of a young key (a Newton solve each time
 * would cost more than scoring the batch). Tabulated lazily and read by 4-point Lagrange
 * interpolation on two grids: in u = ln(n − d), step 1/128, for n − d below 1024, and in
 * v = 1/(n − d), step 1/(1024·256), beyond (the threshold is analytic in v down to v = 0, the χ²
 * quantile, so a whole key's lifetime from n = 1024 to a full memory crosses ~250 grid points
 * once). Interpolation error below ~3e−9 relative: flags agree with `p < alpha` up to rows that close
 * to the threshold. Close to n = d (u < 2) it is solved exactly.
 *
 * @module
 */
import { chi2Isf } from "./chi2.ts";
import { predictiveThreshold } from "./f_tail.ts";

const U_STEPS = 128;
const U_MIN = 2;
const U_MAX = Math.log(1024);
const V_MAX = 1 / 1024;
const V_CELLS = 256;
/** Exact solves remembered (a direct-mapped cache: a new n takes its cell's place). */
const _EXACT_CELLS = 4096;

/** m² threshold of the predictive tail at `alpha` for effective n, dimension d. */
export class PredictiveQuantile {
  readonly #alpha: number;
  readonly #d: number;
  readonly #uGrid: Float64Array;
  readonly #vGrid: Float64Array;
  readonly #chi2: number;
  /**
   * Exact solves close to n = d by n: young keys with the same history (one row per batch, say)
   * share their n, and with many keys a Newton solve per key and batch would dominate. The
   * solve is a pure function of n, so a remembered value is the value.
   */
  readonly #exactN = new Float64Array(_EXACT_CELLS).fill(NaN);
  readonly #exactV = new Float64Array(_EXACT_CELLS);
  /** n's bits, for the cell index (typed arrays, not a map: a map keyed by doubles boxes them). */
  readonly #bits = new Float64Array(1);
  readonly #words = new Uint32Array(this.#bits.buffer);

  constructor(alpha: number, d: number) {
    this.#alpha = alpha;
    this.#d = d;
    this.#uGrid = new Float64Array(Math.ceil(U_MAX * U_STEPS) + 4).fill(NaN);
    this.#vGrid = new Float64Array(V_CELLS + 4).fill(NaN);
    this.#chi2 = chi2Isf(alpha, d);
  }

  /** The threshold (Infinity when n ≤ d; the χ² quantile for n = Infinity). */
  value(n: number): number {
    const d = this.#d;
    if (n === Infinity) return this.#chi2;
    if (!(n > d)) return Infinity;
    const m = n - d;
    const u = Math.log(m);
    if (u < U_MIN) {
      this.#bits[0] = n;
      const w = this.#words;
      const cell = (Math.imul(w[0] ^ w[1], 0x9e3779b1) >>> 20) & (_EXACT_CELLS - 1);
      if (this.#exactN[cell] === n) return this.#exactV[cell];
      const v = predictiveThreshold(this.#alpha, n, d, this.#chi2);
      this.#exactN[cell] = n;
      this.#exactV[cell] = v;
      return v;
    }
    if (u < U_MAX - 2 / U_STEPS) {
      const su = u * U_STEPS, i = Math.floor(su);
      const g = this.#nodes(this.#uGrid, i);
      return _lagrange(su - i, g[i - 1], g[i], g[i + 1], g[i + 2]);
    }
    const s = (1 / m) * (V_CELLS / V_MAX);
    // Nodes −1..2 around s; node −1 for the first cell is v < 0: use nodes 0..3 there.
    const i = Math.floor(s) + (s < 1 ? 1 : 0);
    const g = this.#nodes(this.#vGrid, i);
    return _lagrange(s - i, g[i - 1], g[i], g[i + 1], g[i + 2]);
  }

  /**
   * `grid` (the u or the v grid) with nodes i − 1 .. i + 2 filled, in that order. Callers read the
   * nodes in place: a double returned from a method V8 does not inline is a heap number, four per
   * key and batch.
   */
  #nodes(grid: Float64Array, i: number): Float64Array {
    if (Number.isNaN(grid[i - 1] + grid[i] + grid[i + 1] + grid[i + 2])) {
      for (let k = i - 1; k <= i + 2; k++) {
        if (grid === this.#uGrid) this.#u(k);
        else this.#v(k);
      }
    }
    return grid;
  }

  #u(i: number): number {
    let v = this.#uGrid[i];
    if (Number.isNaN(v)) {
      const near = this.#uGrid[i - 1];
      v = predictiveThreshold(
        this.#alpha,
        this.#d + Math.exp(i / U_STEPS),
        this.#d,
        Number.isNaN(near) ? this.#chi2 : near,
      );
      this.#uGrid[i] = v;
    }
    return v;
  }

  #v(i: number): number {
    let v = this.#vGrid[i];
    if (Number.isNaN(v)) {
      v = i === 0 ? this.#chi2 : predictiveThreshold(
        this.#alpha,
        this.#d + V_CELLS / (V_MAX * i),
        this.#d,
        this.#chi2,
      );
      this.#vGrid[i] = v;
    }
    return v;
  }
}

const _shared = new Map<string, PredictiveQuantile>();

/**
 * The table for (alpha, d), shared by every engine of this thread: it only ever grows by exact
 * values, so sharing changes no result, and new engines (tests, benchmarks, restarts) start warm.
 */
export function sharedQuantile(alpha: number, d: number): PredictiveQuantile {
  const id = `${alpha}/${d}`;
  let q = _shared.get(id);
  if (q === undefined) {
    q = new PredictiveQuantile(alpha, d);
    _shared.set(id, q);
  }
  return q;
}

/** 4-point Lagrange interpolation at t (from node i) through the values at nodes i−1 .. i+2. */
function _lagrange(t: number, y0: number, y1: number, y2: number, y3: number): number {
  return (-t * (t - 1) * (t - 2) / 6) * y0 + ((t + 1) * (t - 1) * (t - 2) / 2) * y1 -
    ((t + 1) * t * (t - 2) / 2) * y2 + ((t + 1) * t * (t - 1) / 6) * y3;
}
