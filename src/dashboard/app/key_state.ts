/**
 * The per-key state of the dashboard: the message shapes the page reads, the score ring, the
 * bounded lists and {@link KeyState} (free of DOM and NATS).
 *
 * @module
 */

/** The subset of a live score record the page reads. */
export interface ScoreLike {
  readonly seq: number;
  readonly key: string;
  readonly t?: number | string;
  readonly p_value: number | null;
  readonly mahalanobis2: number | null;
  readonly anomaly: boolean;
  readonly alarm?: boolean;
  readonly stream_seq?: number;
}

/** The subset of a parameters message the page reads. */
export interface ParamsLike {
  readonly key: string;
  readonly dim: number;
  readonly loc: number[];
  readonly scale_tril: number[][];
  readonly covariance: number[][];
  readonly observations: number;
  readonly steps: number;
  readonly updated_at: string;
}

/** An alarm episode (`<prefix>.alarms.<key>`); `end_*` absent or null while it is open. */
export interface AlarmEpisode {
  readonly key: string;
  readonly start_seq: number;
  readonly end_seq?: number | null;
  readonly start_t?: number | string | null;
  readonly end_t?: number | string | null;
  readonly observations?: number;
  readonly peak_log_p?: number;
  readonly top_dims?: number[];
}

/** −log₁₀ of the smallest p-value plotted (p = 0 is drawn here). */
export const MAX_NLP = 300;

/** −log₁₀ p, clamped to [0, {@link MAX_NLP}]; NaN for a missing p-value. */
export function negLog10(p: number | null | undefined): number {
  if (p === null || p === undefined || !Number.isFinite(p)) return NaN;
  if (p <= 0) return MAX_NLP;
  return Math.min(MAX_NLP, Math.max(0, -Math.log10(p)));
}

/** A fixed-capacity ring of score points: seq, −log₁₀ p, flags (1 = anomaly, 2 = alarm). */
export class ScoreRing {
  seq: Float64Array;
  nlp: Float64Array;
  flags: Uint8Array;
  #start = 0;
  #len = 0;

  constructor(capacity: number) {
    this.seq = new Float64Array(capacity);
    this.nlp = new Float64Array(capacity);
    this.flags = new Uint8Array(capacity);
  }
  get capacity(): number {
    return this.seq.length;
  }
  get length(): number {
    return this.#len;
  }
  push(seq: number, nlp: number, flags: number): void {
    const cap = this.capacity;
    const i = (this.#start + this.#len) % cap;
    this.seq[i] = seq;
    this.nlp[i] = nlp;
    this.flags[i] = flags;
    if (this.#len < cap) this.#len++;
    else this.#start = (this.#start + 1) % cap;
  }
  /** A ring with a larger capacity holding the same points. */
  grow(capacity: number): ScoreRing {
    const out = new ScoreRing(Math.max(capacity, this.capacity));
    this.forEach((s, n, f) => out.push(s, n, f));
    return out;
  }
  forEach(fn: (seq: number, nlp: number, flags: number) => void): void {
    const cap = this.capacity;
    for (let k = 0; k < this.#len; k++) {
      const i = (this.#start + k) % cap;
      fn(this.seq[i], this.nlp[i], this.flags[i]);
    }
  }
}

/** A bounded list (oldest dropped first). */
export class Bounded<T> {
  items: T[] = [];
  constructor(readonly capacity: number) {}
  push(v: T): void {
    this.items.push(v);
    if (this.items.length > this.capacity) {
      this.items.splice(0, this.items.length - this.capacity);
    }
  }
}

/** One parameter snapshot kept for the loc / σ history. */
export interface ParamsPoint {
  /** Seconds since the epoch (from `updated_at`). */
  readonly t: number;
  readonly loc: number[];
  readonly sd: number[];
}

/** Everything the page knows about one key. */
export interface KeyState {
  readonly key: string;
  /** −log₁₀ p of the last score (NaN before the first). */
  lastNlp: number;
  lastSeq: number;
  /** Anomalies seen since the page loaded (including the history it read). */
  anomalies: number;
  /** Scores seen. */
  scores: number;
  /** Arrival times (ms) of recent anomalies and alarm openings, for the last-minute counts. */
  anomalyTimes: number[];
  alarmTimes: number[];
  openAlarm: AlarmEpisode | undefined;
  /** Observations learned from, per the latest parameters (else the last score's seq). */
  observations: number;
  /** Last update (ms since the epoch, arrival time). */
  updatedAt: number;
  params: ParamsLike | undefined;
  paramsHistory: Bounded<ParamsPoint>;
  ring: ScoreRing;
}
