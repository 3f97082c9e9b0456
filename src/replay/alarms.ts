/**
 * Replay's alarm bookkeeping: each key's alarm stepped over its scored rows, the alarm episodes
 * (counted, and written to `--alarms`), and the labelled rows' confusion and episode counts for
 * both the anomaly flag and the alarm.
 *
 * @module
 */
import type { ScoreBatch } from "../engine/types.ts";
import type { BufferedTextWriter } from "../io/buffered_writer.ts";
import { AlarmBank, type AlarmEpisode, type AlarmInput, alarmReference } from "../model/alarm.ts";
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
  // Keyed by the key itself (the row's string, from the batch's list of keys): the sparse bank
  // looks it up only while some key holds a state, where a batch's JSON text of it would be a
  // fresh string per key and batch (many keys). Time values are kept as their JSON text.
  readonly #bank: AlarmBank<string>;
  readonly #writer: BufferedTextWriter | null;
  readonly #armedFrom: number;
  /** One row as the bank sees it, rewritten for every row: no object per row (issue 13). */
  readonly #obs: RowObservation;
  #alarm = new Uint8Array(0);

  /**
   * `armedFrom`: the first sequence number whose evidence counts towards the alarm; `writer`:
   * where episodes go (`--alarms`), or null.
   */
  constructor(
    dim: number,
    threshold: number,
    alpha: number,
    armedFrom: number,
    writer: BufferedTextWriter | null,
  ) {
    // Sparse: quiet keys hold no state (most of them, with many keys).
    this.#bank = new AlarmBank<string>(dim, threshold, alarmReference(alpha), { sparse: true });
    this.#armedFrom = armedFrom;
    this.#writer = writer;
    this.#obs = new RowObservation(dim);
  }

  /**
   * Steps the alarms over one batch's scores; the alarm flag of each row, in a buffer reused by
   * the next call (read it before then).
   */
  step(scores: ScoreBatch, echoes: ReplayEchoes): Uint8Array {
    const { keyId, keys, keyPos, tJson, label: labels } = echoes;
    const d = scores.dim;
    if (this.#alarm.length < scores.n) this.#alarm = new Uint8Array(scores.n);
    const alarm = this.#alarm;
    const vals = echoes.values;
    const obs = this.#obs;
    for (let i = 0; i < scores.n; i++) {
      const seq = scores.seq[i];
      const id = keyId[i];
      const key = keys[keyPos[i]];
      obs.seq = seq;
      obs.t = tJson[i];
      obs.pValue = scores.pValue[i];
      for (let j = 0; j < d; j++) obs.contrib[j] = scores.contrib[i * d + j];
      obs.armed = seq >= this.#armedFrom;
      obs.values = vals === undefined ? undefined : readings(vals, i, d, obs.row);
      const r = this.#bank.step(key, obs, id);
      alarm[i] = r.alarm ? 1 : 0;
      if (r.closed !== null) this.#writeEpisode(r.closed, false);
      const l = labels[i];
      if (l >= 0) {
        this.confusion.add(l as 0 | 1, scores.anomaly[i] === 1);
        this.alarmConfusion.add(l as 0 | 1, r.alarm);
        // By the key's id: no string lookup, no object per key (issue 13).
        this.anomalyEpisodes.addAt(id, l as 0 | 1, scores.anomaly[i] === 1);
        this.alarmEpisodes.addAt(id, l as 0 | 1, r.alarm);
      }
    }
    return alarm;
  }

  /**
   * Writes the episodes still open at the end of the input (marked `open`), in the order of their
   * keys' `rank` (the key table's ids: order of first appearance; the sparse bank's own order is
   * that of the episodes' CUSUM runs).
   */
  closeOpen(rank: (key: string) => number): void {
    const open = this.#bank.openEpisodes().map((e) => ({ e, rank: rank(e.key) }));
    open.sort((a, b) => a.rank - b.rank);
    for (const { e } of open) this.#writeEpisode(e, true);
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

/**
 * The observation {@link AlarmTally.step} hands the bank, reused from row to row. Safe because the
 * bank keeps none of it: it reads `contrib` and `values` during the step (the repeat statistics
 * copy the readings) and keeps only `seq` and the string `t`.
 */
class RowObservation implements AlarmInput<string> {
  seq = 0;
  t = "";
  pValue = 0;
  armed = true;
  /** The row's contrib, copied (a subarray per row would be an object per row). */
  readonly contrib: Float64Array;
  values: Float64Array | undefined = undefined;
  /** Where the row's readings are copied. */
  readonly row: Float64Array;

  constructor(d: number) {
    this.contrib = new Float64Array(d);
    this.row = new Float64Array(d);
  }
}

/** Row i of the n·d `values` into `out`. */
function readings(values: Float64Array, i: number, d: number, out: Float64Array): Float64Array {
  for (let j = 0; j < d; j++) out[j] = values[i * d + j];
  return out;
}
