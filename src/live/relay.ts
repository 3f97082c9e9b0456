/**
 * Bare relay mode for the `live` benchmark: the worker's consumer, pull, parse, publish (one record
 * per observation, acknowledged) and ack path with no model. It is the live loop with an engine
 * that scores nothing (zeros; `seq` still counts per key) and no checkpoints or parameters, so
 * that the benchmark measures the I/O pipeline alone, with the same consumer settings.
 *
 * @module
 */
import type { HeadConfig } from "../config/head_config.ts";
import type { Checkpoint } from "../../schemas/messages.ts";
import type { ScoringEngine } from "../engine/engine.ts";
import type { HeadSnapshot, HeadState, ObservationBatch, ScoreBatch } from "../engine/types.ts";
import type { CheckpointStore } from "./ports.ts";

/** An engine that learns nothing: every score is 0, `p_value` 1, never an anomaly. */
export class RelayEngine implements ScoringEngine {
  readonly backend = "cpu" as const;
  readonly backendReason = "relay (no model)";
  readonly #seq = new Map<string, number>();
  constructor(readonly config: HeadConfig) {}

  release(_scores: ScoreBatch): void {}
  process(b: ObservationBatch): Promise<ScoreBatch> {
    const seq = new Float64Array(b.n);
    for (let i = 0; i < b.n; i++) {
      const key = b.keys[b.keyIndex[i]];
      const counted = b.counted === undefined || b.counted[i] === 1;
      const s = (this.#seq.get(key) ?? 0) + (counted ? 1 : 0);
      this.#seq.set(key, s);
      seq[i] = Math.max(1, s);
    }
    return Promise.resolve({
      n: b.n,
      dim: b.dim,
      logProb: new Float64Array(b.n),
      mahalanobis2: new Float64Array(b.n),
      pValue: new Float64Array(b.n).fill(1),
      anomaly: new Uint8Array(b.n),
      contrib: new Float64Array(b.n * b.dim),
      seq,
    });
  }
  snapshot(): Promise<HeadSnapshot[]> {
    return Promise.resolve([]);
  }
  exportState(): Promise<HeadState[]> {
    return Promise.resolve([]);
  }
  importState(): Promise<void> {
    return Promise.resolve();
  }
  setParams(): Promise<void> {
    return Promise.resolve();
  }
  keys(): Promise<string[]> {
    return Promise.resolve([...this.#seq.keys()]);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Keeps no checkpoints (relay mode). */
export class NullCheckpointStore implements CheckpointStore {
  loadAll(): Promise<Checkpoint[]> {
    return Promise.resolve([]);
  }
  save(): Promise<void> {
    return Promise.resolve();
  }
}
