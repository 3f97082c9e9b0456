/**
 * The scoring engine contract: prequential scoring and learning of keyed MVN heads.
 * `createEngine` runs it in the compute thread (a Web Worker) (`workers/compute_thread.ts`) by default.
 *
 * @module
 */
import type { HeadConfig } from "../config/head_config.ts";
import type {
  BackendName,
  HeadParams,
  HeadSnapshot,
  HeadState,
  ObservationBatch,
  ScoreBatch,
} from "./types.ts";

/** What the I/O side (replay, live worker, bench) sees of the engine. */
export interface ScoringEngine extends AsyncDisposable {
  /** Backend actually in use. */
  readonly backend: BackendName;
  /** Human description of the choice, e.g. "cpu (auto: webgpu adapter llvmpipe is a fallback adapter)". */
  readonly backendReason: string;
  readonly config: HeadConfig;
  /**
   * Scores every row with the parameters from before this batch, then (for rows with learn=1)
   * takes one Adam step per key. Batches are processed strictly in call order.
   */
  process(batch: ObservationBatch): Promise<ScoreBatch>;
  /**
   * Hands back a {@link ScoreBatch} returned by {@link process} once the caller is done with it,
   * so the engine can reuse its memory (all its arrays share one buffer): afterwards its arrays
   * are detached (worker) or overwritten by a later batch (same thread) — do not read them. Optional,
   * and worth it for large batches, where fresh zeroed buffers cost more than the scoring.
   */
  release(scores: ScoreBatch): void;
  /** Public parameters of the given keys (all keys when omitted); unknown keys are skipped. */
  snapshot(keys?: readonly string[]): Promise<HeadSnapshot[]>;
  /** Full resumable state of the given keys (all when omitted). */
  exportState(keys?: readonly string[]): Promise<HeadState[]>;
  /** Replaces (or creates) heads from saved state. */
  importState(states: readonly HeadState[]): Promise<void>;
  /**
   * Drops the given keys' heads from memory (unknown keys are skipped): the live worker's idle-key
   * eviction, which brings a key back with {@link importState} of its checkpoint.
   */
  forget(keys: readonly string[]): Promise<void>;
  /** Starts a key from given public parameters (`--params-in`); learning resumes from there. */
  setParams(key: string, params: HeadParams): Promise<void>;
  /** Keys the engine currently holds. */
  keys(): Promise<string[]>;
  close(): Promise<void>;
}
