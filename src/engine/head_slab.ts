/**
 * Storage of a {@link HeadBank}'s heads: every number of every head lives in a few large
 * Float64Array chunks (struct of arrays per slot), not in per-key objects and small typed arrays.
 * With many small heads (100,000 keys of d = 3) the per-key objects cost more than the numbers —
 * each small typed array has its own backing store and bookkeeping, and a heap of many long-lived
 * objects grows far beyond what it holds between collections (issue 13). A {@link SlabHead} is a
 * short-lived cursor onto a slot, or (for a batch's keys) a working copy of one.
 *
 * @module
 */
import type { WeightedMoments } from "../model/moments.ts";
import type { Head } from "./head.ts";

// Scalar fields of a slot, in order; the arrays follow.
const STEPS = 0;
const OBS = 1;
const REJECTED = 2;
const PRESET = 3;
const W_SUM = 4;
const W2_SUM = 5;
const CUSUM = 6;
const RESTARTS = 7;
const THR_N = 8;
const THR = 9;
const CUT_N = 10;
const CUT = 11;
const LOG_DET = 12;
const INIT_ON = 13;
const INIT_COUNT = 14;
const INIT_W2 = 15;
const SCALARS = 16;

/** Bytes a chunk aims at: large enough that chunks are few, small enough to waste little. */
const CHUNK_BYTES = 1 << 19;

/** Offsets of a slot's arrays and the slot's length (doubles). */
interface Layout {
  readonly frameLoc: number;
  readonly frameTril: number;
  readonly theta: number;
  readonly locC: number;
  readonly tril: number;
  readonly initMean: number;
  readonly initScatter: number;
  /** Adam's moments (-1: not stored; the natural step never uses them). */
  readonly m: number;
  readonly v: number;
  readonly stride: number;
}

function layoutOf(d: number, P: number, adam: boolean): Layout {
  let o = SCALARS;
  const take = (n: number) => {
    const at = o;
    o += n;
    return at;
  };
  const frameLoc = take(d), frameTril = take(d * d), theta = take(P);
  const locC = take(d), tril = take(d * d), initMean = take(d), initScatter = take(d * d);
  const m = adam ? take(P) : -1, v = adam ? take(P) : -1;
  return { frameLoc, frameTril, theta, locC, tril, initMean, initScatter, m, v, stride: o };
}

/** Fixed-size chunks of slots, with a free list. */
export class HeadStore {
  readonly d: number;
  readonly P: number;
  readonly layout: Layout;
  /** Slots per chunk: 2^#shift (slot → chunk and offset by shift and mask). */
  readonly #shift: number;
  readonly #perChunk: number;
  readonly #chunks: Float64Array[] = [];
  readonly #free: number[] = [];
  #next = 0;
  /** Working heads by batch position (see {@link load}). */
  readonly #work: SlabHead[] = [];

  /** `adam`: whether slots hold Adam's moments. */
  constructor(d: number, P: number, adam: boolean) {
    this.d = d;
    this.P = P;
    this.layout = layoutOf(d, P, adam);
    const fit = Math.max(16, Math.floor(CHUNK_BYTES / (8 * this.layout.stride)));
    this.#shift = Math.floor(Math.log2(fit));
    this.#perChunk = 1 << this.#shift;
  }

  /** A zeroed slot. */
  alloc(): number {
    const slot = this.#free.pop() ?? this.#next++;
    const c = slot >>> this.#shift;
    if (c === this.#chunks.length) {
      this.#chunks.push(new Float64Array(this.#perChunk * this.layout.stride));
    } else {
      const o = this.offset(slot);
      this.#chunks[c].fill(0, o, o + this.layout.stride);
    }
    return slot;
  }

  /** Gives a slot back for reuse (no cursor onto it may be used afterwards). */
  release(slot: number): void {
    this.#free.push(slot);
  }

  chunk(slot: number): Float64Array {
    return this.#chunks[slot >>> this.#shift];
  }

  offset(slot: number): number {
    return (slot & (this.#perChunk - 1)) * this.layout.stride;
  }

  /**
   * Batch position j's working copy of `slot` (see {@link HeadBank.batchHead}): the slot's numbers
   * copied into a head kept for position j across batches, whose array views are made once. With
   * many keys a batch's slots are far apart in memory: these copies, one tight loop per slot, take
   * the cache misses together, and no cursor or view is allocated per key and batch (issue 13).
   */
  load(j: number, key: string, slot: number): SlabHead {
    const stride = this.layout.stride;
    let w = this.#work[j];
    if (w === undefined) {
      w = new SlabHead(this, key, slot, new Float64Array(stride));
      this.#work[j] = w;
    }
    w.key = key;
    w.slot = slot;
    const buf = this.#chunks[slot >>> this.#shift], o = this.offset(slot), to = w.buffer;
    for (let a = 0; a < stride; a++) to[a] = buf[o + a];
    return w;
  }

  /** Writes a working copy made by {@link load} back into its slot. */
  save(w: SlabHead): void {
    const stride = this.layout.stride;
    const buf = this.#chunks[w.slot >>> this.#shift], o = this.offset(w.slot), from = w.buffer;
    for (let a = 0; a < stride; a++) buf[o + a] = from[a];
  }

  /** A cursor onto `slot`. */
  head(key: string, slot: number): SlabHead {
    return new SlabHead(this, key, slot);
  }
}

/** Initialisation moments stored in a slot (count and Σw² as accessors onto it). */
class SlabMoments implements WeightedMoments {
  readonly #buf: Float64Array;
  readonly #o: number;
  readonly mean: Float64Array;
  readonly scatter: Float64Array;

  constructor(buf: Float64Array, o: number, layout: Layout, d: number) {
    this.#buf = buf;
    this.#o = o;
    this.mean = buf.subarray(o + layout.initMean, o + layout.initMean + d);
    this.scatter = buf.subarray(o + layout.initScatter, o + layout.initScatter + d * d);
  }

  get count(): number {
    return this.#buf[this.#o + INIT_COUNT];
  }
  set count(v: number) {
    this.#buf[this.#o + INIT_COUNT] = v;
  }
  get w2(): number {
    return this.#buf[this.#o + INIT_W2];
  }
  set w2(v: number) {
    this.#buf[this.#o + INIT_W2] = v;
  }
}

/**
 * A {@link Head} whose numbers live in a {@link HeadStore} slot. Its arrays are views made on first
 * use (a batch touches a few of them per key).
 */
export class SlabHead implements Head {
  // Mutable for a working copy (`HeadStore.load`), which is re-pointed at another key each batch.
  key: string;
  slot: number;
  /** Whether this is a working copy (its own buffer), written back by `HeadStore.save`. */
  readonly work: boolean;
  readonly #store: HeadStore;
  readonly #buf: Float64Array;
  readonly #o: number;
  #frameLoc: Float64Array | null = null;
  #frameTril: Float64Array | null = null;
  #theta: Float64Array | null = null;
  #locC: Float64Array | null = null;
  #tril: Float64Array | null = null;
  #init: SlabMoments | null = null;

  /** `own`: a working copy's buffer; default: a cursor onto the slot in place. */
  constructor(store: HeadStore, key: string, slot: number, own?: Float64Array) {
    this.key = key;
    this.slot = slot;
    this.#store = store;
    this.work = own !== undefined;
    this.#buf = own ?? store.chunk(slot);
    this.#o = own !== undefined ? 0 : store.offset(slot);
  }

  /** The buffer this head's numbers are in (a working copy's own). */
  get buffer(): Float64Array {
    return this.#buf;
  }

  #view(at: number, n: number): Float64Array {
    const o = this.#o + at;
    return this.#buf.subarray(o, o + n);
  }

  get frameLoc(): Float64Array {
    return this.#frameLoc ??= this.#view(this.#store.layout.frameLoc, this.#store.d);
  }
  get frameTril(): Float64Array {
    const d = this.#store.d;
    return this.#frameTril ??= this.#view(this.#store.layout.frameTril, d * d);
  }
  get theta(): Float64Array {
    return this.#theta ??= this.#view(this.#store.layout.theta, this.#store.P);
  }
  get locC(): Float64Array {
    return this.#locC ??= this.#view(this.#store.layout.locC, this.#store.d);
  }
  get tril(): Float64Array {
    const d = this.#store.d;
    return this.#tril ??= this.#view(this.#store.layout.tril, d * d);
  }
  /** Adam's first moments; without them stored (natural step), a fresh zero array each time. */
  get m(): Float64Array {
    const at = this.#store.layout.m;
    return at < 0 ? new Float64Array(this.#store.P) : this.#view(at, this.#store.P);
  }
  get v(): Float64Array {
    const at = this.#store.layout.v;
    return at < 0 ? new Float64Array(this.#store.P) : this.#view(at, this.#store.P);
  }

  get steps(): number {
    return this.#buf[this.#o + STEPS];
  }
  set steps(x: number) {
    this.#buf[this.#o + STEPS] = x;
  }
  get observations(): number {
    return this.#buf[this.#o + OBS];
  }
  set observations(x: number) {
    this.#buf[this.#o + OBS] = x;
  }
  get rejected(): number {
    return this.#buf[this.#o + REJECTED];
  }
  set rejected(x: number) {
    this.#buf[this.#o + REJECTED] = x;
  }
  get preset(): boolean {
    return this.#buf[this.#o + PRESET] === 1;
  }
  set preset(x: boolean) {
    this.#buf[this.#o + PRESET] = x ? 1 : 0;
  }
  get wSum(): number {
    return this.#buf[this.#o + W_SUM];
  }
  set wSum(x: number) {
    this.#buf[this.#o + W_SUM] = x;
  }
  get w2Sum(): number {
    return this.#buf[this.#o + W2_SUM];
  }
  set w2Sum(x: number) {
    this.#buf[this.#o + W2_SUM] = x;
  }
  get cusum(): number {
    return this.#buf[this.#o + CUSUM];
  }
  set cusum(x: number) {
    this.#buf[this.#o + CUSUM] = x;
  }
  get restarts(): number {
    return this.#buf[this.#o + RESTARTS];
  }
  set restarts(x: number) {
    this.#buf[this.#o + RESTARTS] = x;
  }
  get thrN(): number {
    return this.#buf[this.#o + THR_N];
  }
  set thrN(x: number) {
    this.#buf[this.#o + THR_N] = x;
  }
  get thr(): number {
    return this.#buf[this.#o + THR];
  }
  set thr(x: number) {
    this.#buf[this.#o + THR] = x;
  }
  get cutN(): number {
    return this.#buf[this.#o + CUT_N];
  }
  set cutN(x: number) {
    this.#buf[this.#o + CUT_N] = x;
  }
  get cut(): number {
    return this.#buf[this.#o + CUT];
  }
  set cut(x: number) {
    this.#buf[this.#o + CUT] = x;
  }
  get logDet(): number {
    return this.#buf[this.#o + LOG_DET];
  }
  set logDet(x: number) {
    this.#buf[this.#o + LOG_DET] = x;
  }

  /** The initialisation moments (a view onto the slot) while the key initialises, else null. */
  get init(): WeightedMoments | null {
    if (this.#buf[this.#o + INIT_ON] !== 1) return null;
    return this.#init ??= new SlabMoments(this.#buf, this.#o, this.#store.layout, this.#store.d);
  }
  /** Copies `m` into the slot (null: initialisation over). */
  set init(m: WeightedMoments | null) {
    const buf = this.#buf, o = this.#o;
    if (m === null) {
      buf[o + INIT_ON] = 0;
      return;
    }
    buf[o + INIT_ON] = 1;
    const own = this.init!;
    if (m === own) return;
    const d = this.#store.d;
    own.count = m.count;
    own.w2 = m.w2;
    // Loops, not set() of views: a few elements, per new key.
    const mean = own.mean, scatter = own.scatter;
    for (let a = 0; a < d; a++) mean[a] = m.mean[a];
    for (let e = 0; e < d * d; e++) scatter[e] = m.scatter[e];
  }
}
