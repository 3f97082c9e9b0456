/**
 * The exact gradient of a Gaussian head's weighted mean NLL with respect to its unconstrained
 * parameters θ (`parameterisation.ts`), from the fused kernel's sufficient statistics of one key.
 *
 * @module
 */
import { solveLowerTransposed } from "./linalg.ts";
import { diagDerivative } from "./diag_transform.ts";
import { thetaLength, trilFromTheta } from "./parameterisation.ts";
import type { DiagTransform } from "../engine/types.ts";

/** Work arrays of {@link gradientFromStats}, reusable across calls of one dimension. */
export interface GradientScratch {
  readonly lp: Float64Array;
  readonly g1: Float64Array;
  readonly g2: Float64Array;
}

/** Fresh {@link GradientScratch} for dimension d. */
export function newGradientScratch(d: number): GradientScratch {
  return { lp: new Float64Array(d * d), g1: new Float64Array(d), g2: new Float64Array(d * d) };
}

/**
 * Gradient of the weighted mean NLL, (1/n)·Σ w_i·(½|z_i|² + Σ_a log L′_aa), with respect to θ,
 * from the fused statistics [n, Σw, Σw·z, Σw·z·zᵀ (packed lower)] of one key:
 *   ∂/∂loc′ = −L′⁻ᵀ·(Σw·z)/n,
 *   ∂/∂L′   = tril(−L′⁻ᵀ·(Σw·z·zᵀ)/n) + (Σw/n)·diag(1/L′_aa),
 * and ∂/∂r_a = (∂/∂L′_aa)·f′(r_a). Weights are constants (no gradient through them).
 * The key's statistics start at `stats[offset]`.
 */
export function gradientFromStats(
  theta: ArrayLike<number>,
  stats: ArrayLike<number>,
  d: number,
  diag: DiagTransform,
  out: Float64Array = new Float64Array(thetaLength(d)),
  offset = 0,
  scratch: GradientScratch = newGradientScratch(d),
): Float64Array {
  const { lp, g1, g2 } = scratch;
  trilFromTheta(theta, d, diag, lp);
  const n = stats[offset];
  const sumW = stats[offset + 1];
  for (let a = 0; a < d; a++) g1[a] = stats[offset + 2 + a];
  let q = offset + 2 + d;
  for (let a = 0; a < d; a++) {
    for (let b = 0; b <= a; b++) {
      const v = stats[q++];
      g2[a * d + b] = v;
      g2[b * d + a] = v;
    }
  }
  solveLowerTransposed(lp, g1, d, 1);
  solveLowerTransposed(lp, g2, d, d);
  const inv = 1 / n;
  for (let a = 0; a < d; a++) out[a] = -g1[a] * inv;
  let p = d;
  for (let a = 1; a < d; a++) for (let b = 0; b < a; b++) out[p++] = -g2[a * d + b] * inv;
  for (let a = 0; a < d; a++) {
    const gl = -g2[a * d + a] * inv + (sumW * inv) / lp[a * d + a];
    out[p] = gl * diagDerivative(diag, theta[p]);
    p++;
  }
  return out;
}
