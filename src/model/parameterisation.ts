/**
 * The unconstrained parameterisation of a Gaussian head in its frame: θ = [loc′ (d),
 * strictly-lower entries of L′ (d(d−1)/2, row by row), raw diagonal r (d)], with L′_aa = f(r_a) > 0
 * for the head's diagonal transform f; and the effective parameters it gives in a frame (origin μ₀,
 * Cholesky factor L₀): loc = μ₀ + L₀·loc′, scale_tril = L₀·L′.
 *
 * @module
 */
import { diagForward, diagInverse } from "./diag_transform.ts";
import { lowerMatMul, lowerMatVec } from "./linalg.ts";
import type { DiagTransform } from "../engine/types.ts";

/** Number of unconstrained parameters of a head of dimension d. */
export function thetaLength(d: number): number {
  return d + (d * (d - 1)) / 2 + d;
}

/** Index in θ of the first raw diagonal entry r_0 (after loc′ and the strictly-lower entries). */
export function diagOffset(d: number): number {
  return d + (d * (d - 1)) / 2;
}

/** Builds L′ (full row-major lower) from θ. */
export function trilFromTheta(
  theta: ArrayLike<number>,
  d: number,
  diag: DiagTransform,
  out: Float64Array,
): void {
  out.fill(0, 0, d * d);
  let p = d;
  for (let a = 1; a < d; a++) for (let b = 0; b < a; b++) out[a * d + b] = theta[p++];
  for (let a = 0; a < d; a++) out[a * d + a] = diagForward(diag, theta[p++]);
}

/** Writes θ of the identity in the frame into `out`: loc′ = 0, L′ = I (raw diagonal f⁻¹(1)). */
export function identityTheta(d: number, diag: DiagTransform, out: Float64Array): void {
  out.fill(0);
  const one = diagInverse(diag, 1);
  const p0 = diagOffset(d);
  for (let a = 0; a < d; a++) out[p0 + a] = one;
}

/**
 * The effective parameters of θ in the frame (L₀ full row-major lower): L = L₀·L′ into `tril`,
 * loc − μ₀ = L₀·loc′ into `locC`; returns log det L = Σ_a (log L₀_aa + log L′_aa). `lp`: d×d
 * scratch, left holding L′.
 */
export function effectiveParams(
  frameTril: Float64Array,
  theta: Float64Array,
  d: number,
  diag: DiagTransform,
  lp: Float64Array,
  tril: Float64Array,
  locC: Float64Array,
): number {
  trilFromTheta(theta, d, diag, lp);
  lowerMatMul(frameTril, lp, d, tril);
  lowerMatVec(frameTril, theta.subarray(0, d), d, locC);
  let logDet = 0;
  for (let a = 0; a < d; a++) {
    logDet += Math.log(frameTril[a * d + a]) + Math.log(lp[a * d + a]);
  }
  return logDet;
}

/**
 * {@link effectiveParams} of the identity θ, whose L′ = diag(`one`) with `one` = f(f⁻¹(1)) (1 up
 * to rounding), without the general products (same numbers: their other terms are exact zeros):
 * L = L₀·one into `tril`; returns log det L. (loc − μ₀ is 0.)
 */
export function identityParams(
  frameTril: Float64Array,
  one: number,
  d: number,
  tril: Float64Array,
): number {
  let logDet = 0;
  for (let a = 0; a < d; a++) {
    for (let b = 0; b < d; b++) tril[a * d + b] = frameTril[a * d + b] * one;
    logDet += Math.log(frameTril[a * d + a]) + Math.log(one);
  }
  return logDet;
}
