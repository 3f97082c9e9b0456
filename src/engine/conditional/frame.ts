/**
 * A key's whitening frame: the running moments of its first learned rows, the Cholesky factor of
 * their shrunk covariance that fixes the frame (x′ = L₀⁻¹(x − μ₀)), and the triangular solves
 * done in it.
 *
 * @module
 */
import { shrunkFrame } from "../../model/moments.ts";

/** ½·log 2π. */
export const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);
/** Absolute floor of a frame's standard deviations (constant columns). */
const ABS_SD_FLOOR = 1e-9;

/** Running mean and scatter (full d×d, data units) of rows. */
export interface Moments {
  count: number;
  mean: Float64Array;
  scatter: Float64Array;
}

/** A key's frame, and its initial moments until the frame is fixed. */
export interface WhiteningFrame {
  /** Running moments of the first learned rows (data units), until the frame is fixed. */
  init: Moments | null;
  readonly frameLoc: Float64Array;
  /** d×d row-major lower factor. */
  readonly frameTril: Float64Array;
  frameLogDet: number;
}

/** Running mean and scatter (full d×d) of rows. */
export function absorb(m: Moments, values: Float64Array, i: number, d: number): void {
  m.count++;
  const delta = new Float64Array(d);
  for (let a = 0; a < d; a++) {
    delta[a] = values[i * d + a] - m.mean[a];
    m.mean[a] += delta[a] / m.count;
  }
  for (let a = 0; a < d; a++) {
    const after = values[i * d + a] - m.mean[a];
    for (let b = 0; b < d; b++) m.scatter[b * d + a] += delta[b] * after;
  }
}

/**
 * Cholesky factor of the moments' covariance, shrunk toward its diagonal as needed (exact first once
 * count > d + 1): {@link shrunkFrame} with at least one row's weight and this head's floors.
 */
export function shrunkCholesky(m: Moments, d: number): Float64Array {
  const L = new Float64Array(d * d);
  shrunkFrame(
    { count: Math.max(m.count, 1), mean: m.mean, scatter: m.scatter },
    d,
    true,
    L,
    ABS_SD_FLOOR,
  );
  return L;
}

/** Σ log L[a][a] of a d×d row-major lower factor. */
export function logDiag(L: Float64Array, d: number): number {
  let s = 0;
  for (let a = 0; a < d; a++) s += Math.log(L[a * d + a]);
  return s;
}

/** Fixes a key's whitening frame from its initial moments; the network starts there. */
export function fixFrame(h: WhiteningFrame, d: number): void {
  const L = shrunkCholesky(h.init!, d);
  h.frameLoc.set(h.init!.mean);
  h.frameTril.set(L);
  h.frameLogDet = logDiag(L, d);
  h.init = null;
}

/** x′ = L₀⁻¹(x − μ₀) of row values[at..]. */
export function whiten(
  values: Float64Array,
  at: number,
  h: WhiteningFrame,
  d: number,
  out: Float64Array,
): void {
  const L = h.frameTril;
  for (let a = 0; a < d; a++) {
    let s = values[at + a] - h.frameLoc[a];
    for (let b = 0; b < a; b++) s -= L[a * d + b] * out[b];
    out[a] = s / L[a * d + a];
  }
}

/** z = L⁻¹(x − loc) into z; returns |z|². */
export function solveRow(
  x: ArrayLike<number>,
  xAt: number,
  loc: ArrayLike<number>,
  locAt: number,
  L: Float64Array,
  d: number,
  z: Float64Array,
): number {
  let m2 = 0;
  for (let a = 0; a < d; a++) {
    let s = x[xAt + a] - loc[locAt + a];
    for (let b = 0; b < a; b++) s -= L[a * d + b] * z[b];
    z[a] = s / L[a * d + a];
    m2 += z[a] * z[a];
  }
  return m2;
}
