/**
 * Synthetic keyed telemetry for the benchmarks: K keys, each a correlated Gaussian with its own
 * mean and scale; a deterministic generator so runs are comparable.
 *
 * @module
 */
import type { ObservationBatch } from "../src/engine/types.ts";
import { mulberry32 as rng } from "../src/model/prng.ts";

/** Generator of batches over `keys` keys of dimension `dim`. */
export class SyntheticSource {
  readonly keys: readonly string[];
  readonly #u: () => number;
  readonly #mean: Float64Array;
  readonly #scale: Float64Array;

  constructor(readonly dim: number, keyCount: number, seed = 1) {
    this.keys = Array.from({ length: keyCount }, (_, k) => `key-${k}`);
    this.#u = rng(seed);
    this.#mean = Float64Array.from({ length: keyCount * dim }, () => 10 * (this.#u() - 0.5));
    this.#scale = Float64Array.from({ length: keyCount }, () => 0.5 + this.#u());
  }

  #normal(): number {
    return Math.sqrt(-2 * Math.log(1 - this.#u())) * Math.cos(2 * Math.PI * this.#u());
  }

  /** Fills row i of `values` from key k (correlated: each component leans on the previous). */
  row(values: Float64Array, i: number, k: number): void {
    const d = this.dim;
    let prev = 0;
    for (let a = 0; a < d; a++) {
      const e = this.#normal();
      const v = this.#mean[k * d + a] + this.#scale[k] * (e + 0.5 * prev);
      values[i * d + a] = v;
      prev = e;
    }
  }

  /** One batch of n rows, keys drawn uniformly. */
  batch(n: number): ObservationBatch {
    const d = this.dim;
    const values = new Float64Array(n * d);
    const keyIndex = new Uint32Array(n);
    const K = this.keys.length;
    for (let i = 0; i < n; i++) {
      const k = K === 1 ? 0 : Math.floor(this.#u() * K);
      keyIndex[i] = k;
      this.row(values, i, k);
    }
    return { dim: d, n, values, keyIndex, keys: this.keys };
  }
}

/** A fresh copy of a batch (the worker engine detaches the arrays it is given). */
export function copyBatch(b: ObservationBatch): ObservationBatch {
  return { ...b, values: b.values.slice(), keyIndex: b.keyIndex.slice() };
}
