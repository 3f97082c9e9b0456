/**
 * Alarm states of many keys in numbered slots (the live worker: every key's state is
 * checkpointed, so none can be dropped as `AlarmBank`'s `sparse` option does). The same detector
 * as {@link AlarmBank} without `sparse` (`alarm.ts`: {@link stepCusum}, and `flatline.ts`'s
 * {@link stepFlat} for the repeat statistics): the same steps give the same alarms, the same
 * episodes and the same {@link AlarmState}s out of {@link AlarmSlots.export}, field for field and in
 * the same order, so checkpoints do not change. A state takes 8 · (7 + 7d) bytes and a few flags in
 * chunks of typed arrays instead of two objects and seven small arrays (≈ 0.7 KB of JS heap at
 * d = 3, which V8 let grow several times before collecting). The caller numbers the keys (dense
 * slots, reused after {@link AlarmSlots.clear}).
 *
 * @module
 */
import {
  type AlarmEpisode,
  type AlarmInput,
  type AlarmState,
  DEFAULT_ALARM_REFERENCE,
  DEFAULT_ALARM_THRESHOLD,
  evidence,
  stepCusum,
} from "./alarm.ts";
import { stepFlat } from "./flatline.ts";

/** Slots per chunk. */
export const ALARM_CHUNK = 4096;

/** Scalar fields of a state, in a chunk's `scalars` (7 per slot). */
const CUSUM = 0, START_SEQ = 1, START_T = 2, END_SEQ = 3, END_T = 4, OBS = 5, PEAK = 6;
const SCALARS = 7;
/** Flag bits. */
const HAS = 1, OPEN = 2, HAS_FLAT = 4;
/** Time tags (a time is a number, null or a string). */
const T_NUMBER = 0, T_NULL = 1, T_STRING = 2;

interface Chunk {
  readonly scalars: Float64Array;
  readonly shares: Float64Array;
  readonly flags: Uint8Array;
  /** Tags of start_t and end_t (2 per slot). */
  readonly tags: Uint8Array;
  /** Repeat statistics (d per slot each), exact: the counts as doubles, as in a state's arrays. */
  readonly last: Float64Array;
  readonly run: Float64Array;
  readonly fromN: Float64Array;
  readonly nToR: Float64Array;
  readonly fromR: Float64Array;
  readonly rToR: Float64Array;
}

/** Where a step's flatline dimension is returned (−1: none). */
const FLAT_AT = new Int32Array(1);

/** Alarm states by slot; see the module's note. `T`: the time values. */
export class AlarmSlots<T extends number | string | null = number | string | null> {
  readonly threshold: number;
  readonly reference: number;
  readonly #d: number;
  readonly #chunks: Chunk[] = [];
  /** Time values that are strings, by 2 · slot (start_t) and 2 · slot + 1 (end_t). */
  readonly #strings = new Map<number, string>();
  /** One state object reused for every step (the CUSUM's step works on a state). */
  readonly #scratch: AlarmState<T>;

  constructor(
    dim: number,
    threshold = DEFAULT_ALARM_THRESHOLD,
    reference = DEFAULT_ALARM_REFERENCE,
  ) {
    if (!(threshold > 0) || !Number.isFinite(threshold)) {
      throw new RangeError(`expected a finite alarm threshold > 0, found ${threshold}`);
    }
    if (!(reference > 0) || !Number.isFinite(reference)) {
      throw new RangeError(`expected a finite alarm reference > 0, found ${reference}`);
    }
    this.#d = dim;
    this.threshold = threshold;
    this.reference = reference;
    this.#scratch = {
      cusum: 0,
      open: false,
      start_seq: 0,
      start_t: null as T,
      end_seq: 0,
      end_t: null as T,
      observations: 0,
      peak: 0,
      shares: new Array(dim).fill(0),
    };
  }

  #chunk(slot: number): Chunk {
    const i = Math.floor(slot / ALARM_CHUNK);
    while (this.#chunks.length <= i) {
      const n = ALARM_CHUNK * this.#d;
      this.#chunks.push({
        scalars: new Float64Array(ALARM_CHUNK * SCALARS),
        shares: new Float64Array(n),
        flags: new Uint8Array(ALARM_CHUNK),
        tags: new Uint8Array(2 * ALARM_CHUNK),
        last: new Float64Array(n),
        run: new Float64Array(n),
        fromN: new Float64Array(n),
        nToR: new Float64Array(n),
        fromR: new Float64Array(n),
        rToR: new Float64Array(n),
      });
    }
    return this.#chunks[i];
  }

  /** Whether slot holds a state. */
  has(slot: number): boolean {
    const c = this.#chunks[Math.floor(slot / ALARM_CHUNK)];
    return c !== undefined && (c.flags[slot % ALARM_CHUNK] & HAS) !== 0;
  }

  /** Whether slot's alarm is on now (without an observation). */
  isOpen(slot: number): boolean {
    const c = this.#chunks[Math.floor(slot / ALARM_CHUNK)];
    return c !== undefined && (c.flags[slot % ALARM_CHUNK] & OPEN) !== 0;
  }

  /**
   * Advances slot's state (a new closed one if it holds none, as `AlarmBank` makes it) by one
   * observation of `key`; returns the alarm after it and the episode it closed, if any.
   */
  step(slot: number, key: string, obs: AlarmInput<T>): {
    alarm: boolean;
    closed: AlarmEpisode<T> | null;
  } {
    const d = this.#d;
    const c = this.#chunk(slot);
    const i = slot % ALARM_CHUNK;
    const base = i * d;
    if ((c.flags[i] & HAS) === 0) this.#fresh(c, slot, obs.t);
    let e = obs.armed === false ? 0 : evidence(obs.pValue);
    let flatDim = -1;
    const values = obs.values;
    if (values !== undefined) {
      if ((c.flags[i] & HAS_FLAT) === 0) {
        // As `newFlat`: the readings (non-finite as 0), every count 0; no evidence yet.
        for (let j = 0; j < d; j++) {
          const v = values[j];
          c.last[base + j] = Number.isFinite(v) ? v : 0;
          c.run[base + j] = 0;
          c.fromN[base + j] = 0;
          c.nToR[base + j] = 0;
          c.fromR[base + j] = 0;
          c.rToR[base + j] = 0;
        }
        c.flags[i] |= HAS_FLAT;
      } else {
        const ef = stepFlat(c, base, base, 1, d, values, FLAT_AT);
        if (obs.armed !== false && ef > e) {
          e = ef;
          flatDim = FLAT_AT[0];
        }
      }
    }
    const s = this.#load(c, slot);
    const r = stepCusum(s, key, obs, e, flatDim, this.threshold, this.reference);
    this.#store(c, slot, s);
    return r;
  }

  /** A copy of slot's state (undefined when it holds none), as `AlarmBank.export` gives it. */
  export(slot: number): AlarmState<T> | undefined {
    if (!this.has(slot)) return undefined;
    const c = this.#chunk(slot);
    const i = slot % ALARM_CHUNK;
    const s = this.#load(c, slot);
    const out: AlarmState<T> = { ...s, shares: [...s.shares] };
    if ((c.flags[i] & HAS_FLAT) !== 0) {
      const d = this.#d;
      // A plain loop: `Array.from` of a subarray allocated a view and an iterator per array, and
      // with many keys every checkpoint barrier exports a state per key (a visible share of the
      // worker's allocation and time, docs/perf/2026-12-07-live-keys-cpu.md).
      const at = (a: Float64Array) => {
        const out: number[] = [];
        for (let j = i * d; j < i * d + d; j++) out.push(a[j]);
        return out;
      };
      out.flat = {
        last: at(c.last),
        run: at(c.run),
        fromN: at(c.fromN),
        nToR: at(c.nToR),
        fromR: at(c.fromR),
        rToR: at(c.rToR),
      };
    }
    return out;
  }

  /** Sets slot's state to (a copy of) `state`. */
  import(slot: number, state: AlarmState<T>): void {
    const d = this.#d;
    const f = state.flat;
    const lengths = [state.shares, ...(f === undefined ? [] : Object.values(f))].map((a) =>
      a.length
    );
    if (lengths.some((n) => n !== d)) {
      throw new RangeError(
        `expected an alarm state of dimension ${d}, found arrays of lengths ${lengths.join(", ")}`,
      );
    }
    const c = this.#chunk(slot);
    const i = slot % ALARM_CHUNK;
    this.clear(slot);
    this.#store(c, slot, state);
    if (f !== undefined) {
      const base = i * d;
      for (let j = 0; j < d; j++) {
        c.last[base + j] = f.last[j];
        c.run[base + j] = f.run[j];
        c.fromN[base + j] = f.fromN[j];
        c.nToR[base + j] = f.nToR[j];
        c.fromR[base + j] = f.fromR[j];
        c.rToR[base + j] = f.rToR[j];
      }
      c.flags[i] |= HAS_FLAT;
    }
  }

  /** Drops slot's state (the slot may then be given to another key). */
  clear(slot: number): void {
    const c = this.#chunks[Math.floor(slot / ALARM_CHUNK)];
    if (c === undefined) return;
    const i = slot % ALARM_CHUNK;
    if (c.tags[2 * i] === T_STRING) this.#strings.delete(2 * slot);
    if (c.tags[2 * i + 1] === T_STRING) this.#strings.delete(2 * slot + 1);
    c.flags[i] = 0;
  }

  /** A new closed state at time `t` (as `newAlarmState`). */
  #fresh(c: Chunk, slot: number, t: T): void {
    const s = this.#scratch;
    s.cusum = 0;
    s.open = false;
    s.start_seq = 0;
    s.start_t = t;
    s.end_seq = 0;
    s.end_t = t;
    s.observations = 0;
    s.peak = 0;
    s.shares.fill(0);
    this.clear(slot);
    this.#store(c, slot, s);
  }

  /** Slot's state into the scratch object. */
  #load(c: Chunk, slot: number): AlarmState<T> {
    const i = slot % ALARM_CHUNK;
    const d = this.#d;
    const s = this.#scratch;
    const o = i * SCALARS;
    s.cusum = c.scalars[o + CUSUM];
    s.open = (c.flags[i] & OPEN) !== 0;
    s.start_seq = c.scalars[o + START_SEQ];
    s.start_t = this.#time(c, slot, 0);
    s.end_seq = c.scalars[o + END_SEQ];
    s.end_t = this.#time(c, slot, 1);
    s.observations = c.scalars[o + OBS];
    s.peak = c.scalars[o + PEAK];
    for (let j = 0; j < d; j++) s.shares[j] = c.shares[i * d + j];
    return s;
  }

  /** `s`'s fields (not its repeat statistics) into slot, which then holds a state. */
  #store(c: Chunk, slot: number, s: AlarmState<T>): void {
    const i = slot % ALARM_CHUNK;
    const d = this.#d;
    const o = i * SCALARS;
    c.scalars[o + CUSUM] = s.cusum;
    c.scalars[o + START_SEQ] = s.start_seq;
    this.#setTime(c, slot, 0, s.start_t);
    c.scalars[o + END_SEQ] = s.end_seq;
    this.#setTime(c, slot, 1, s.end_t);
    c.scalars[o + OBS] = s.observations;
    c.scalars[o + PEAK] = s.peak;
    for (let j = 0; j < d; j++) c.shares[i * d + j] = s.shares[j];
    c.flags[i] = (c.flags[i] & HAS_FLAT) | HAS | (s.open ? OPEN : 0);
  }

  #time(c: Chunk, slot: number, which: 0 | 1): T {
    const i = slot % ALARM_CHUNK;
    const tag = c.tags[2 * i + which];
    if (tag === T_NUMBER) return c.scalars[i * SCALARS + (which === 0 ? START_T : END_T)] as T;
    if (tag === T_NULL) return null as T;
    return this.#strings.get(2 * slot + which) as T;
  }

  #setTime(c: Chunk, slot: number, which: 0 | 1, t: T): void {
    const i = slot % ALARM_CHUNK;
    const k = 2 * i + which;
    if (c.tags[k] === T_STRING && typeof t !== "string") this.#strings.delete(2 * slot + which);
    if (typeof t === "number") {
      c.tags[k] = T_NUMBER;
      c.scalars[i * SCALARS + (which === 0 ? START_T : END_T)] = t;
    } else if (t === null) c.tags[k] = T_NULL;
    else {
      c.tags[k] = T_STRING;
      this.#strings.set(2 * slot + which, t as string);
    }
  }
}
