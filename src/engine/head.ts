/**
 * The {@link Head} interface: one key's parameters and learning state as the engine sees them.
 * Its own module so the engine's passes depend on the shape of a head, not on `head_bank.ts`.
 *
 * @module
 */
import type { WeightedMoments } from "../model/moments.ts";

/**
 * One head's state. Fields are the engine's to read; only {@link HeadBank} changes parameters. The
 * bank's heads are copies of its slab storage's slots (`head_slab.ts`): hold one for a batch, not
 * longer.
 */
export interface Head {
  readonly key: string;
  readonly frameLoc: Float64Array;
  readonly frameTril: Float64Array;
  readonly theta: Float64Array;
  readonly m: Float64Array;
  readonly v: Float64Array;
  steps: number;
  observations: number;
  rejected: number;
  preset: boolean;
  /** Initialisation statistics: weight sum (`count`), Σw² (`w2`), weighted mean and scatter. */
  init: WeightedMoments | null;
  /** Natural step: (decayed) weight sum and Σw² of what the parameters summarise. */
  wSum: number;
  w2Sum: number;
  /** Natural step: the change detector's CUSUM, and how many times the key restarted. */
  cusum: number;
  restarts: number;
  /** Cached anomaly threshold on m² and the effective n it was computed for. */
  thrN: number;
  thr: number;
  /** Cached robust cut on m² (predictive quantile at 1 − robust_p) and its effective n. */
  cutN: number;
  cut: number;
  /** Effective parameters relative to frameLoc: loc − μ₀ = L₀·loc′ and L = L₀·L′, with Σ log L_aa. */
  readonly locC: Float64Array;
  readonly tril: Float64Array;
  logDet: number;
}
