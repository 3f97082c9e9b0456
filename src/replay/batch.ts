/**
 * The batch accumulator of a replay: rows collected for one engine call (values, keys, what is
 * learned, the conditional head's features and times), with what their score records echo.
 *
 * @module
 */
import type { ObservationBatch } from "../engine/types.ts";
import { timeMs } from "../model/time_features.ts";
import { type RowEchoes, timeJson } from "../wire/score_format.ts";
import type { KeyTable } from "./key_table.ts";

/** A replay batch's echoes; each row's key id is its id in replay's key table (`key_table.ts`). */
export type ReplayEchoes = RowEchoes;

/** Rows collected for one engine call, with what their records echo. */
export class BatchBuilder {
  n = 0;
  #cap: number;
  #dim: number;
  #values!: Float64Array;
  #keyIndex!: Uint32Array;
  #learn!: Uint8Array;
  #keys: string[] = [];
  /** Per batch key: its id in the key table. */
  #keyIds!: Uint32Array;
  /**
   * Where each key's position in this batch's keys is kept, with this batch's stamp (by id beside
   * the key's other numbers instead of a map per batch: one string lookup and, with many keys, one
   * cache miss per row are enough).
   */
  readonly #table: KeyTable;
  #stamp = 0;
  #rowId!: Uint32Array;
  #tJson: string[] = [];
  #label!: Int8Array;
  /** Conditional head: features per row (0: none) and whether rows carry their time. */
  readonly #F: number;
  readonly #timed: boolean;
  #features!: Float64Array;
  #timeMs!: Float64Array;

  constructor(
    cap: number,
    dim: number,
    context: { features: number; timed: boolean },
    table: KeyTable,
  ) {
    this.#table = table;
    this.#cap = cap;
    this.#dim = dim;
    this.#F = context.features;
    this.#timed = context.timed;
    this.#reset();
  }

  get full(): boolean {
    return this.n >= this.#cap;
  }

  /**
   * `id`: the key's id in the key table (records take the key's text from there, by the rows'
   * ids).
   */
  add(
    id: number,
    key: string,
    values: ArrayLike<number>,
    t: number | string | undefined,
    label: 0 | 1 | undefined,
    learn: boolean,
    features?: ArrayLike<number>,
  ): void {
    const i = this.n++;
    const F = this.#F;
    if (F > 0 && features !== undefined) {
      for (let j = 0; j < F; j++) this.#features[i * F + j] = features[j];
    }
    if (this.#timed) this.#timeMs[i] = timeMs(t);
    const k = this.#table.batchPos(id, this.#stamp, this.#keys.length);
    if (k === this.#keys.length) {
      this.#keys.push(key);
      this.#keyIds[k] = id;
    }
    this.#keyIndex[i] = k;
    this.#rowId[i] = id;
    const d = this.#dim;
    for (let j = 0; j < d; j++) this.#values[i * d + j] = values[j];
    this.#learn[i] = learn ? 1 : 0;
    this.#tJson.push(timeJson(t));
    this.#label[i] = label ?? -1;
  }

  /** The batch so far (fresh arrays each time: the engine may take ownership of them). */
  take(): { batch: ObservationBatch; echoes: ReplayEchoes } {
    const n = this.n;
    const batch: ObservationBatch = {
      dim: this.#dim,
      n,
      values: n === this.#cap ? this.#values : this.#values.slice(0, n * this.#dim),
      keyIndex: n === this.#cap ? this.#keyIndex : this.#keyIndex.slice(0, n),
      keys: this.#keys,
      keyIds: this.#keyIds.slice(0, this.#keys.length),
      learn: n === this.#cap ? this.#learn : this.#learn.slice(0, n),
      ...(this.#F > 0
        ? { features: this.#features.slice(0, n * this.#F), featureDim: this.#F }
        : {}),
      ...(this.#timed ? { timeMs: this.#timeMs.slice(0, n) } : {}),
    };
    // The readings for the alarms' flatline evidence: a copy, as the engine may take the batch's.
    const echoes: ReplayEchoes = {
      keyId: n === this.#cap ? this.#rowId : this.#rowId.slice(0, n),
      keys: this.#keys,
      // A copy: the engine may take the batch's.
      keyPos: this.#keyIndex.slice(0, n),
      tJson: this.#tJson,
      label: this.#label,
      values: batch.values.slice(),
    };
    this.#reset();
    return { batch, echoes };
  }

  #reset(): void {
    this.n = 0;
    this.#values = new Float64Array(this.#cap * this.#dim);
    this.#keyIndex = new Uint32Array(this.#cap);
    this.#learn = new Uint8Array(this.#cap);
    this.#keys = [];
    this.#keyIds = new Uint32Array(this.#cap);
    // Stamps start at 1: a new key's 0 in the key table is no batch's.
    this.#stamp++;
    this.#rowId = new Uint32Array(this.#cap);
    this.#tJson = [];
    this.#label = new Int8Array(this.#cap);
    if (this.#F > 0) this.#features = new Float64Array(this.#cap * this.#F);
    if (this.#timed) this.#timeMs = new Float64Array(this.#cap);
  }
}
