/**
 * Groups the rows of a dispatch by key into fixed-size chunks, so that a device program can sum
 * per-key statistics without atomics: one thread per (chunk, statistic), then one per (key,
 * statistic) over that key's chunks. A counting sort, O(n + K).
 *
 * @module
 */

/** Rows of one key summed by one device thread; bounds the serial work per thread. */
export const CHUNK_ROWS = 256;

/** Rows of a dispatch ordered by key and cut into chunks. */
export interface RowSegments {
  /** n row indices, grouped by key (stable within a key). */
  readonly order: Int32Array;
  /** numChunks × 2: [start, end) into `order`; all rows of a chunk share one key. */
  readonly chunks: Int32Array;
  readonly numChunks: number;
  /** K + 1: key k owns chunks [keyChunks[k], keyChunks[k + 1]). */
  readonly keyChunks: Int32Array;
}

/** Builds the segments; throws RangeError on a key index outside [0, K). */
export function segmentRowsByKey(
  keyIdx: Int32Array,
  n: number,
  K: number,
  chunkRows: number = CHUNK_ROWS,
): RowSegments {
  const counts = new Int32Array(K + 1);
  for (let i = 0; i < n; i++) {
    const k = keyIdx[i];
    if (!(k >= 0 && k < K)) {
      throw new RangeError(`expected keyIdx[${i}] in [0, ${K}), found ${k}`);
    }
    counts[k + 1]++;
  }
  const keyChunks = new Int32Array(K + 1);
  let numChunks = 0;
  for (let k = 0; k < K; k++) {
    numChunks += Math.ceil(counts[k + 1] / chunkRows);
    keyChunks[k + 1] = numChunks;
    counts[k + 1] += counts[k]; // now the start offset of key k + 1
  }
  const order = new Int32Array(n);
  const next = counts.slice(0, K);
  for (let i = 0; i < n; i++) order[next[keyIdx[i]]++] = i;
  const chunks = new Int32Array(Math.max(1, numChunks) * 2);
  let c = 0;
  for (let k = 0; k < K; k++) {
    const end = counts[k + 1];
    for (let s = counts[k]; s < end; s += chunkRows) {
      chunks[2 * c] = s;
      chunks[2 * c + 1] = Math.min(end, s + chunkRows);
      c++;
    }
  }
  return { order, chunks, numChunks, keyChunks };
}
