/**
 * Flatline evidence for the alarms (`alarm.ts`): per key and sensor, the exact-repeat behaviour as
 * a two-state Markov chain learnt over completed runs, and the evidence −log10 P of the current
 * run of repeats under it. One key's statistics are plain JSON ({@link FlatState}, checkpointed
 * with its alarm state); many keys' live in a {@link FlatSlab}.
 *
 * @module
 */

/**
 * Per dimension, a sensor's exact-repeat behaviour as a two-state Markov chain (the previous row
 * was a repeat of the one before it, or not), counted over completed runs only: `last` reading,
 * `run` the current run of repeats, `fromN`/`nToR` transitions out of a non-repeat and how many of
 * them were repeats, `fromR`/`rToR` the same out of a repeat. Plain JSON.
 */
export interface FlatState {
  last: number[];
  run: number[];
  fromN: number[];
  nToR: number[];
  fromR: number[];
  rToR: number[];
}

/**
 * Non-repeat transitions a dimension needs before its runs count as evidence: a sensor that has
 * never changed (a constant column) or barely has says nothing yet about how often it repeats.
 */
export const FLAT_MIN_CHANGES = 100;

/**
 * −log10 of the probability that a sensor alive by its learned chain shows the current run of r ≥ 1
 * exact repeats: P = P(N→R)·P(R→R)^(r−1), each transition probability with a uniform prior
 * (Laplace: (count + 1)/(trials + 2)). 0 for r = 0 or before {@link FLAT_MIN_CHANGES}.
 */
export function flatEvidence(f: FlatArrays, j: number, r: number): number {
  if (r <= 0 || f.fromN[j] < FLAT_MIN_CHANGES) return 0;
  const start = (f.nToR[j] + 1) / (f.fromN[j] + 2);
  const stay = (f.rToR[j] + 1) / (f.fromR[j] + 2);
  return -(Math.log10(start) + (r - 1) * Math.log10(stay));
}

/** Fresh repeat statistics for d dimensions, starting from `values`. */
export function newFlat(values: ArrayLike<number>): FlatState {
  const d = values.length;
  return {
    last: Array.from(values, (v) => (Number.isFinite(v) ? v : 0)),
    run: new Array(d).fill(0),
    fromN: new Array(d).fill(0),
    nToR: new Array(d).fill(0),
    fromR: new Array(d).fill(0),
    rToR: new Array(d).fill(0),
  };
}

/**
 * The fields of {@link FlatState} as indexable numbers: one key's plain arrays (index =
 * dimension), many keys' arrays side by side (`alarm_slots.ts`: index = slot · d + dimension), or
 * a {@link FlatSlab} chunk's records (views of one buffer, see {@link stepFlat}'s indices).
 */
export interface FlatArrays {
  readonly last: { [i: number]: number };
  readonly run: { [i: number]: number };
  readonly fromN: { [i: number]: number };
  readonly nToR: { [i: number]: number };
  readonly fromR: { [i: number]: number };
  readonly rToR: { [i: number]: number };
}

/**
 * Advances the repeat statistics of d dimensions of `f` by one row of readings: dimension i's last
 * reading at `last + i`, its counts (`run`, `fromN`, …) at `counts + i · stride`. Returns the
 * flatline evidence of the row (the largest over dimensions less log10 d, a Bonferroni bound, at
 * least 0) and its dimension in out[0] (−1 when none).
 */
export function stepFlat(
  f: FlatArrays,
  last: number,
  counts: number,
  stride: number,
  d: number,
  values: ArrayLike<number>,
  out: Int32Array,
): number {
  let best = 0, at = -1;
  for (let i = 0; i < d; i++) {
    const j = counts + i * stride;
    const x = values[i];
    // A reading that is not finite is never scored (refused upstream); it leaves the chain alone.
    if (!Number.isFinite(x)) continue;
    if (x === f.last[last + i]) {
      const r = ++f.run[j];
      const e = flatEvidence(f, j, r);
      if (e > best) {
        best = e;
        at = i;
      }
    } else {
      // The run ended: its transitions join the chain's counts (N→R, then R→R r−1 times, R→N).
      const r = f.run[j];
      f.fromN[j]++;
      if (r > 0) {
        f.nToR[j]++;
        f.fromR[j] += r;
        f.rToR[j] += r - 1;
      }
      f.run[j] = 0;
      f.last[last + i] = x;
    }
  }
  out[0] = at;
  const e = best - Math.log10(d);
  return e > 0 ? e : 0;
}

/** The five counts of {@link FlatState}, in a slab record's order. */
const FLAT_COUNTS = ["run", "fromN", "nToR", "fromR", "rToR"] as const;

/** A slab chunk: one record per key (see {@link FlatSlab}), and whether each key was seen. */
interface FlatChunk {
  /** Per key: 1 once its first row was seen (a small array, apart: it stays in cache). */
  readonly seen: Uint8Array;
  /** The records' readings (by doubles). */
  readonly f64: Float64Array;
  /** The records as {@link FlatArrays}: `last` by doubles, the counts by 32-bit words. */
  readonly arrays: FlatArrays;
}

/**
 * The repeat statistics of many keys, one record per key in fixed-size chunks, so a sparse bank
 * holds no object per key (issue 13: 100,000 keys at ≤ 2 KB each). A record holds the key's d
 * readings (exact), then per dimension its five counts side by side as 32-bit integers (28 B per
 * dimension instead of 48): a row's step reads one record, one or two cache lines, where an array
 * per field cost a cache miss per field with many keys. One key would need over 4·10⁹ rows in one
 * replay to wrap a count, which only pauses its flatline evidence until 100 more changes are seen.
 */
export class FlatSlab {
  readonly #d: number;
  /** Record size in 32-bit words (even: each record's readings stay 8-byte aligned). */
  readonly #words: number;
  /** Key → slot, for a slab used by key; a slab used by slot (the caller's ids) leaves it empty. */
  readonly #slots = new Map<string, number>();
  /** Chunks of {@link FLAT_CHUNK} keys: growing copies nothing and wastes < 1 chunk. */
  readonly #chunks: FlatChunk[] = [];
  /** How the slab is used, fixed by its first use: slots made here by key, or the caller's. */
  #by: "key" | "slot" | null = null;

  constructor(d: number) {
    this.#d = d;
    this.#words = 2 * d + 5 * d + ((5 * d) % 2);
  }

  #use(by: "key" | "slot"): void {
    if (this.#by === by) return;
    if (this.#by !== null) {
      throw new TypeError(`expected a flat slab used by ${this.#by}, found a use by ${by}`);
    }
    this.#by = by;
  }

  /** Key's slot, a new (zeroed) one when `create`, else −1 for an unknown key. */
  #slot(key: string, create: boolean): number {
    this.#use("key");
    const s = this.#slots.get(key);
    if (s !== undefined || !create) return s ?? -1;
    const slot = this.#slots.size;
    this.#slots.set(key, slot);
    return slot;
  }

  #chunk(slot: number): FlatChunk {
    const c = Math.floor(slot / FLAT_CHUNK);
    while (c >= this.#chunks.length) {
      const buf = new ArrayBuffer(FLAT_CHUNK * this.#words * 4);
      const f64 = new Float64Array(buf);
      // The counts' views start one word apart: count k of a dimension at index j is word j + k.
      const u32 = (k: number) => new Uint32Array(buf, 4 * k, FLAT_CHUNK * this.#words - k);
      this.#chunks.push({
        seen: new Uint8Array(FLAT_CHUNK),
        f64,
        arrays: {
          last: f64,
          run: u32(0),
          fromN: u32(1),
          nToR: u32(2),
          fromR: u32(3),
          rToR: u32(4),
        },
      });
    }
    return this.#chunks[c];
  }

  /** One row's step (see `stepFlat`); a key's first row only sets its last readings. */
  step(key: string, values: ArrayLike<number>, out: Int32Array): number {
    return this.#stepAt(this.#slot(key, true), values, out);
  }

  /**
   * {@link step} for the key whose slot is `slot` (the caller's dense id of it: 0, 1, 2, …, the
   * same for the same key every time). A slab is used either by key or by slot.
   */
  stepAt(slot: number, values: ArrayLike<number>, out: Int32Array): number {
    this.#use("slot");
    return this.#stepAt(slot, values, out);
  }

  /** Slot's record in its chunk: its readings' index (doubles) and its counts' (words). */
  #at(slot: number): { last: number; counts: number } {
    const w = (slot % FLAT_CHUNK) * this.#words;
    return { last: w / 2, counts: w + 2 * this.#d };
  }

  #stepAt(slot: number, values: ArrayLike<number>, out: Int32Array): number {
    const d = this.#d;
    const c = this.#chunk(slot);
    const i = slot % FLAT_CHUNK;
    const w = i * this.#words;
    if (c.seen[i] === 1) return stepFlat(c.arrays, w / 2, w + 2 * d, 5, d, values, out);
    c.seen[i] = 1;
    for (let j = 0; j < d; j++) {
      const v = values[j];
      c.f64[w / 2 + j] = Number.isFinite(v) ? v : 0;
    }
    out[0] = -1;
    return 0;
  }

  export(key: string): FlatState | undefined {
    const slot = this.#slot(key, false);
    if (slot < 0) return undefined;
    const { arrays: f } = this.#chunk(slot);
    const { last, counts } = this.#at(slot);
    const out: FlatState = { last: [], run: [], fromN: [], nToR: [], fromR: [], rToR: [] };
    for (let j = 0; j < this.#d; j++) {
      out.last.push(f.last[last + j]);
      for (const k of FLAT_COUNTS) out[k].push(f[k][counts + 5 * j]);
    }
    return out;
  }

  import(key: string, flat: FlatState): void {
    const slot = this.#slot(key, true);
    const c = this.#chunk(slot);
    c.seen[slot % FLAT_CHUNK] = 1;
    const { last, counts } = this.#at(slot);
    const f = c.arrays;
    for (let j = 0; j < this.#d; j++) {
      f.last[last + j] = flat.last[j];
      for (const k of FLAT_COUNTS) f[k][counts + 5 * j] = flat[k][j];
    }
  }
}

/** Keys per chunk of a {@link FlatSlab}. */
const FLAT_CHUNK = 4096;
