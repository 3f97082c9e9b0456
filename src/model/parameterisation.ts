/**
 * The unconstrained parameterisation of a Gaussian head in its frame: θ = [loc′ (d),
 * strictly-lower entries of L′ (d(d−1)/2, row by row), raw diagonal r (d)], with L′_aa = f(r_a) > 0
 * for the head's diagonal transform f.
 *
 * @module
 */
import { diagForward } from "./diag_transform.ts";
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
