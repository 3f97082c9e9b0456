/**
 * Configuration of the MVN head (shared by replay, the live worker and the benchmarks).
 * Optional fields in, a fully resolved {@link HeadConfig} out; every default is documented here.
 *
 * @module
 */
import { z } from "zod";

/** Largest supported dimension. */
export const MAX_DIM = 32;

/** Input shape: every field optional. */
export const HeadConfigInput = z.object({
  /** Dimension d of the observations. Default 3. */
  dim: z.number().int().min(1).max(MAX_DIM).default(3),
  /** Positive transform of the raw diagonal. Default `softplus` (softplus(r) + 1e-5). */
  diag: z.enum(["softplus", "elu1p", "exp"]).default("softplus"),
  /**
   * Learning rule. `natural` (default): the exact natural-gradient step, i.e. the recursive
   * weighted maximum-likelihood estimate of mean and covariance with exponential forgetting
   * (`horizon`), change detection (`change_threshold`) and predictive (F-tail) p-values.
   * `adam`: the original recipe — Adam on the NLL (`lr`, `beta1`, `beta2`, `epsilon`), χ² p-values.
   */
  optimizer: z.enum(["natural", "adam"]).default("natural"),
  /**
   * Memory of the natural step, in observations: observation i of a key weighs λ^(observations
   * since), λ = 1 − 1/horizon (effective sample size ≈ 2·horizon). Default 10,000.
   */
  horizon: z.number().gt(1).default(10_000),
  /**
   * Natural step: CUSUM limit h of the change detector (in standard deviations of m², drift 0.25
   * per row, at most 1.75 per row: a 3σ mean shift crosses 400 after ~230 rows); a key that crosses
   * it restarts its moments from the rows after the alarm, keeping its old parameters as a prior
   * worth 16·(d + 2) observations. 0 switches detection off. Default 400.
   */
  change_threshold: z.number().min(0).default(400),
  /**
   * Adam learning rate, in whitened units (see README). Default 0.01 (the unconditional head),
   * 0.002 (the conditional head's network).
   */
  lr: z.number().positive().max(10).optional(),
  /** Adam β1. Default 0.9. */
  beta1: z.number().min(0).lt(1).default(0.9),
  /** Adam β2. Default 0.999. */
  beta2: z.number().min(0).lt(1).default(0.999),
  /** Adam ε. Default 1e-8. */
  epsilon: z.number().positive().default(1e-8),
  /** Anomaly threshold on the χ² p-value. Default 1e-3. */
  alpha: z.number().gt(0).lt(1).default(1e-3),
  /**
   * Observations a key must have seen before it may flag anomalies. Default 10·dim with the
   * natural step (its predictive p-values are calibrated from there on), 256 with Adam.
   */
  warmup: z.number().int().min(0).optional(),
  /**
   * Observations a new key is initialised from in closed form (sample mean, Cholesky of a shrunk
   * sample covariance) before Adam takes over. Default max(64, 4·dim).
   */
  init_rows: z.number().int().min(1).optional(),
  /**
   * Robust weighting: observations whose p-value is above `robust_p` have weight 1; beyond,
   * the weight decays like p-value / robust_p (exp(-(m² − c)/2), c = χ²_d quantile at 1 − robust_p)
   * down to `robust_floor`. Default 1e-3.
   */
  robust_p: z.number().gt(0).lt(1).default(1e-3),
  /**
   * Floor of the robust weight, as robust_floor·c/m²: a far observation keeps a weighted squared
   * distance of robust_floor·c, so a lasting regime change is still learned while one wild value
   * (a 1e12 glitch) cannot swamp the statistics or Adam's moments. Default 0.01.
   */
  robust_floor: z.number().min(0).max(1).default(0.01),
  /** `auto` picks webgpu on a hardware adapter, cpu otherwise. Default `auto`. */
  backend: z.enum(["auto", "webgpu", "cpu"]).default("auto"),
  // ---- the conditional head (docs/model.md, "The conditional head") ----
  /**
   * `unconditional` (default): one Gaussian per key. `conditional`: per key, a small network maps
   * the observation's context (carried `features` and/or `time_features`) to loc and scale_tril.
   */
  head: z.enum(["unconditional", "conditional"]).default("unconditional"),
  /** Conditional head: hidden layer widths. Default [32, 32]. */
  hidden: z.array(z.number().int().min(1).max(1024)).max(8).default([32, 32]),
  /** Conditional head: activation of the hidden layers. Default `tanh`. */
  activation: z.enum(["tanh", "relu"]).default("tanh"),
  /** Conditional head: number of features each observation carries (`features`). Default 0. */
  features: z.number().int().min(0).max(1024).default(0),
  /** Conditional head: periods whose sin/cos (UTC) are appended to the features. Default none. */
  time_features: z.array(z.enum(["daily", "weekly"])).default([]),
  /** Conditional head: rows per Adam step (a key's learned rows of a batch are cut into chunks). */
  minibatch: z.number().int().min(1).default(32),
  /**
   * Conditional head: scores and published parameters use an exponential moving average of the
   * network's weights over about this many Adam steps (Polyak averaging: the raw weights keep
   * learning at the full rate, the average smooths out their step-to-step noise). 0 = raw weights.
   * Default 30.
   */
  average: z.number().int().min(0).default(30),
  /**
   * Conditional head: recent learned rows kept per key and replayed, as many as the new rows, in
   * every step, so that steps see a spread of contexts even when the context drifts slowly (a
   * daily cycle spans hundreds of batches). Part of the checkpoint. 0 = no replay. Default 512.
   */
  memory: z.number().int().min(0).max(65_536).default(512),
});

/** Partial head configuration, as given by flags or files. */
export type HeadConfigInput = z.input<typeof HeadConfigInput>;

/** Fully resolved head configuration. */
export interface HeadConfig {
  readonly dim: number;
  readonly optimizer: "natural" | "adam";
  readonly horizon: number;
  readonly change_threshold: number;
  readonly diag: "softplus" | "elu1p" | "exp";
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly alpha: number;
  readonly warmup: number;
  readonly init_rows: number;
  readonly robust_p: number;
  readonly robust_floor: number;
  readonly backend: "auto" | "webgpu" | "cpu";
  readonly head: "unconditional" | "conditional";
  readonly hidden: readonly number[];
  readonly activation: "tanh" | "relu";
  readonly features: number;
  readonly time_features: readonly ("daily" | "weekly")[];
  readonly minibatch: number;
  readonly average: number;
  readonly memory: number;
}

/** Inputs of the conditional head's network: carried features, then 2 per time period. */
export function contextDim(config: HeadConfig): number {
  return config.features + 2 * config.time_features.length;
}

/** Parses and resolves a head configuration; throws a zod error naming the bad field. */
export function resolveHeadConfig(input: HeadConfigInput = {}): HeadConfig {
  const parsed = HeadConfigInput.parse(input);
  const conditional = parsed.head === "conditional";
  if (conditional && parsed.features + parsed.time_features.length === 0) {
    throw new RangeError(
      "head conditional: expected features (features > 0) or time_features, found neither",
    );
  }
  if (new Set(parsed.time_features).size !== parsed.time_features.length) {
    throw new RangeError(`time_features: expected distinct periods, found ${parsed.time_features}`);
  }
  return {
    ...parsed,
    lr: parsed.lr ?? (conditional ? 0.002 : 0.01),
    // The conditional head's whitening frame should span the context's range (a day of 5-minute
    // rows is 288): it starts from more rows.
    init_rows: parsed.init_rows ?? Math.max(conditional ? 512 : 64, 4 * parsed.dim),
    // The conditional head's network needs some hundred steps before its tails mean much.
    warmup: parsed.warmup ??
      (conditional ? 2000 : parsed.optimizer === "natural" ? 10 * parsed.dim : 256),
  };
}
