/**
 * Batch grouping by key for the engine: rows per key (a counting sort), row order within a key,
 * per-row learn masks and forgetting weights, and the grow-only scratch arrays these reuse batch
 * after batch. The per-row loops are small module functions on purpose (V8 optimises them early).
 *
 * @module
 */

/**
 * Rows per key (start offsets over keys, as for a counting sort), the keys that have rows (in key
 * order) with their local index, and the number of runs of consecutive rows of one key.
 */
export function groupRows(keyIndex: Uint32Array, n: number, K: number, sc: Scratch) {
  const start = sc.int("start", K + 1);
  start.fill(0);
  let runs = n > 0 ? 1 : 0;
  for (let i = 0; i < n; i++) {
    const k = keyIndex[i];
    if (k >= K) throw new RangeError(`expected key indices below ${K}, found ${k} in row ${i}`);
    start[k + 1]++;
    if (i > 0 && k !== keyIndex[i - 1]) runs++;
  }
  for (let k = 0; k < K; k++) start[k + 1] += start[k];
  const active = sc.int("active", K);
  const local = sc.int("local", K);
  let Ka = 0;
  for (let k = 0; k < K; k++) {
    if (start[k] !== start[k + 1]) {
      local[k] = Ka;
      active[Ka++] = k;
    }
  }
  return { start, active, local, Ka, runs };
}

/** Row indices grouped by key, in order within a key (the counting sort's second half). */
export function orderRows(
  keyIndex: Uint32Array,
  start: Int32Array,
  K: number,
  sc: Scratch,
): Int32Array {
  const n = keyIndex.length;
  const order = sc.int("order", n);
  const fill = sc.int("fill", K);
  fill.set(start.subarray(0, K));
  for (let i = 0; i < n; i++) order[fill[keyIndex[i]]++] = i;
  return order;
}

/** Per row: the local index of its key. */
export function localKeys(keyIndex: Uint32Array, local: Int32Array, out: Int32Array): Int32Array {
  for (let i = 0; i < out.length; i++) out[i] = local[keyIndex[i]];
  return out;
}

/** 1 = learn from the row (new and not frozen), 0 = score only. */
export function learnMaskOf(
  learn: Uint8Array | undefined,
  counted: Uint8Array | undefined,
  n: number,
  out: Uint8Array,
): Uint8Array {
  for (let i = 0; i < n; i++) {
    const isNew = counted === undefined || counted[i] === 1;
    out[i] = isNew && (learn === undefined || learn[i] === 1) ? 1 : 0;
  }
  return out;
}

/**
 * Forgetting weights: a learned row weighs λ^(learned rows of its key after it in the batch),
 * a score-only row 0; learnedK[k] counts each key's learned rows. Rows are walked backwards with
 * one running power per key.
 */
export function forgettingWeights(
  keyIndex: Uint32Array,
  mask: Uint8Array | null,
  lambda: number,
  out: Float32Array,
  learnedK: Float64Array,
  powK: Float64Array,
): Float32Array {
  learnedK.fill(0);
  powK.fill(1);
  for (let i = out.length - 1; i >= 0; i--) {
    if (mask !== null && mask[i] === 0) {
      out[i] = 0;
      continue;
    }
    const k = keyIndex[i];
    out[i] = powK[k];
    powK[k] *= lambda;
    learnedK[k]++;
  }
  return out;
}

/** from, from + 1, … into `out` (its whole length). */
export function rangeInto(out: Int32Array, from: number): Int32Array {
  for (let i = 0; i < out.length; i++) out[i] = from + i;
  return out;
}

/** The values of `rows`, gathered into `out` (default a new array) of rows.length · d. */
export function gatherRows(
  values: Float64Array,
  rows: Int32Array,
  d: number,
  out: Float64Array = new Float64Array(rows.length * d),
): Float64Array {
  // Element by element: a view per row cost more than the copy (one key per row, many keys).
  for (let r = 0; r < rows.length; r++) {
    const from = rows[r] * d;
    for (let a = 0; a < d; a++) out[r * d + a] = values[from + a];
  }
  return out;
}

/**
 * The rows of `rows` with mask 1: `rows` itself when that is all of them (the common case; callers
 * only read it), else a new array.
 */
export function maskedRows(rows: Int32Array, mask: Uint8Array): Int32Array {
  let n = 0;
  for (let r = 0; r < rows.length; r++) n += mask[rows[r]];
  if (n === rows.length) return rows;
  const out = new Int32Array(n);
  for (let r = 0, o = 0; r < rows.length; r++) if (mask[rows[r]] === 1) out[o++] = rows[r];
  return out;
}

/** The per-row weights of `rows`, in `out` (default a new float64 array) of rows.length. */
export function weightsAt(
  rows: Int32Array,
  rowWeight: Float32Array,
  out: Float64Array = new Float64Array(rows.length),
): Float64Array {
  for (let r = 0; r < rows.length; r++) out[r] = rowWeight[rows[r]];
  return out;
}

/** Grow-only per-engine scratch arrays, reused batch after batch (contents are not cleared). */
export class Scratch {
  readonly #arrays = new Map<string, Int32Array | Uint8Array | Float32Array | Float64Array>();
  /** Per slot, float64 arrays by exact length (short ones): per-key temporaries, many keys. */
  readonly #exact: (Float64Array | undefined)[][] = [[], []];
  /** Int32 arrays by exact length (short ones): a key's rows, copied (see {@link rowsInto}). */
  readonly #exactInt: (Int32Array | undefined)[] = [];

  /**
   * A float64 array of exactly n (contents not cleared) for per-key temporaries that no one keeps:
   * the same array again for the next request of slot and n.
   */
  exact(slot: 0 | 1, n: number): Float64Array {
    if (n > 256) return new Float64Array(n);
    const bySize = this.#exact[slot];
    return bySize[n] ??= new Float64Array(n);
  }

  /**
   * `from[lo..hi)` copied into an int32 array of exactly hi − lo that no one keeps: the same array
   * again for the next request of that length. A view per key and batch (many keys, a row or two
   * each) was most of the engine's garbage, and the garbage sets how far V8 grows its heap.
   */
  rowsInto(from: Int32Array, lo: number, hi: number): Int32Array {
    const n = hi - lo;
    if (n > 256) return from.subarray(lo, hi);
    const out = this.#exactInt[n] ??= new Int32Array(n);
    for (let r = 0; r < n; r++) out[r] = from[lo + r];
    return out;
  }

  int(name: string, n: number): Int32Array {
    return this.#get(name, n, (m) => new Int32Array(m)) as Int32Array;
  }
  uint8(name: string, n: number): Uint8Array {
    return this.#get(name, n, (m) => new Uint8Array(m)) as Uint8Array;
  }
  float32(name: string, n: number): Float32Array {
    return this.#get(name, n, (m) => new Float32Array(m)) as Float32Array;
  }
  float64(name: string, n: number): Float64Array {
    return this.#get(name, n, (m) => new Float64Array(m)) as Float64Array;
  }

  #get(
    name: string,
    n: number,
    make: (m: number) => Int32Array | Uint8Array | Float32Array | Float64Array,
  ): Int32Array | Uint8Array | Float32Array | Float64Array {
    let a = this.#arrays.get(name);
    if (a === undefined || a.length < n) {
      a = make(Math.max(n, 2 * (a?.length ?? 0)));
      this.#arrays.set(name, a);
    }
    return a.subarray(0, n);
  }
}
