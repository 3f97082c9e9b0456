/**
 * Fast NDJSON text of score records (the shape of `schemas/score_record.ts`), built by string
 * concatenation: JSON.stringify of an object per row would dominate the replay's cost. Numbers print
 * as JSON does (shortest round-trip form); a non-finite number prints as null.
 *
 * @module
 */
import type { ScoreBatch } from "../engine/types.ts";

/** Per-row echoes of one batch, pre-serialised as JSON text ("" = absent). */
export interface RowEchoes {
  /** Each row's key id (see {@link KeyTexts}). */
  readonly keyId: Uint32Array;
  /** The batch's keys, each once. */
  readonly keys: readonly string[];
  /**
   * Each row's key as its index in {@link keys}: a batch's own short list, where a key's name by
   * id would be one more cache miss per row with many keys (issue 13).
   */
  readonly keyPos: Uint32Array;
  /** JSON of each row's time, or "". */
  readonly tJson: readonly string[];
  /** Each row's label, or -1. */
  readonly label: Int8Array;
  /** The rows' readings (n·d), for the alarms' flatline evidence; absent: none. */
  readonly values?: Float64Array;
}

/**
 * The keys' JSON texts by id. Records take a plain key's text (`"` key `"`) from the key itself: a
 * JSON string per key and batch would be garbage per row with many keys (issue 13).
 */
export interface KeyTexts {
  /** The key's JSON text when it needs escapes; null for a plain key, whose text is `"key"`. */
  json(id: number): string | null;
}

function num(x: number): string {
  return Number.isFinite(x) ? String(x) : "null";
}

/** JSON text of a time value. */
export function timeJson(t: number | string | undefined): string {
  if (t === undefined) return "";
  return typeof t === "number" ? num(t) : JSON.stringify(t);
}

/**
 * Appends one line per row of `scores` to `out`; returns the number of anomalies among them.
 * `alarm`: each row's alarm state (1 on); absent, every record says `"alarm":false`.
 */
export function formatScores(
  scores: ScoreBatch,
  echoes: RowEchoes,
  keys: KeyTexts,
  out: { write(s: string): void },
  alarm?: Uint8Array,
): number {
  const d = scores.dim;
  const { keys: batchKeys, keyPos } = echoes;
  let anomalies = 0;
  let text = "";
  for (let i = 0; i < scores.n; i++) {
    const t = echoes.tJson[i];
    const label = echoes.label[i];
    const anomaly = scores.anomaly[i] === 1;
    if (anomaly) anomalies++;
    let contrib = num(scores.contrib[i * d]);
    for (let j = 1; j < d; j++) contrib += "," + num(scores.contrib[i * d + j]);
    const id = echoes.keyId[i];
    const esc = keys.json(id);
    // A plain key's quotes ride on the literals around it: no more concatenations than with its
    // JSON text.
    text += '{"seq":' + scores.seq[i] +
      (esc === null ? ',"key":"' + batchKeys[keyPos[i]] : ',"key":' + esc) +
      (t === ""
        ? (esc === null ? '","log_prob":' : ',"log_prob":')
        : (esc === null ? '","t":' : ',"t":') + t + ',"log_prob":') +
      num(scores.logProb[i]) +
      ',"mahalanobis2":' + num(scores.mahalanobis2[i]) +
      ',"p_value":' + num(scores.pValue[i]) +
      (anomaly ? ',"anomaly":true' : ',"anomaly":false') +
      (alarm !== undefined && alarm[i] === 1 ? ',"alarm":true' : ',"alarm":false') +
      (label < 0 ? "" : ',"label":' + label) +
      ',"contrib":[' + contrib + "]}\n";
  }
  out.write(text);
  return anomalies;
}
