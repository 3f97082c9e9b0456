/**
 * Episode metrics of a flag series (`anomaly` or `alarm`) against 0/1 labels, per key in order,
 * pooled over keys. Pure; used by replay's summary and by `deno task eval`.
 *
 * - A labelled segment is a maximal run of label-1 observations of one key. It is detected when a
 *   flag is on at one of its observations; its detection delay is the number of observations from
 *   its first to the first flagged one (0: flagged at once).
 * - A flagged episode is a maximal run of flagged observations of one key; it is false when none
 *   of its observations is labelled 1.
 * - Unlabelled observations are skipped (they neither split nor extend runs).
 *
 * @module
 */
import type { EpisodeMetricsOut } from "../../schemas/replay.ts";

/** Streaming episode metrics. */
export class EpisodeCounter {
  /** Dense ids of the keys given by name ({@link add}); {@link addAt}'s callers bring their own. */
  readonly #ids = new Map<string, number>();
  /**
   * Per key id: observations into its current labelled segment, −1 outside one; and its state
   * bits (_DETECTED: the segment was flagged; _RUN: inside a flagged run; _HIT: the run touched a
   * label 1). Typed arrays by id, not an object per key and segment (issue 13: many keys).
   */
  #segAt = new Int32Array(1024).fill(-1);
  #bits = new Uint8Array(1024);
  /** Ids below this may hold a state (the rest are new). */
  #seen = 0;
  #observations = 0;
  #segments = 0;
  #detected = 0;
  #flagged = 0;
  #false = 0;
  readonly #delays: number[] = [];

  /** One labelled observation of `key`, in order. */
  add(key: string, label: 0 | 1, flag: boolean): void {
    let id = this.#ids.get(key);
    if (id === undefined) this.#ids.set(key, id = this.#ids.size);
    this.addAt(id, label, flag);
  }

  /**
   * {@link add} for the key whose dense id (0, 1, 2, …: the same for the same key every time) is
   * `id`; a counter is used either by key or by id.
   */
  addAt(id: number, label: 0 | 1, flag: boolean): void {
    if (id >= this.#segAt.length) this.#grow(id);
    if (id >= this.#seen) this.#seen = id + 1;
    let at = this.#segAt[id], bits = this.#bits[id];
    this.#observations++;
    if (label === 1) {
      if (at < 0) {
        at = 0;
        bits &= ~_DETECTED;
        this.#segments++;
      }
      if (flag && (bits & _DETECTED) === 0) {
        bits |= _DETECTED;
        this.#detected++;
        this.#delays.push(at);
      }
      at++;
    } else at = -1;
    if (flag) {
      if ((bits & _RUN) === 0) {
        bits = (bits | _RUN) & ~_HIT;
        this.#flagged++;
      }
      if (label === 1) bits |= _HIT;
    } else if ((bits & _RUN) !== 0) {
      if ((bits & _HIT) === 0) this.#false++;
      bits &= ~(_RUN | _HIT);
    }
    this.#segAt[id] = at;
    this.#bits[id] = bits;
  }

  #grow(id: number): void {
    const n = Math.max(id + 1, 2 * this.#segAt.length);
    const segAt = new Int32Array(n).fill(-1);
    segAt.set(this.#segAt);
    this.#segAt = segAt;
    const bits = new Uint8Array(n);
    bits.set(this.#bits);
    this.#bits = bits;
  }

  /** The metrics so far (runs still open count as ended). */
  metrics(): EpisodeMetricsOut {
    let falseOpen = 0;
    for (let id = 0; id < this.#seen; id++) {
      if ((this.#bits[id] & (_RUN | _HIT)) === _RUN) falseOpen++;
    }
    const falseEpisodes = this.#false + falseOpen;
    const d = [...this.#delays].sort((a, b) => a - b);
    const median = d.length === 0
      ? null
      : d.length % 2 === 1
      ? d[(d.length - 1) / 2]
      : (d[d.length / 2 - 1] + d[d.length / 2]) / 2;
    return {
      observations: this.#observations,
      segments: this.#segments,
      detected: this.#detected,
      missed: this.#segments - this.#detected,
      mean_delay: d.length === 0 ? null : d.reduce((a, b) => a + b, 0) / d.length,
      median_delay: median,
      flagged_episodes: this.#flagged,
      false_episodes: falseEpisodes,
      false_per_10k: this.#observations === 0 ? null : (1e4 * falseEpisodes) / this.#observations,
    };
  }
}

const _DETECTED = 1, _RUN = 2, _HIT = 4;
