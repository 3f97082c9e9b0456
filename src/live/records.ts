/**
 * Score records from engine output: {@link scoreOutputs} turns a batch's scores into the score
 * messages to publish (a record per row, or per multi-row message with `scoreMessages: "message"`)
 * and the anomalies; {@link deadLetters} lists the batch's messages that are not scored.
 *
 * @module
 */
import type { LiveScoreRecord } from "../../schemas/messages.ts";
import type { ScoreMessages } from "../config/live_config.ts";
import type { ScoreBatch } from "../engine/types.ts";
import type { Item, Part } from "./batch_builder.ts";
import type { AlarmOut, DeadLetterOut, RecordOut, ScoreOut } from "./ports.ts";
import type { KeyAlarms } from "./loop_keys.ts";

/**
 * The keys' alarms (`src/model/alarm.ts`) as records are built: first-time observations advance
 * their key's state (a redelivered one only reads it: its record was published before, with the
 * same id), and closed episodes are appended to `out`.
 */
export interface AlarmContext {
  readonly bank: Pick<KeyAlarms, "step" | "isOpen">;
  /** Observations with `seq` below this (warm-up) add no evidence. */
  readonly armedFrom: number;
  readonly out: AlarmOut[];
}

/** The score messages of one batch. */
export interface ScoreOutputs {
  readonly outs: ScoreOut[];
  /** Records of first-time observations flagged as anomalies. */
  readonly anomalies: RecordOut[];
  /** Rows scored. */
  readonly scored: number;
  /** Rows scored that are first-time observations. */
  readonly newRows: number;
}

/**
 * The score messages of the parts' rows, with `Nats-Msg-Id`s under `stream`. Each part's scores
 * are handed to `release` once every number is in a record (the engine reuses the buffers).
 */
export function scoreOutputs(
  parts: readonly Part[],
  stream: string,
  scoreMessages: ScoreMessages | undefined,
  release: (scores: ScoreBatch) => void,
  alarms?: AlarmContext,
): ScoreOutputs {
  const outs: ScoreOut[] = [];
  const anomalies: RecordOut[] = [];
  // scoreMessages "message": the records of each multi-row message, gathered by its sequence
  // (batches take whole messages). Rows come in message order, so index 0 starts a message: a
  // second copy of one in the batch (a redelivery) gets a message of its own, with the same id,
  // which the server drops, as it drops the copy's records in row mode.
  const grouped = scoreMessages === "message" ? new Map<number, LiveScoreRecord[]>() : undefined;
  let scored = 0;
  let newRows = 0;
  for (const { rows, scores } of parts) {
    const d = scores.dim;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      const contrib: (number | null)[] = new Array(d);
      for (let j = 0; j < d; j++) contrib[j] = finiteOrNull(scores.contrib[i * d + j]);
      const seq = scores.seq[i];
      const pValue = finiteOrNull(scores.pValue[i]);
      let alarm = false;
      if (alarms !== undefined) {
        if (row.isNew) {
          const r = alarms.bank.step(row.key, {
            seq,
            t: row.t ?? null,
            pValue,
            contrib,
            armed: seq >= alarms.armedFrom,
            values: row.values,
          });
          alarm = r.alarm;
          if (r.closed !== null) {
            const e = r.closed;
            alarms.out.push({
              key: row.key,
              msgId: `${stream}:alarm:${row.key}:${e.start_seq}-${e.end_seq}`,
              episode: e,
            });
          }
        } else alarm = alarms.bank.isOpen(row.key);
      }
      const record: LiveScoreRecord = {
        seq,
        key: row.key,
        ...(row.t !== undefined ? { t: row.t } : {}),
        log_prob: finiteOrNull(scores.logProb[i]),
        mahalanobis2: finiteOrNull(scores.mahalanobis2[i]),
        p_value: pValue,
        anomaly: scores.anomaly[i] === 1,
        alarm,
        ...(row.label !== undefined ? { label: row.label } : {}),
        contrib,
        stream_seq: row.streamSeq,
        ...(row.index !== undefined ? { index: row.index } : {}),
      };
      let group: LiveScoreRecord[] | undefined;
      if (grouped !== undefined && row.index !== undefined) {
        group = grouped.get(row.streamSeq);
        if (group === undefined || row.index === 0) {
          grouped.set(row.streamSeq, group = []);
          outs.push({ key: row.key, msgId: `${stream}:${row.streamSeq}`, records: group });
        }
        group.push(record);
      }
      // A message of its own unless grouped; anomalies go out record by record either way.
      const anomaly = record.anomaly && row.isNew;
      if (group === undefined || anomaly) {
        const msgId = row.index === undefined
          ? `${stream}:${row.streamSeq}`
          : `${stream}:${row.streamSeq}:${row.index}`;
        const out = { key: row.key, msgId, record };
        if (group === undefined) outs.push(out);
        if (anomaly) anomalies.push(out);
      }
      scored++;
      if (row.isNew) newRows++;
    }
    // Every number is in a record now: the buffers go back to the engine for reuse.
    release(scores);
  }
  return { outs, anomalies, scored, newRows };
}

/**
 * Dead letters of the batch's messages, in order: those that did not decode, and those the engine
 * refused (`refused`: message → the engine's reason).
 */
export function deadLetters(
  items: readonly Item[],
  refused: ReadonlyMap<Item, string>,
  stream: string,
): DeadLetterOut[] {
  const dead: DeadLetterOut[] = [];
  for (const item of items) {
    const { msg, decoded } = item;
    const refusal = refused.get(item);
    if (decoded.ok && refusal === undefined) continue;
    dead.push({
      key: decoded.key,
      msgId: `${stream}:${msg.seq}`,
      subject: msg.subject,
      streamSeq: msg.seq,
      data: msg.data,
      contentType: msg.contentType,
      reason: decoded.ok ? "non_finite" : decoded.reason,
      detail: decoded.ok ? `the engine refused it: ${refusal}` : decoded.detail,
    });
  }
  return dead;
}

function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}
