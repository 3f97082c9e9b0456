/**
 * The engine's pool of score buffers: each {@link ScoreBatch} it hands out is a set of views of
 * one buffer, and a released batch's buffer is reused by a later batch (fresh multi-megabyte
 * buffers cost more than the scoring itself at large batches: page faults on zeroed memory).
 *
 * @module
 */
import type { ScoreBatch } from "./types.ts";

/** Buffers {@link ScorePool.release} keeps for reuse. */
const _POOL_SIZE = 4;

/** Up to a few released score buffers, largest kept. */
export class ScorePool {
  readonly #pool: ArrayBuffer[] = [];

  /** Keeps the buffer of `scores` for reuse (the caller must not read them afterwards). */
  release(scores: ScoreBatch): void {
    const buf = scores.logProb.buffer;
    if (!(buf instanceof ArrayBuffer) || buf.byteLength === 0) return;
    const pool = this.#pool;
    if (pool.includes(buf)) return;
    if (pool.length < _POOL_SIZE) pool.push(buf);
    else {
      // Keep the largest buffers: they fit every batch size the smaller ones fit.
      let min = 0;
      for (let p = 1; p < pool.length; p++) if (pool[p].byteLength < pool[min].byteLength) min = p;
      if (pool[min].byteLength < buf.byteLength) pool[min] = buf;
    }
  }

  /** Score arrays for n rows, all views of one (pooled when possible) buffer. */
  outputs(n: number, d: number): ScoreBatch {
    const bytes = n * (33 + 8 * d);
    const pool = this.#pool;
    let best = -1;
    for (let p = 0; p < pool.length; p++) {
      const len = pool[p].byteLength;
      if (len >= bytes && (best < 0 || len < pool[best].byteLength)) best = p;
    }
    const buf = best >= 0 ? pool.splice(best, 1)[0] : new ArrayBuffer(bytes);
    return {
      n,
      dim: d,
      logProb: new Float64Array(buf, 0, n),
      mahalanobis2: new Float64Array(buf, 8 * n, n),
      pValue: new Float64Array(buf, 16 * n, n),
      seq: new Float64Array(buf, 24 * n, n),
      contrib: new Float64Array(buf, 32 * n, n * d),
      anomaly: new Uint8Array(buf, (32 + 8 * d) * n, n),
    };
  }
}
