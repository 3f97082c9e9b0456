/**
 * Weighted sample moments of a key's first rows and the frame they give a fresh head: the running
 * (weighted) mean and scatter, merged batch by batch (Chan et al.), decayed under forgetting, and
 * the Cholesky factor of the covariance shrunk toward its diagonal.
 *
 * @module
 */
import { cholesky } from "./linalg.ts";

/** Running weighted moments: weight sum `count`, Σw² `w2`, mean (d) and scatter (d×d, lower used). */
export interface WeightedMoments {
  count: number;
  w2: number;
  mean: Float64Array;
  scatter: Float64Array;
}

/** Smallest standard deviation a fresh head may get, relative to the data's magnitude and absolute. */
const REL_SD_FLOOR = 1e-6;
const ABS_SD_FLOOR = 1e-12;

/** Module scratch arrays by slot (none is in use across calls); `_scratch` hands one out zeroed. */
const _scratchArrays: Float64Array[] = [
  new Float64Array(0),
  new Float64Array(0),
  new Float64Array(0),
];

function _scratch(slot: number, n: number): Float64Array {
  let a = _scratchArrays[slot];
  if (a.length !== n) a = _scratchArrays[slot] = new Float64Array(n);
  // A loop, not fill(): the builtin's fixed cost outweighs a few elements (per key and batch).
  else for (let i = 0; i < n; i++) a[i] = 0;
  return a;
}

/** Empty moments of dimension d. */
export function emptyMoments(d: number): WeightedMoments {
  return { count: 0, w2: 0, mean: new Float64Array(d), scatter: new Float64Array(d * d) };
}

/**
 * Moments standing for a prior N(mean, L·Lᵀ) worth `weight` observations: scatter = weight·L·Lᵀ
 * (lower triangle; `tril` full row-major lower).
 */
export function priorMoments(
  mean: Float64Array,
  tril: Float64Array,
  d: number,
  weight: number,
): WeightedMoments {
  const scatter = new Float64Array(d * d);
  for (let a = 0; a < d; a++) {
    for (let b = 0; b <= a; b++) {
      let s = 0;
      for (let k = 0; k <= b; k++) s += tril[a * d + k] * tril[b * d + k];
      scatter[a * d + b] = weight * s;
    }
  }
  return { count: weight, w2: weight, mean, scatter };
}

/** Decays the moments by `dec`: weight sum and scatter by dec, Σw² by dec². */
export function decayMoments(m: WeightedMoments, dec: number, d: number): void {
  m.count *= dec;
  m.w2 *= dec * dec;
  for (let e = 0; e < d * d; e++) m.scatter[e] *= dec;
}

/**
 * Merges `count` rows (row-major, length count·d) with per-row `weights` (default 1 each) into the
 * running moments: the batch's weighted mean and scatter, combined by Chan et al.'s update.
 */
export function mergeRows(
  m: WeightedMoments,
  rows: Float64Array,
  count: number,
  d: number,
  weights?: Float64Array,
): void {
  let wb = 0, wb2 = 0;
  // Reused scratch (zeroed): this runs per key and batch while keys initialise, for many keys.
  const mb = _scratch(0, d);
  for (let i = 0; i < count; i++) {
    const w = weights === undefined ? 1 : weights[i];
    wb += w;
    wb2 += w * w;
    for (let a = 0; a < d; a++) mb[a] += w * rows[i * d + a];
  }
  for (let a = 0; a < d; a++) mb[a] /= wb;
  const sb = _scratch(1, d * d);
  for (let i = 0; i < count; i++) {
    const w = weights === undefined ? 1 : weights[i];
    for (let a = 0; a < d; a++) {
      const da = w * (rows[i * d + a] - mb[a]);
      for (let b = 0; b <= a; b++) sb[a * d + b] += da * (rows[i * d + b] - mb[b]);
    }
  }
  const na = m.count;
  const n = na + wb;
  m.w2 += wb2;
  for (let a = 0; a < d; a++) {
    const da = mb[a] - m.mean[a];
    for (let b = 0; b <= a; b++) {
      const db = mb[b] - m.mean[b];
      m.scatter[a * d + b] += sb[a * d + b] + (da * db * na * wb) / n;
    }
  }
  for (let a = 0; a < d; a++) m.mean[a] += ((mb[a] - m.mean[a]) * wb) / n;
  m.count = n;
}

/**
 * Writes into `out` (d×d, row-major lower) the Cholesky factor of the moments' covariance, shrunk
 * toward its diagonal by d/(n + d) — which keeps it positive definite from few rows and is unit-free
 * per axis (a spherical target would mix units) — with variances floored relative to the data's
 * magnitude. `exactFirst` (natural step): the unshrunk (weighted MLE) covariance as soon as n > d + 1
 * and it is positive definite. Numerically indefinite despite shrinkage: the diagonal alone.
 * `absSdFloor`: the absolute floor of the standard deviations.
 */
export function shrunkFrame(
  m: Pick<WeightedMoments, "count" | "mean" | "scatter">,
  d: number,
  exactFirst: boolean,
  out: Float64Array,
  absSdFloor: number = ABS_SD_FLOOR,
): void {
  const n = m.count;
  const cov = _scratch(2, d * d);
  let scale2 = 0;
  for (let a = 0; a < d; a++) {
    scale2 = Math.max(scale2, m.mean[a] * m.mean[a], m.scatter[a * d + a] / n);
  }
  const floor = Math.max(REL_SD_FLOOR * REL_SD_FLOOR * scale2, absSdFloor * absSdFloor);
  let ok = false;
  if (exactFirst && n > d + 1) {
    _shrunkCov(m.scatter, n, d, floor, 0, cov);
    ok = cholesky(cov, d, out);
  }
  if (!ok) {
    _shrunkCov(m.scatter, n, d, floor, d / (n + d), cov);
    ok = cholesky(cov, d, out);
  }
  if (!ok) {
    out.fill(0);
    for (let a = 0; a < d; a++) out[a * d + a] = Math.sqrt(cov[a * d + a]);
  }
}

/** cov = scatter / n with the off-diagonal shrunk by `lambda` and variances floored (a function,
 * not a closure: per key and batch while keys initialise). */
function _shrunkCov(
  scatter: Float64Array,
  n: number,
  d: number,
  floor: number,
  lambda: number,
  cov: Float64Array,
): void {
  for (let a = 0; a < d; a++) {
    for (let b = 0; b <= a; b++) {
      const s = scatter[a * d + b] / n;
      const v = a === b ? Math.max(s, floor) : (1 - lambda) * s;
      cov[a * d + b] = v;
      cov[b * d + a] = v;
    }
  }
}
