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

interface KeyRun {
  /** Inside a labelled segment: observations into it and whether it was flagged; else null. */
  seg: { at: number; detected: boolean } | null;
  /** Inside a flagged run: whether it touched a labelled observation, else null. */
  run: { hit: boolean } | null;
}

/** Streaming episode metrics. */
export class EpisodeCounter {
  readonly #keys = new Map<string, KeyRun>();
  #observations = 0;
  #segments = 0;
  #detected = 0;
  #flagged = 0;
  #false = 0;
  readonly #delays: number[] = [];

  /** One labelled observation of `key`, in order. */
  add(key: string, label: 0 | 1, flag: boolean): void {
    let k = this.#keys.get(key);
    if (k === undefined) this.#keys.set(key, k = { seg: null, run: null });
    this.#observations++;
    if (label === 1) {
      if (k.seg === null) {
        k.seg = { at: 0, detected: false };
        this.#segments++;
      }
      if (flag && !k.seg.detected) {
        k.seg.detected = true;
        this.#detected++;
        this.#delays.push(k.seg.at);
      }
      k.seg.at++;
    } else k.seg = null;
    if (flag) {
      if (k.run === null) {
        k.run = { hit: false };
        this.#flagged++;
      }
      if (label === 1) k.run.hit = true;
    } else if (k.run !== null) {
      if (!k.run.hit) this.#false++;
      k.run = null;
    }
  }

  /** The metrics so far (runs still open count as ended). */
  metrics(): EpisodeMetricsOut {
    let falseOpen = 0;
    for (const k of this.#keys.values()) if (k.run !== null && !k.run.hit) falseOpen++;
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
