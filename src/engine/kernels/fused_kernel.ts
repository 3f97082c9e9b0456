/**
 * Contract of the fused hot-path op: per-row Mahalanobis² and contributions, and per-key weighted
 * sufficient statistics from which the exact NLL gradient follows (see `model/gradient.ts`).
 *
 * Math, per row i of key k (x already centred on the key's frame origin by the host):
 *   r  = x_i − loc_k,  z = tril_k⁻¹ r (forward substitution),  m2 = Σ z_j²,  contrib_j = z_j²
 *   ρ(m2) = 1 if m2 ≤ robustC, else max(robustFloor·robustC/m2, exp(−(m2 − robustC)/2))
 *   (the floor bounds a row's weighted m2 by robustFloor·robustC: no single value, however wild,
 *   dominates the statistics or the optimiser's moment estimates)
 *   w = rowWeight_i · ρ(m2)
 *   stats[k] += [rowWeight_i, w, w·z_0..w·z_{d−1}, w·z_a·z_b for a = 0..d−1, b = 0..a]
 *
 * A row whose m2 is not finite (a NaN/±Infinity value, or a finite reading so far out that m2
 * overflows: float32 on webgpu from about 1e19σ) has ρ = 0 but w·z = 0·∞ = NaN, which would poison
 * its key's statistics: the cpu pass leaves such rows out of the statistics, and for webgpu the
 * engine reruns the batch with the finite ones parked at their key's loc with row weight 0 (then
 * scores them saturated, `overflow.ts`). NaN/±Infinity values are refused.
 *
 * @module
 */
import type { BackendName } from "../types.ts";

/** Float arrays accepted and produced by kernels. */
export type FloatArray = Float32Array | Float64Array;

/** Inputs of one fused dispatch. */
export interface FusedInputs {
  /** Rows. */
  readonly n: number;
  /** Dimension. */
  readonly d: number;
  /** Keys (heads) in this dispatch. */
  readonly K: number;
  /** Row-major n×d, centred on each row's key frame origin. */
  readonly x: FloatArray;
  /** Per row: head index in [0, K). */
  readonly keyIdx: Int32Array;
  /** Per row: 1 to learn from the row, 0 to score only. */
  readonly rowWeight: Float32Array;
  /** K×d: loc of each head, in the same centred coordinates as x. */
  readonly loc: FloatArray;
  /** K×d×d: full row-major lower-triangular Cholesky factor of each head (upper part zero). */
  readonly tril: FloatArray;
  /** Mahalanobis² beyond which rows are down-weighted. */
  readonly robustC: number;
  /** Smallest robust weight. */
  readonly robustFloor: number;
}

/** Number of statistics per key: [count, Σw, Σw·z (d), Σw·z·zᵀ packed lower (d(d+1)/2)]. */
export function statsWidth(d: number): number {
  return 2 + d + (d * (d + 1)) / 2;
}

/** Outputs of one fused dispatch. */
export interface FusedOutputs {
  /** n: Mahalanobis². */
  readonly m2: FloatArray;
  /** n×d: squared components of z. */
  readonly contrib: FloatArray;
  /** K × statsWidth(d). */
  readonly stats: Float64Array;
}

/** A backend's implementation of the fused op. */
export interface FusedKernel {
  readonly backend: BackendName;
  run(inputs: FusedInputs): Promise<FusedOutputs>;
  dispose(): void;
}
