/**
 * From decoded input messages to engine batches: the loop's per-message {@link Item}, the rows of
 * one good message ({@link Group}), and {@link buildBatch}, which lays groups out as one
 * {@link ObservationBatch} with a {@link RowRef} per row (where each score goes back to).
 *
 * @module
 */
import type { ObservationBatch, ScoreBatch } from "../engine/types.ts";
import type { Decoded, DecodedRow } from "../wire/decode.ts";
import { timeMs } from "../model/time_features.ts";
import type { InputMessage } from "./ports.ts";

/** One input message and what decoding made of it. */
export interface Item {
  readonly msg: InputMessage;
  readonly decoded: Decoded;
}

/** Where one batch row came from. */
export interface RowRef {
  readonly key: string;
  readonly streamSeq: number;
  readonly index?: number;
  readonly t?: number | string;
  readonly label?: 0 | 1;
  readonly isNew: boolean;
  /** The row's readings (the alarms' flatline evidence). */
  readonly values?: ArrayLike<number>;
}

/** The rows of one good message, as they go to the engine. */
export interface Group {
  readonly item: Item;
  readonly key: string;
  readonly isNew: boolean;
  readonly rows: readonly DecodedRow[];
  readonly multi: boolean;
}

/** Scores of consecutive groups processed as one engine batch. */
export interface Part {
  readonly rows: RowRef[];
  readonly scores: ScoreBatch;
}

/** Conditional head: the context rows carry into the batch (features count, times). */
export interface BatchContext {
  readonly features: number;
  readonly timed: boolean;
}

/**
 * One engine batch of the groups' rows, in order; a new message's rows are `counted`. With a
 * context, rows' features and times go into the batch (decoding checked they are there).
 */
export function buildBatch(
  groups: readonly Group[],
  dim: number,
  context?: BatchContext,
): { batch: ObservationBatch; rows: RowRef[] } {
  let n = 0;
  for (const g of groups) n += g.rows.length;
  const values = new Float64Array(n * dim);
  const keyIndex = new Uint32Array(n);
  const counted = new Uint8Array(n);
  const keys: string[] = [];
  const keyIdx = new Map<string, number>();
  const rows: RowRef[] = [];
  let r = 0;
  for (const g of groups) {
    let ki = keyIdx.get(g.key);
    if (ki === undefined) {
      ki = keys.length;
      keys.push(g.key);
      keyIdx.set(g.key, ki);
    }
    g.rows.forEach((row, index) => {
      for (let j = 0; j < dim; j++) values[r * dim + j] = row.values[j];
      keyIndex[r] = ki;
      counted[r] = g.isNew ? 1 : 0;
      rows.push({
        key: g.key,
        streamSeq: g.item.msg.seq,
        index: g.multi ? index : undefined,
        t: row.t,
        label: row.label,
        isNew: g.isNew,
        values: row.values,
      });
      r++;
    });
  }
  const batch: ObservationBatch = { dim, n, values, keyIndex, keys, counted };
  if (context === undefined || (context.features === 0 && !context.timed)) return { batch, rows };
  const F = context.features;
  const features = new Float64Array(n * F);
  const times = new Float64Array(n);
  let i = 0;
  for (const g of groups) {
    for (const row of g.rows) {
      const f = row.features;
      if (F > 0 && f !== undefined) { for (let j = 0; j < F; j++) features[i * F + j] = f[j]; }
      if (context.timed) times[i] = timeMs(row.t);
      i++;
    }
  }
  return {
    batch: {
      ...batch,
      ...(F > 0 ? { features, featureDim: F } : {}),
      ...(context.timed ? { timeMs: times } : {}),
    },
    rows,
  };
}
