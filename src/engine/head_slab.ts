/**
 * Storage of a {@link HeadBank}'s heads: every number of every head lives in a few large
 * Float64Array chunks (struct of arrays per slot), not in per-key objects and small typed arrays.
 * With many small heads (100,000 keys of d = 3) the per-key objects cost more than the numbers —
 * each small typed array has its own backing store and bookkeeping, and a heap of many long-lived
 * objects grows far beyond what it holds between collections (issue 13). A slot keeps only the lower
 * triangles of the head's three d×d matrices (their upper triangles are always 0): 416 instead of
 * 488 bytes at d = 3, 18 instead of 30 KB at d = 32. A {@link SlabHead} is a copy of a slot in the
 * full layout: a batch position's working copy, or a standalone one; {@link HeadStore.save} writes
 * either back.
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

/** Offsets of a head's arrays in its full layout (a {@link SlabHead}'s), and its length (doubles). */
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
  /** The full layout of a head (its copies'). */
  readonly layout: Layout;
  /** Slot entry p → its index in the full layout (every index but the matrices' upper triangles). */
  readonly #map: Int32Array;
  /** The matrices' upper-triangle indices in the full layout: 0 in every copy. */
  readonly #upper: Int32Array;
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
    const layout = layoutOf(d, P, adam);
    this.layout = layout;
    const upper = new Set<number>();
    for (const at of [layout.frameTril, layout.tril, layout.initScatter]) {
      for (let a = 0; a < d; a++) for (let b = a + 1; b < d; b++) upper.add(at + a * d + b);
    }
    this.#upper = Int32Array.from(upper);
    this.#map = Int32Array.from({ length: layout.stride }, (_, i) => i).filter((i) =>
      !upper.has(i)
    );
    const fit = Math.max(16, Math.floor(CHUNK_BYTES / (8 * this.#map.length)));
    this.#shift = Math.floor(Math.log2(fit));
    this.#perChunk = 1 << this.#shift;
  }

  /** A zeroed slot. */
  alloc(): number {
    const slot = this.#free.pop() ?? this.#next++;
    const c = slot >>> this.#shift;
    if (c === this.#chunks.length) {
      this.#chunks.push(new Float64Array(this.#perChunk * this.#map.length));
    } else {
      const o = this.#offset(slot);
      this.#chunks[c].fill(0, o, o + this.#map.length);
    }
    return slot;
  }

  /** Gives a slot back for reuse (no copy of it may be saved afterwards). */
  release(slot: number): void {
    this.#free.push(slot);
  }

  #offset(slot: number): number {
    return (slot & (this.#perChunk - 1)) * this.#map.length;
  }

  /**
   * Batch position j's working copy of `slot` (see {@link HeadBank.batchHead}): the slot's numbers
   * copied into a head kept for position j across batches, whose array views are made once. With
   * many keys a batch's slots are far apart in memory: these copies, one tight loop per slot, take
   * the cache misses together, and no head or view is allocated per key and batch (issue 13).
   */
  load(j: number, key: string, slot: number): SlabHead {
    let w = this.#work[j];
    if (w === undefined) {
      w = new SlabHead(this, key, slot, new Float64Array(this.layout.stride), true);
      this.#work[j] = w;
    }
    w.key = key;
    w.slot = slot;
    this.#read(slot, w.buffer);
    return w;
  }

  /** A standalone copy of `slot` (for one use: {@link save} keeps what it changes). */
  head(key: string, slot: number): SlabHead {
    const h = new SlabHead(this, key, slot, new Float64Array(this.layout.stride), false);
    this.#read(slot, h.buffer);
    return h;
  }

  /** Writes a copy ({@link load}, {@link head}) back into its slot. */
  save(h: SlabHead): void {
    const map = this.#map, from = h.buffer;
    const buf = this.#chunks[h.slot >>> this.#shift], o = this.#offset(h.slot);
    for (let p = 0; p < map.length; p++) buf[o + p] = from[map[p]];
  }

  #read(slot: number, to: Float64Array): void {
    const map = this.#map, upper = this.#upper;
    const buf = this.#chunks[slot >>> this.#shift], o = this.#offset(slot);
    for (let p = 0; p < map.length; p++) to[map[p]] = buf[o + p];
    for (let e = 0; e < upper.length; e++) to[upper[e]] = 0;
  }
}

/** Initialisation moments in a head's buffer (count and Σw² as accessors onto it). */
class SlabMoments implements WeightedMoments {
  readonly #buf: Float64Array;
  readonly mean: Float64Array;
  readonly scatter: Float64Array;

  constructor(buf: Float64Array, layout: Layout, d: number) {
    this.#buf = buf;
    this.mean = buf.subarray(layout.initMean, layout.initMean + d);
    this.scatter = buf.subarray(layout.initScatter, layout.initScatter + d * d);
  }

  get count(): number {
    return this.#buf[INIT_COUNT];
  }
  set count(v: number) {
    this.#buf[INIT_COUNT] = v;
  }
  get w2(): number {
    return this.#buf[INIT_W2];
  }
  set w2(v: number) {
    this.#buf[INIT_W2] = v;
  }
}

/**
 * A {@link Head}: a copy of a {@link HeadStore} slot in the full layout, written back by
 * `HeadStore.save`. Its arrays are views made on first use (a batch touches a few of them per key).
 */
export class SlabHead implements Head {
  // Mutable for a working copy (`HeadStore.load`), which is re-pointed at another key each batch.
  key: string;
  slot: number;
  /** Whether this is a batch position's working copy (`HeadStore.load`), not a standalone one. */
  readonly work: boolean;
  readonly #store: HeadStore;
  readonly #buf: Float64Array;
  #frameLoc: Float64Array | null = null;
  #frameTril: Float64Array | null = null;
  #theta: Float64Array | null = null;
  #locC: Float64Array | null = null;
  #tril: Float64Array | null = null;
  #init: SlabMoments | null = null;

  /** `buffer`: the copy's numbers (full layout); `work`: see {@link work}. */
  constructor(store: HeadStore, key: string, slot: number, buffer: Float64Array, work: boolean) {
    this.key = key;
    this.slot = slot;
    this.#store = store;
    this.work = work;
    this.#buf = buffer;
  }

  /** The buffer this head's numbers are in. */
  get buffer(): Float64Array {
    return this.#buf;
  }

  #view(at: number, n: number): Float64Array {
    return this.#buf.subarray(at, at + n);
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
    return this.#buf[STEPS];
  }
  set steps(x: number) {
    this.#buf[STEPS] = x;
  }
  get observations(): number {
    return this.#buf[OBS];
  }
  set observations(x: number) {
    this.#buf[OBS] = x;
  }
  get rejected(): number {
    return this.#buf[REJECTED];
  }
  set rejected(x: number) {
    this.#buf[REJECTED] = x;
  }
  get preset(): boolean {
    return this.#buf[PRESET] === 1;
  }
  set preset(x: boolean) {
    this.#buf[PRESET] = x ? 1 : 0;
  }
  get wSum(): number {
    return this.#buf[W_SUM];
  }
  set wSum(x: number) {
    this.#buf[W_SUM] = x;
  }
  get w2Sum(): number {
    return this.#buf[W2_SUM];
  }
  set w2Sum(x: number) {
    this.#buf[W2_SUM] = x;
  }
  get cusum(): number {
    return this.#buf[CUSUM];
  }
  set cusum(x: number) {
    this.#buf[CUSUM] = x;
  }
  get restarts(): number {
    return this.#buf[RESTARTS];
  }
  set restarts(x: number) {
    this.#buf[RESTARTS] = x;
  }
  get thrN(): number {
    return this.#buf[THR_N];
  }
  set thrN(x: number) {
    this.#buf[THR_N] = x;
  }
  get thr(): number {
    return this.#buf[THR];
  }
  set thr(x: number) {
    this.#buf[THR] = x;
  }
  get cutN(): number {
    return this.#buf[CUT_N];
  }
  set cutN(x: number) {
    this.#buf[CUT_N] = x;
  }
  get cut(): number {
    return this.#buf[CUT];
  }
  set cut(x: number) {
    this.#buf[CUT] = x;
  }
  get logDet(): number {
    return this.#buf[LOG_DET];
  }
  set logDet(x: number) {
    this.#buf[LOG_DET] = x;
  }

  /** The initialisation moments (views onto the buffer) while the key initialises, else null. */
  get init(): WeightedMoments | null {
    if (this.#buf[INIT_ON] !== 1) return null;
    return this.#init ??= new SlabMoments(this.#buf, this.#store.layout, this.#store.d);
  }
  /** Copies `m` into the head (null: initialisation over). */
  set init(m: WeightedMoments | null) {
    const buf = this.#buf;
    if (m === null) {
      buf[INIT_ON] = 0;
      return;
    }
    buf[INIT_ON] = 1;
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
