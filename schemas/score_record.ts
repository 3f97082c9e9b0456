/**
 * One score record: what replay writes (one NDJSON line per observation, in input order) and what
 * the live worker publishes (it extends this with `stream_seq`).
 *
 * Numbers are JSON numbers with full JS precision; a non-finite score (which a healthy engine never
 * produces) is written as `null` because JSON has no Infinity/NaN. A finite reading whose
 * Mahalanobis² overflows is scored saturated: mahalanobis2 = Number.MAX_VALUE, log_prob =
 * −Number.MAX_VALUE, p_value 0, anomaly true, each overflowing contrib Number.MAX_VALUE.
 *
 * @module
 */
import { z } from "zod";

const Score = z.number().nullable();

export const ScoreRecord = z.object({
  /** 1-based position of the observation within its key (`ScoreBatch.seq`). */
  seq: z.number().int().min(1),
  key: z.string().min(1),
  /** Time of the observation, echoed from the input when present. */
  t: z.union([z.number(), z.string()]).optional(),
  log_prob: Score,
  mahalanobis2: Score,
  /** P(χ²_d ≥ mahalanobis2). */
  p_value: Score,
  anomaly: z.boolean(),
  /** The key's alarm state after this observation (`src/model/alarm.ts`, docs/model.md). */
  alarm: z.boolean(),
  /** Ground truth, echoed from the input when present. */
  label: z.union([z.literal(0), z.literal(1)]).optional(),
  /** Squared components of z = scale_tril⁻¹(x − loc); they sum to mahalanobis2. */
  contrib: z.array(Score).min(1),
});
export type ScoreRecord = z.output<typeof ScoreRecord>;
