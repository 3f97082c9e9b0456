/**
 * The model-free stand-in engine: the engine contract with no heads and no learning, so that the
 * I/O around the engine can be measured or tested alone. `zero` scores nothing (every score 0,
 * `p_value` 1: the live benchmark's bare relay); `standard_normal` scores every row against
 * N(0, I) (replay's read/parse/write floor). `seq` counts each key's new rows either way.
 *
 * @module
 */
import type { HeadConfig } from "../config/head_config.ts";
import type { ScoringEngine } from "./engine.ts";
import type { HeadSnapshot, HeadState, ObservationBatch, ScoreBatch } from "./types.ts";

/** What the stand-in computes. */
export type StandInScores = "zero" | "standard_normal";

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

/** A {@link ScoringEngine} with no model. */
export class StandInEngine implements ScoringEngine {
  readonly backend = "cpu" as const;
  readonly backendReason: string;
  readonly #seq = new Map<string, number>();

  constructor(readonly config: HeadConfig, readonly scores: StandInScores) {
    this.backendReason = scores === "zero"
      ? "relay (no model)"
      : "none (standard normal, no model)";
  }

  process(b: ObservationBatch): Promise<ScoreBatch> {
    const { n, dim: d, values } = b;
    const out: ScoreBatch = {
      n,
      dim: d,
      logProb: new Float64Array(n),
      mahalanobis2: new Float64Array(n),
      pValue: new Float64Array(n).fill(1),
      anomaly: new Uint8Array(n),
      contrib: new Float64Array(n * d),
      seq: new Float64Array(n),
    };
    for (let i = 0; i < n; i++) {
      const key = b.keys[b.keyIndex[i]];
      const counted = b.counted === undefined || b.counted[i] === 1;
      const s = (this.#seq.get(key) ?? 0) + (counted ? 1 : 0);
      this.#seq.set(key, s);
      out.seq[i] = Math.max(1, s);
      if (this.scores === "zero") continue;
      let m2 = 0;
      for (let j = 0; j < d; j++) {
        const c = values[i * d + j] * values[i * d + j];
        out.contrib[i * d + j] = c;
        m2 += c;
      }
      out.mahalanobis2[i] = m2;
      out.logProb[i] = -0.5 * m2 - d * HALF_LOG_2PI;
      // The exact χ² tail only for even d: a floor needs the cost's shape, not the value.
      out.pValue[i] = Math.exp(-0.5 * m2);
      out.anomaly[i] = out.pValue[i] < this.config.alpha ? 1 : 0;
    }
    return Promise.resolve(out);
  }
  release(_scores: ScoreBatch): void {}
  snapshot(): Promise<HeadSnapshot[]> {
    return Promise.resolve([]);
  }
  exportState(): Promise<HeadState[]> {
    return Promise.resolve([]);
  }
  importState(): Promise<void> {
    return Promise.resolve();
  }
  forget(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.#seq.delete(k);
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
