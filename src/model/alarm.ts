/**
 * Alarm episodes: a per-key debounced alarm state on the scores, shared by replay and the live
 * worker. Pure and deterministic: the same scores in the same order give the same alarms and the
 * same episodes, and the state is plain JSON (it travels in the live worker's checkpoints).
 *
 * Detector (docs/model.md, "Alarms"): a one-sided CUSUM of the evidence e = −log10 p_value,
 *
 *   S_n = max(0, S_{n−1} + e_n − k),   k = −log10 alpha (3 decades at the default alpha 1e-3),
 *
 * so only observations beyond the anomaly threshold add evidence (e − k > 0 ⟺ p < alpha), and
 * every other one takes k − e_n away. The alarm opens when S_n ≥ h (the one setting,
 * `--alarm-threshold`, default {@link DEFAULT_ALARM_THRESHOLD} decades): sustained evidence (a few
 * observations well beyond alpha in a short run) or one overwhelming observation (p ≤ 10^−(h+k):
 * 1e-8 by default). While open S is capped at h, and the alarm closes at the first observation
 * where S is back at 0: after at least h/k observations with no evidence (a quiet period), however
 * high the peak was.
 *
 * Evidence of p = 0 (a saturated score) is −log10 of the smallest double, {@link EVIDENCE_CAP}.
 * Observations a key makes before it may flag anomalies (warm-up) add no evidence.
 *
 * Flatlines (a stuck sensor repeating its last reading exactly) are invisible to the Gaussian
 * p-value while the frozen value stays in range, so the detector also takes the evidence of each
 * sensor's current run of exact repeats, −log10 of its probability under that sensor's own learned
 * repeat behaviour (a two-state Markov chain, `flatline.ts`), and uses the larger of the two.
 * The run in progress is not learned from until it ends: a long flatline cannot teach the chain that
 * flatlines are normal while it lasts.
 *
 * @module
 */

import { FlatSlab, type FlatState, newFlat, stepFlat } from "./flatline.ts";

/** Default CUSUM threshold h, in decades of evidence (−log10 p). */
export const DEFAULT_ALARM_THRESHOLD = 5;
/** Reference value k of the CUSUM for a given anomaly alpha: −log10 alpha (p < alpha adds evidence). */
export function alarmReference(alpha: number): number {
  return -Math.log10(alpha);
}
/** The reference at the default alpha (1e-3). */
export const DEFAULT_ALARM_REFERENCE = 3;
/** Evidence of one observation at most: −log10 of the smallest positive double (≈ 323.3). */
export const EVIDENCE_CAP = -Math.log10(Number.MIN_VALUE);
/** Dimensions named in an episode's `top_dims`, at most. */
export const TOP_DIMS = 3;

/** −log10 p, in [0, EVIDENCE_CAP]; null or NaN (no p-value) counts as no evidence. */
export function evidence(p: number | null): number {
  if (p === null || !(p >= 0)) return 0;
  if (p >= 1) return 0;
  return Math.min(EVIDENCE_CAP, -Math.log10(Math.max(p, Number.MIN_VALUE)));
}

/** Alarm state of one key: plain JSON (checkpointed by the live worker). `T`: its time values. */
export interface AlarmState<T = number | string | null> {
  /** The CUSUM S after the key's last observation. */
  cusum: number;
  open: boolean;
  /** The open episode (meaningless while closed). */
  start_seq: number;
  start_t: T;
  end_seq: number;
  end_t: T;
  observations: number;
  /** Highest evidence (−log10 p) in the episode. */
  peak: number;
  /** Per dimension: Σ over the episode of evidence × the dimension's share of m². */
  shares: number[];
  /** Repeat statistics per dimension (absent until the key's first reading with values). */
  flat?: FlatState;
}

/** A closed (or, at the end of a replay, still open) alarm episode. */
export interface AlarmEpisode<T = number | string | null> {
  readonly key: string;
  readonly start_seq: number;
  readonly end_seq: number;
  readonly start_t: T;
  readonly end_t: T;
  /** Observations with the alarm on (start to end). */
  readonly observations: number;
  /** Highest evidence in the episode (−log10 p_value or flatline; p = 0 counts as EVIDENCE_CAP). */
  readonly peak_log_p: number;
  /**
   * Up to {@link TOP_DIMS} dimensions (0-based, as in `contrib`) that carried the episode, largest
   * share first.
   */
  readonly top_dims: number[];
  /** Their evidence-weighted shares of the episode's Mahalanobis², in [0, 1], same order. */
  readonly top_shares: number[];
}

/** One scored observation, as the detector sees it. */
export interface AlarmInput<T> {
  readonly seq: number;
  readonly t: T;
  readonly pValue: number | null;
  /** Squared components of z (saturated or null values are tolerated). */
  readonly contrib: ArrayLike<number | null>;
  /** False during warm-up: the observation adds no evidence. Default true. */
  readonly armed?: boolean;
  /** The raw readings (d): their exact repeats are flatline evidence. Absent: none. */
  readonly values?: ArrayLike<number>;
}

/** Where a step's flatline dimension is returned (−1: none). */
const FLAT_AT = new Int32Array(1);

/** A new (closed) alarm state. */
export function newAlarmState<T>(dim: number, t: T): AlarmState<T> {
  return {
    cusum: 0,
    open: false,
    start_seq: 0,
    start_t: t,
    end_seq: 0,
    end_t: t,
    observations: 0,
    peak: 0,
    shares: new Array(dim).fill(0),
  };
}

/**
 * Advances `state` (in place) by one observation; returns the alarm after it and the episode it
 * closed, if any (the closing observation itself is not part of the episode).
 */
export function stepAlarm<T>(
  state: AlarmState<T>,
  key: string,
  obs: AlarmInput<T>,
  threshold: number,
  reference: number = DEFAULT_ALARM_REFERENCE,
): { alarm: boolean; closed: AlarmEpisode<T> | null } {
  let e = obs.armed === false ? 0 : evidence(obs.pValue);
  let flatDim = -1;
  if (obs.values !== undefined) {
    if (state.flat === undefined) state.flat = newFlat(obs.values);
    else {
      const ef = stepFlat(state.flat, 0, 0, 1, obs.values.length, obs.values, FLAT_AT);
      if (obs.armed !== false && ef > e) {
        e = ef;
        flatDim = FLAT_AT[0];
      }
    }
  }
  return stepCusum(state, key, obs, e, flatDim, threshold, reference);
}

/**
 * The CUSUM's step on evidence `e` (`flatDim` ≥ 0: flatline evidence of that dimension), in place
 * on `state` (its repeat statistics are not read: the evidence `e` already holds them).
 */
export function stepCusum<T>(
  state: AlarmState<T>,
  key: string,
  obs: AlarmInput<T>,
  e: number,
  flatDim: number,
  threshold: number,
  reference: number,
): { alarm: boolean; closed: AlarmEpisode<T> | null } {
  let s = Math.max(0, state.cusum + e - reference);
  let closed: AlarmEpisode<T> | null = null;
  if (state.open) {
    s = Math.min(s, threshold);
    if (s <= 0) {
      closed = episodeOf(state, key);
      state.open = false;
    }
  } else if (s >= threshold) {
    s = threshold;
    state.open = true;
    state.start_seq = obs.seq;
    state.start_t = obs.t;
    state.observations = 0;
    state.peak = 0;
    state.shares.fill(0);
  }
  state.cusum = s;
  if (state.open) {
    state.end_seq = obs.seq;
    state.end_t = obs.t;
    state.observations++;
    if (e > state.peak) state.peak = e;
    // Flatline evidence belongs to the stuck dimension, whatever m² says.
    if (flatDim >= 0) state.shares[flatDim] += e;
    else _addShares(state.shares, obs.contrib, e);
  }
  return { alarm: state.open, closed };
}

/** The episode `state` holds (open or just closed). */
export function episodeOf<T>(state: AlarmState<T>, key: string): AlarmEpisode<T> {
  const total = state.shares.reduce((a, b) => a + b, 0);
  const top = state.shares
    .map((v, dim) => ({ dim, share: total > 0 ? v / total : 0 }))
    .filter((x) => x.share > 0)
    .sort((a, b) => b.share - a.share || a.dim - b.dim)
    .slice(0, TOP_DIMS);
  return {
    key,
    start_seq: state.start_seq,
    end_seq: state.end_seq,
    start_t: state.start_t,
    end_t: state.end_t,
    observations: state.observations,
    peak_log_p: state.peak,
    top_dims: top.map((x) => x.dim),
    top_shares: top.map((x) => x.share),
  };
}

/** shares += weight × (contrib / Σ contrib); a saturated or missing value takes the largest part. */
function _addShares(shares: number[], contrib: ArrayLike<number | null>, weight: number): void {
  if (!(weight > 0)) return;
  const d = shares.length;
  let sum = 0;
  let wild = 0;
  for (let j = 0; j < d; j++) {
    const c = contrib[j];
    if (c === null || !(c < Number.MAX_VALUE)) wild++;
    else if (c > 0) sum += c;
  }
  for (let j = 0; j < d; j++) {
    const c = contrib[j];
    const isWild = c === null || !(c < Number.MAX_VALUE);
    const part = wild > 0 ? (isWild ? 1 / wild : 0) : sum > 0 && c! > 0 ? c! / sum : 0;
    shares[j] += weight * part;
  }
}

/** The result of a step that leaves a closed alarm at S = 0 (shared: it is never changed). */
const _QUIET: { alarm: boolean; closed: null } = Object.freeze({ alarm: false, closed: null });

/**
 * Alarm states of many keys (a `Map` key → state), with the threshold and reference they share.
 * `sparse`: a key holds a state only while its CUSUM is above 0 or its alarm is open — a closed
 * state at S = 0 steps exactly like a new one, and most keys are quiet most of the time (issue 13:
 * 100,000 keys). {@link export} then has no state for a quiet key, and {@link openEpisodes} lists
 * keys in the order their current states began.
 */
export class AlarmBank<T = number | string | null> {
  readonly threshold: number;
  readonly reference: number;
  readonly #dim: number;
  readonly #states = new Map<string, AlarmState<T>>();
  /** Sparse banks: every key's repeat statistics, outside the (mostly absent) states. */
  readonly #flat: FlatSlab | null;

  constructor(
    dim: number,
    threshold = DEFAULT_ALARM_THRESHOLD,
    reference = DEFAULT_ALARM_REFERENCE,
    options: { readonly sparse?: boolean } = {},
  ) {
    if (!(threshold > 0) || !Number.isFinite(threshold)) {
      throw new RangeError(`expected a finite alarm threshold > 0, found ${threshold}`);
    }
    if (!(reference > 0) || !Number.isFinite(reference)) {
      throw new RangeError(`expected a finite alarm reference > 0, found ${reference}`);
    }
    this.#dim = dim;
    this.threshold = threshold;
    this.reference = reference;
    this.#flat = options.sparse === true ? new FlatSlab(dim) : null;
  }

  /**
   * Advances key's state by one observation (see {@link stepAlarm}). `slot`: a sparse bank's
   * caller may give its dense id of the key (the same for the same key every time) to index the
   * repeat statistics by, instead of the key; a bank is stepped either always with it or never.
   */
  step(
    key: string,
    obs: AlarmInput<T>,
    slot = -1,
  ): { alarm: boolean; closed: AlarmEpisode<T> | null } {
    // Most keys of a sparse bank hold no state: an empty map need not hash the key (with many
    // keys, a cache miss on its string per row).
    let s = this.#states.size === 0 ? undefined : this.#states.get(key);
    if (this.#flat === null) {
      if (s === undefined) this.#states.set(key, s = newAlarmState(this.#dim, obs.t));
      return stepAlarm(s, key, obs, this.threshold, this.reference);
    }
    // Sparse: every key's repeat statistics live in the slab (they learn from every row); the
    // CUSUM state only while S > 0 or the alarm is open.
    let e = obs.armed === false ? 0 : evidence(obs.pValue);
    let flatDim = -1;
    if (obs.values !== undefined) {
      const ef = slot >= 0
        ? this.#flat.stepAt(slot, obs.values, FLAT_AT)
        : this.#flat.step(key, obs.values, FLAT_AT);
      if (obs.armed !== false && ef > e) {
        e = ef;
        flatDim = FLAT_AT[0];
      }
    }
    if (s === undefined) {
      // A new state would stay closed at S = max(0, e − k) = 0: nothing to keep.
      if (!(e - this.reference > 0)) return _QUIET;
      this.#states.set(key, s = newAlarmState(this.#dim, obs.t));
    }
    const r = stepCusum(s, key, obs, e, flatDim, this.threshold, this.reference);
    if (!s.open && s.cusum === 0) this.#states.delete(key);
    return r;
  }

  /** Whether key's alarm is on now (without an observation). */
  isOpen(key: string): boolean {
    return this.#states.get(key)?.open ?? false;
  }

  /**
   * A copy of key's state (undefined for a key never seen, and in a sparse bank for a quiet key,
   * whose state is a new one with its repeat statistics).
   */
  export(key: string): AlarmState<T> | undefined {
    const s = this.#states.get(key);
    if (s === undefined) return undefined;
    const c = copyState(s);
    const f = this.#flat?.export(key);
    if (f !== undefined) c.flat = f;
    return c;
  }

  /** Restores key's state (a copy of `state`). */
  import(key: string, state: AlarmState<T>): void {
    const c = copyState(state);
    if (this.#flat !== null && c.flat !== undefined) {
      this.#flat.import(key, c.flat);
      delete c.flat;
    }
    this.#states.set(key, c);
  }

  /** Drops key's state (idle-key eviction: the key's checkpoint holds it). */
  forget(key: string): void {
    this.#states.delete(key);
  }

  /** Episodes still open, by key order of first appearance. */
  openEpisodes(): AlarmEpisode<T>[] {
    const out: AlarmEpisode<T>[] = [];
    for (const [key, s] of this.#states) if (s.open) out.push(episodeOf(s, key));
    return out;
  }
}

/** A deep copy of an alarm state. */
function copyState<T>(s: AlarmState<T>): AlarmState<T> {
  const f = s.flat;
  return {
    ...s,
    shares: [...s.shares],
    ...(f === undefined ? {} : {
      flat: {
        last: [...f.last],
        run: [...f.run],
        fromN: [...f.fromN],
        nToR: [...f.nToR],
        fromR: [...f.fromR],
        rToR: [...f.rToR],
      },
    }),
  };
}
