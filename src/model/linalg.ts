/**
 * Small dense float64 linear algebra on row-major d×d arrays (d ≤ 32), for per-key work.
 *
 * @module
 */

/** Lower Cholesky factor of symmetric `a` (d×d) into `out`; false when `a` is not positive definite. */
export function cholesky(a: Float64Array, d: number, out: Float64Array): boolean {
  out.fill(0, 0, d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * d + j];
      for (let k = 0; k < j; k++) s -= out[i * d + k] * out[j * d + k];
      if (i === j) {
        if (!(s > 0) || !Number.isFinite(s)) return false;
        out[i * d + i] = Math.sqrt(s);
      } else {
        out[i * d + j] = s / out[j * d + j];
      }
    }
  }
  return true;
}

/** out = a·b for lower-triangular a, b (d×d); out is lower-triangular. */
export function lowerMatMul(a: Float64Array, b: Float64Array, d: number, out: Float64Array): void {
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      if (j <= i) { for (let k = j; k <= i; k++) s += a[i * d + k] * b[k * d + j]; }
      out[i * d + j] = s;
    }
  }
}

/** out = L·v for lower-triangular L. */
export function lowerMatVec(
  l: Float64Array,
  v: ArrayLike<number>,
  d: number,
  out: Float64Array,
): void {
  for (let i = 0; i < d; i++) {
    let s = 0;
    for (let k = 0; k <= i; k++) s += l[i * d + k] * v[k];
    out[i] = s;
  }
}

/**
 * Solves Lᵀ·Y = M in place (M is d×cols, row-major) for lower-triangular L: back substitution,
 * i.e. Y = L⁻ᵀ·M.
 */
export function solveLowerTransposed(
  l: Float64Array,
  m: Float64Array,
  d: number,
  cols: number,
): void {
  for (let c = 0; c < cols; c++) {
    for (let i = d - 1; i >= 0; i--) {
      let s = m[i * cols + c];
      for (let k = i + 1; k < d; k++) s -= l[k * d + i] * m[k * cols + c];
      m[i * cols + c] = s / l[i * d + i];
    }
  }
}

/** C = L·Lᵀ as nested arrays. */
export function covarianceOf(l: Float64Array, d: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < d; i++) {
    const row: number[] = [];
    for (let j = 0; j < d; j++) {
      let s = 0;
      const m = Math.min(i, j);
      for (let k = 0; k <= m; k++) s += l[i * d + k] * l[j * d + k];
      row.push(s);
    }
    out.push(row);
  }
  return out;
}

/** Nested rows of a row-major d×d array. */
export function toRows(a: Float64Array, d: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < d; i++) out.push(toArray(a, i * d, (i + 1) * d));
  return out;
}

/**
 * `a[from..to)` as a plain array. A loop, not `Array.from` (of a view): snapshots and checkpoint
 * states are built per key at every barrier and parameter round (many keys, issue 13).
 */
export function toArray(a: ArrayLike<number>, from = 0, to = a.length): number[] {
  const out = new Array<number>(to - from);
  for (let i = from; i < to; i++) out[i - from] = a[i];
  return out;
}

/** Packs the lower triangle (row by row, diagonal included) of a d×d array. */
export function packLower(a: Float64Array, d: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < d; i++) for (let j = 0; j <= i; j++) out.push(a[i * d + j]);
  return out;
}

/** Inverse of {@link packLower}. */
export function unpackLower(
  p: ArrayLike<number>,
  d: number,
  out: Float64Array = new Float64Array(d * d),
): Float64Array {
  out.fill(0);
  let q = 0;
  for (let i = 0; i < d; i++) for (let j = 0; j <= i; j++) out[i * d + j] = p[q++];
  return out;
}
