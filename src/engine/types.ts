/**
 * Shared value types of the MVN head: what flows between I/O (replay, the live worker) and the
 * compute engine. Arrays are typed arrays so that they cross the Web Worker boundary by transfer.
 *
 * @module
 */

/** How the raw (unconstrained) diagonal of `scale_tril` is mapped to a positive number. */
export type DiagTransform = "softplus" | "elu1p" | "exp";

/** Which tfjs backend runs the fused kernel. */
export type BackendName = "webgpu" | "cpu";

/**
 * A mini-batch of observations, possibly spanning many model keys. Row `i` is
 * `values[i*dim .. (i+1)*dim)` and belongs to key `keys[keyIndex[i]]`.
 */
export interface ObservationBatch {
  /** Dimension d of every row. */
  readonly dim: number;
  /** Number of rows. */
  readonly n: number;
  /** Row-major values, length `n * dim`. Float64 so that awkward units lose nothing before centring. */
  readonly values: Float64Array;
  /** Per row: index into `keys`. */
  readonly keyIndex: Uint32Array;
  /** The distinct model keys this batch refers to. */
  readonly keys: readonly string[];
  /**
   * Optional, per entry of `keys`: the caller's dense id of that key (0, 1, 2, …), the same id for
   * the same key in every batch the engine sees. The engine then finds a key's head by id instead
   * of by its string (replay, issue 13: many keys). Absent: by string.
   */
  readonly keyIds?: Uint32Array;
  /**
   * Per row: 1 = learn from this row after scoring it, 0 = score only (frozen, or already applied
   * before a restart). Absent means learn from every row.
   */
  readonly learn?: Uint8Array;
  /**
   * Per row: 1 = a new observation, counted in the key's `observations` and `seq`; 0 = a
   * re-delivered duplicate (already applied before a restart): scored only, never counted or
   * learned, whatever `learn` says. Absent means every row is new.
   */
  readonly counted?: Uint8Array;
  /**
   * Whether to compute `p_value` (default true). When false, `ScoreBatch.pValue` is NaN
   * everywhere; `anomaly` is unaffected (it compares mahalanobis2 with the χ² quantile of alpha).
   */
  readonly pValues?: boolean;
  /**
   * Score only, against the keys' current parameters (the scoring service): no key is created (a
   * row of a key the engine does not hold refuses the batch with an `EngineError` of code
   * `unknown_key`), nothing is learned or counted and no state changes, whatever `learn` and
   * `counted` say. `seq` is the key's current observation count. Default false.
   */
  readonly scoreOnly?: boolean;
  /**
   * Conditional head: row-major carried context features, `n * featureDim` (the head's
   * `features` count). Ignored by the unconditional head.
   */
  readonly features?: Float64Array;
  /** Features per row in `features`. */
  readonly featureDim?: number;
  /**
   * Conditional head with `time_features`: per row, the observation's time in milliseconds since
   * the epoch (see src/model/time_features.ts), NaN where it has none (refused).
   */
  readonly timeMs?: Float64Array;
}

/** Per-observation scores of one batch, in the batch's row order. */
export interface ScoreBatch {
  readonly n: number;
  readonly dim: number;
  readonly logProb: Float64Array;
  readonly mahalanobis2: Float64Array;
  /** P(χ²_d ≥ mahalanobis2). */
  readonly pValue: Float64Array;
  /** 1 when p_value < alpha and the key had seen `warmup` observations before this row's batch. */
  readonly anomaly: Uint8Array;
  /** Row-major `n * dim`: squared components of z = scale_tril⁻¹(x − loc); each row sums to mahalanobis2. */
  readonly contrib: Float64Array;
  /** Per row: 1-based position of the row within its key (observations seen by the key, this one included). */
  readonly seq: Float64Array;
}

/** Public parameters of one head, in data units. */
export interface HeadParams {
  readonly loc: number[];
  /** Lower-triangular, positive diagonal, `dim` rows of `dim` numbers. */
  readonly scale_tril: number[][];
}

/** Public parameters plus bookkeeping, as written by `--params-out` and published on NATS. */
export interface HeadSnapshot extends HeadParams {
  readonly key: string;
  readonly dim: number;
  readonly covariance: number[][];
  /** Observations seen (scored) by this key. */
  readonly observations: number;
  /** Adam steps taken. */
  readonly steps: number;
  /** Updates rejected because they were non-finite. */
  readonly rejected_updates: number;
  /** Conditional head: `loc`/`scale_tril` are the MVN at the key's latest context. */
  readonly head?: "conditional";
  /** Conditional head: the network (inputs, hidden widths, activation, outputs). */
  readonly architecture?: ConditionalArchitecture;
  /** Conditional head: the context the parameters are given at (raw, before standardising). */
  readonly context?: number[];
  /** Conditional head: parameter version (Adam steps taken; grows with every accepted step). */
  readonly version?: number;
}

/** The conditional head's network, as published and checkpointed. */
export interface ConditionalArchitecture {
  readonly inputs: number;
  readonly hidden: number[];
  readonly activation: "tanh" | "relu";
  /** d + d(d−1)/2 + d: loc, strictly-lower part, raw diagonal of scale_tril (whitened frame). */
  readonly outputs: number;
  readonly diag: DiagTransform;
  readonly time_features: ("daily" | "weekly")[];
}

/**
 * Complete learnable state of one head, enough to resume exactly: the whitening frame, the
 * unconstrained parameters, Adam moments and counters. Plain numbers so it serialises to JSON.
 */
export interface HeadState {
  readonly key: string;
  readonly dim: number;
  readonly diag: DiagTransform;
  /** Frame origin (data units), length d. */
  readonly frame_loc: number[];
  /** Frame Cholesky factor (data units), packed lower triangle row by row, length d(d+1)/2. */
  readonly frame_tril: number[];
  /** Unconstrained parameters in the frame: loc' (d), strictly-lower (d(d-1)/2), raw diagonal (d). */
  readonly theta: number[];
  /** Adam first and second moments, same length as theta. */
  readonly adam_m: number[];
  readonly adam_v: number[];
  readonly steps: number;
  readonly observations: number;
  readonly rejected_updates: number;
  /** True when the head was started from given parameters: anomalies are flagged without warm-up. */
  readonly preset?: boolean;
  /**
   * While the key is still initialising (fewer than `init_rows` observations learned), the running
   * sample mean and scatter (packed lower, data units) of what it has seen; null afterwards.
   */
  readonly init: { count: number; w2?: number; mean: number[]; scatter: number[] } | null;
  /**
   * Natural step only (absent with Adam and in older checkpoints): the decayed weight sum `w` and
   * Σw² `w2` behind the parameters (Kish n_eff = w²/w2), the change detector's CUSUM and the
   * number of restarts. During initialisation `init.count` is the weight sum and `init.w2` its Σw².
   */
  readonly memory?: { w: number; w2: number; cusum: number; restarts: number };
  /**
   * Conditional head only: `theta` holds the network's weights (layer by layer, W row-major
   * [in][out] then b), `adam_m`/`adam_v` their Adam moments, `frame_*` the whitening frame from
   * the key's first rows; this adds the architecture, the feature standardiser (Welford) and the
   * latest context.
   */
  readonly head?: "conditional";
  readonly conditional?: {
    readonly architecture: ConditionalArchitecture;
    readonly standardiser: { count: number; mean: number[]; m2: number[] };
    readonly context: number[] | null;
    /** The moving average of θ that scores use (see `average` in head_config.ts). */
    readonly average?: number[];
    /** The replay memory: the key's most recent learned rows (raw), oldest overwritten first. */
    readonly memory?: {
      size: number;
      next: number;
      values: number[];
      context: number[];
      weights: number[];
    };
  };
}
