/**
 * Finds value columns that carry no information of their own over a key's first training rows:
 * a column that is constant, or one that is (numerically) a linear combination of the columns
 * before it. The head stays valid on such data (its initial covariance is shrunk toward the
 * diagonal and its standard deviations are floored), but its scores along that column mean little:
 * replay warns once per key, naming the column.
 *
 * @module
 */

/** Running mean and centred scatter (Welford) of the rows seen so far. */
export class ColumnMoments {
  count = 0;
  readonly mean: Float64Array;
  /** Σ (x − mean)(x − mean)ᵀ, row-major d×d (both triangles kept). */
  readonly scatter: Float64Array;
  /** Mean, then the scatter's lower triangle by rows: what {@link _welfordLower} steps. */
  readonly #packed: Float64Array;
  readonly #delta: Float64Array;

  constructor(readonly dim: number) {
    this.mean = new Float64Array(dim);
    this.scatter = new Float64Array(dim * dim);
    this.#packed = new Float64Array(dim + (dim * (dim + 1)) / 2);
    this.#delta = new Float64Array(dim);
  }

  add(values: ArrayLike<number>): void {
    const d = this.dim;
    this.count = _welfordLower(this.#packed, 0, d, d, this.count, values, 0, this.#delta);
    _unpack(this.#packed, 0, d, this);
  }
}

/**
 * {@link ColumnMoments} of many keys in a few large arrays (one slot per key, reused once taken):
 * replay keeps one per key until the key has seen its first training rows, and per-key objects
 * would cost more than the numbers (issue 13). Same arithmetic as {@link ColumnMoments.add}.
 */
export class ColumnMomentsSlab {
  /**
   * Per slot: count, mean (d), scatter's lower triangle by rows (d(d+1)/2: the scatter is
   * symmetric, both triangles the very same sums; 24 B a key less at d = 3, 360 at d = 10).
   */
  readonly #stride: number;
  /** Fixed-size chunks of _SLAB_CHUNK slots: growth copies nothing and over-allocates little. */
  readonly #chunks: Float64Array[] = [];
  #next = 0;
  readonly #free: number[] = [];
  readonly #delta: Float64Array;

  constructor(readonly dim: number) {
    this.#stride = 1 + dim + (dim * (dim + 1)) / 2;
    this.#delta = new Float64Array(dim);
  }

  /** A slot holding no rows. */
  alloc(): number {
    const slot = this.#free.pop() ?? this.#next++;
    const c = Math.floor(slot / _SLAB_CHUNK);
    if (c === this.#chunks.length) {
      this.#chunks.push(new Float64Array(_SLAB_CHUNK * this.#stride));
    } else {
      const o = (slot % _SLAB_CHUNK) * this.#stride;
      this.#chunks[c].fill(0, o, o + this.#stride);
    }
    return slot;
  }

  /** Adds one row (`values` from `at` on) to the slot's moments; returns its rows now. */
  add(slot: number, values: ArrayLike<number>, at = 0): number {
    const d = this.dim, buf = this.#chunks[Math.floor(slot / _SLAB_CHUNK)];
    const o = (slot % _SLAB_CHUNK) * this.#stride;
    return buf[o] = _welfordLower(buf, o + 1, o + 1 + d, d, buf[o], values, at, this.#delta);
  }

  /** Rows in the slot. */
  count(slot: number): number {
    return this.#chunks[Math.floor(slot / _SLAB_CHUNK)][(slot % _SLAB_CHUNK) * this.#stride];
  }

  /**
   * The slot's moments, copied out (into `m`: a caller's reused one, when it checks many keys);
   * the slot is free again.
   */
  take(slot: number, m: ColumnMoments = new ColumnMoments(this.dim)): ColumnMoments {
    const buf = this.#chunks[Math.floor(slot / _SLAB_CHUNK)];
    const o = (slot % _SLAB_CHUNK) * this.#stride;
    m.count = buf[o];
    _unpack(buf, o + 1, this.dim, m);
    this.#free.push(slot);
    return m;
  }
}

/** Slots per chunk of {@link ColumnMomentsSlab}. */
const _SLAB_CHUNK = 4096;

/**
 * One Welford step, by the row at `values[at…]`, on the mean (at mo) and the scatter's lower
 * triangle by rows (at so) in one array; returns the new count. Exact zero for a constant column:
 * its delta is 0 from the second row on.
 */
function _welfordLower(
  buf: Float64Array,
  mo: number,
  so: number,
  d: number,
  count: number,
  values: ArrayLike<number>,
  at: number,
  delta: Float64Array,
): number {
  const n = count + 1;
  for (let a = 0; a < d; a++) {
    delta[a] = values[at + a] - buf[mo + a];
    buf[mo + a] += delta[a] / n;
  }
  let e = so;
  for (let a = 0; a < d; a++) {
    const da = delta[a];
    for (let b = 0; b <= a; b++, e++) buf[e] += da * (values[at + b] - buf[mo + b]);
  }
  return n;
}

/**
 * Mean and lower-triangle scatter packed at `at` (as {@link _welfordLower} keeps them) into `m`'s
 * arrays, the scatter mirrored. Loops, not set() of views: a few elements, once per key.
 */
function _unpack(
  buf: Float64Array,
  at: number,
  d: number,
  m: { readonly mean: Float64Array; readonly scatter: Float64Array },
): void {
  for (let a = 0; a < d; a++) m.mean[a] = buf[at + a];
  let e = at + d;
  for (let a = 0; a < d; a++) {
    for (let b = 0; b <= a; b++, e++) m.scatter[a * d + b] = m.scatter[b * d + a] = buf[e];
  }
}

/** One column that adds no information of its own. */
export interface DegenerateColumn {
  /** 0-based position among the value columns (as in `contrib`). */
  readonly index: number;
  readonly kind: "constant" | "collinear";
  /** Constant: its value (the mean). Collinear: 1 − R² of its regression on the others. */
  readonly measure: number;
  /** Collinear: the earlier columns it is a combination of; constant: empty. */
  readonly with: readonly number[];
}

export interface DegenerateOptions {
  /** A column is constant when its standard deviation ≤ this × |mean| (or is 0). Default 1e-9. */
  readonly constantTol?: number;
  /**
   * A column is collinear when the part of its variance the earlier independent columns leave
   * unexplained (1 − R², a pivot of the correlation matrix's Cholesky factor) is ≤ this.
   * Default 1e-6.
   */
  readonly collinearTol?: number;
}

export const DEFAULT_CONSTANT_TOL = 1e-9;
export const DEFAULT_COLLINEAR_TOL = 1e-6;
/** Share of the largest regression weight a column needs to be named as a partner. */
const PARTNER_SHARE = 1e-3;

/**
 * The constant and collinear columns of the rows summarised by `m`, in column order. Each column
 * is named at most once. Constant: standard deviation ≤ `constantTol`·|mean|. Collinear: a
 * Cholesky factorisation of the correlation matrix of the non-constant columns, in column order,
 * with a pivot (1 − R² of the column on the independent columns before it) ≤ `collinearTol`; a
 * collinear column is left out of the factor, so later columns are judged against the others.
 * Collinearity is only judged with more rows than non-constant columns (fewer rows are always
 * rank-deficient).
 */
export function degenerateColumns(
  m: Pick<ColumnMoments, "dim" | "count" | "mean" | "scatter">,
  options: DegenerateOptions = {},
): DegenerateColumn[] {
  const d = m.dim;
  const n = m.count;
  const constantTol = options.constantTol ?? DEFAULT_CONSTANT_TOL;
  const collinearTol = options.collinearTol ?? DEFAULT_COLLINEAR_TOL;
  const out: DegenerateColumn[] = [];
  if (n < 2 || _allIndependent(m, constantTol, collinearTol)) return out;
  const live: number[] = [];
  for (let a = 0; a < d; a++) {
    const sd = Math.sqrt(Math.max(m.scatter[a * d + a], 0) / n);
    if (sd === 0 || sd <= constantTol * Math.abs(m.mean[a])) {
      out.push({ index: a, kind: "constant", measure: m.mean[a], with: [] });
    } else {
      live.push(a);
    }
  }
  if (n <= live.length) return out;
  // Cholesky of the correlation matrix of the accepted columns, one row per accepted column.
  const accepted: number[] = [];
  const rows: Float64Array[] = [];
  const l = new Float64Array(d);
  for (const a of live) {
    const k = accepted.length;
    let explained = 0;
    for (let i = 0; i < k; i++) {
      const b = accepted[i];
      const r = m.scatter[a * d + b] / Math.sqrt(m.scatter[a * d + a] * m.scatter[b * d + b]);
      let s = r;
      for (let j = 0; j < i; j++) s -= rows[i][j] * l[j];
      l[i] = s / rows[i][i];
      explained += l[i] * l[i];
    }
    const residual = 1 - explained;
    if (residual > collinearTol) {
      const row = new Float64Array(k + 1);
      row.set(l.subarray(0, k));
      row[k] = Math.sqrt(residual);
      rows.push(row);
      accepted.push(a);
      continue;
    }
    // Standardised regression weights β = L⁻ᵀ l name the columns it is made of.
    const beta = new Float64Array(k);
    for (let i = k - 1; i >= 0; i--) {
      let s = l[i];
      for (let j = i + 1; j < k; j++) s -= rows[j][i] * beta[j];
      beta[i] = s / rows[i][i];
    }
    let top = 0;
    for (let i = 0; i < k; i++) top = Math.max(top, Math.abs(beta[i]));
    const partners = accepted.filter((_, i) => Math.abs(beta[i]) > PARTNER_SHARE * top);
    out.push({ index: a, kind: "collinear", measure: Math.max(residual, 0), with: partners });
  }
  return out.sort((x, y) => x.index - y.index);
}

/** Scratch of {@link _allIndependent}: a d×d lower factor and one row of it. */
let _factor = new Float64Array(0);
let _row = new Float64Array(0);

/**
 * Whether {@link degenerateColumns} finds nothing, decided with its own arithmetic but without its
 * allocations (the common case, once per key: with many keys the full routine's small arrays
 * cost more than the numbers). False whenever the full routine may name a column.
 */
function _allIndependent(
  m: Pick<ColumnMoments, "dim" | "count" | "mean" | "scatter">,
  constantTol: number,
  collinearTol: number,
): boolean {
  const d = m.dim, n = m.count;
  for (let a = 0; a < d; a++) {
    const sd = Math.sqrt(Math.max(m.scatter[a * d + a], 0) / n);
    if (sd === 0 || sd <= constantTol * Math.abs(m.mean[a])) return false;
  }
  if (n <= d) return true;
  if (_factor.length < d * d) {
    _factor = new Float64Array(d * d);
    _row = new Float64Array(d);
  }
  const rows = _factor, l = _row;
  // Row k of the correlation matrix's Cholesky factor, as in degenerateColumns (same order of
  // operations, so the same decisions), with every column accepted.
  for (let k = 0; k < d; k++) {
    let explained = 0;
    for (let i = 0; i < k; i++) {
      const r = m.scatter[k * d + i] / Math.sqrt(m.scatter[k * d + k] * m.scatter[i * d + i]);
      let s = r;
      for (let j = 0; j < i; j++) s -= rows[i * d + j] * l[j];
      l[i] = s / rows[i * d + i];
      explained += l[i] * l[i];
    }
    const residual = 1 - explained;
    if (!(residual > collinearTol)) return false;
    for (let i = 0; i < k; i++) rows[k * d + i] = l[i];
    rows[k * d + k] = Math.sqrt(residual);
  }
  return true;
}

/**
 * One warning line for a degenerate column; `names[j]` is how messages name value j
 * (`column 'temp'`, `value 2`).
 */
export function describeDegenerate(
  key: string,
  c: DegenerateColumn,
  names: readonly string[],
  rows: number,
): string {
  const name = names[c.index] ?? `value ${c.index}`;
  const over = `over the key's first ${rows} training rows`;
  if (c.kind === "constant") {
    return `replay: key '${key}': ${name} is constant (${c.measure}) ${over}; the head floors ` +
      `its scale, so any change in it will score as a strong anomaly`;
  }
  const partners = c.with.map((j) => names[j] ?? `value ${j}`).join(", ");
  return `replay: key '${key}': ${name} is collinear with ${partners} ${over} (1 − R² = ${
    c.measure.toPrecision(2)
  }); the head regularises it by shrinking toward the diagonal`;
}
