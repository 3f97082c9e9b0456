/**
 * Replay's alarm bookkeeping: each key's alarm stepped over its scored rows, the alarm episodes
 * (counted, and written to `--alarms`), and the labelled rows' confusion and episode counts for
 * both the anomaly flag and the alarm.
 *
 * @module
 */
import type { ScoreBatch } from "../engine/types.ts";
import type { BufferedTextWriter } from "../io/buffered_writer.ts";
import { AlarmBank, type AlarmEpisode, alarmReference } from "../model/alarm.ts";
import type { ReplayEchoes } from "./batch.ts";
import { EpisodeCounter } from "./episode_metrics.ts";
import { Confusion } from "./metrics.ts";

/** The alarms of a replay and what is counted of them and of the anomaly flag. */
export class AlarmTally {
  /** Labelled rows: anomaly flag against label. */
  readonly confusion = new Confusion();
  /** Labelled rows: alarm against label. */
  readonly alarmConfusion = new Confusion();
  readonly anomalyEpisodes = new EpisodeCounter();
  readonly alarmEpisodes = new EpisodeCounter();
  /** Alarm episodes closed so far (the open ones included after {@link closeOpen}). */
  episodes = 0;
  // Keyed by the key itself: its string was hashed already when the row was read, where a
  // batch's JSON text of it is a fresh string to hash once per key and batch (many keys). Time
  // values are kept as their JSON text.
  readonly #bank: AlarmBank<string>;
  readonly #writer: BufferedTextWriter | null;
  readonly #names: readonly string[];
  readonly #armedFrom: number;

  /**
   * `names`: the keys by id (the key table's, growing as keys are read); `armedFrom`: the first
   * sequence number whose evidence counts towards the alarm; `writer`: where episodes go
   * (`--alarms`), or null.
   */
  constructor(
    names: readonly string[],
    dim: number,
    threshold: number,
    alpha: number,
    armedFrom: number,
    writer: BufferedTextWriter | null,
  ) {
    // Sparse: quiet keys hold no state (most of them, with many keys).
    this.#bank = new AlarmBank<string>(dim, threshold, alarmReference(alpha), { sparse: true });
    this.#names = names;
    this.#armedFrom = armedFrom;
    this.#writer = writer;
  }

  /** Steps the alarms over one batch's scores; the alarm flag of each row. */
  step(scores: ScoreBatch, echoes: ReplayEchoes): Uint8Array {
    const { keyId, keyJson, tJson, label: labels } = echoes;
    const names = this.#names;
    const d = scores.dim;
    const alarm = new Uint8Array(scores.n);
    const vals = echoes.values;
    // One row's readings, copied into a reused buffer (the detector keeps no reference to it).
    const row = new Float64Array(d);
    for (let i = 0; i < scores.n; i++) {
      const seq = scores.seq[i];
      const id = keyId[i];
      const r = this.#bank.step(names[id], {
        seq,
        t: tJson[i],
        pValue: scores.pValue[i],
        contrib: scores.contrib.subarray(i * d, i * d + d),
        armed: seq >= this.#armedFrom,
        values: vals === undefined ? undefined : readings(vals, i, d, row),
      }, id);
      alarm[i] = r.alarm ? 1 : 0;
      if (r.closed !== null) this.#writeEpisode(r.closed, false);
      const l = labels[i];
      if (l >= 0) {
        this.confusion.add(l as 0 | 1, scores.anomaly[i] === 1);
        this.alarmConfusion.add(l as 0 | 1, r.alarm);
        this.anomalyEpisodes.add(keyJson[i], l as 0 | 1, scores.anomaly[i] === 1);
        this.alarmEpisodes.add(keyJson[i], l as 0 | 1, r.alarm);
      }
    }
    return alarm;
  }

  /**
   * Writes the episodes still open at the end of the input (marked `open`), in the order of
   * `keys`: every key in order of first appearance (the sparse bank's own order is that of the
   * episodes' CUSUM runs).
   */
  closeOpen(keys: Iterable<string>): void {
    const open = this.#bank.openEpisodes();
    if (open.length > 1) {
      const byKey = new Map(open.map((e) => [e.key, e]));
      open.length = 0;
      for (const k of keys) {
        const e = byKey.get(k);
        if (e !== undefined) open.push(e);
      }
    }
    for (const e of open) this.#writeEpisode(e, true);
  }

  #writeEpisode(e: AlarmEpisode<string>, open: boolean): void {
    this.episodes++;
    if (this.#writer === null) return;
    const ep = {
      ...e,
      key: e.key,
      start_t: e.start_t === "" ? null : JSON.parse(e.start_t),
      end_t: e.end_t === "" ? null : JSON.parse(e.end_t),
      ...(open ? { open: true } : {}),
    };
    this.#writer.write(JSON.stringify(ep) + "\n");
  }
}

/** Row i of the n·d `values` into `out`. */
function readings(values: Float64Array, i: number, d: number, out: Float64Array): Float64Array {
  for (let j = 0; j < d; j++) out[j] = values[i * d + j];
  return out;
}
