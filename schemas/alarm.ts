/**
 * Alarm episodes (`src/model/alarm.ts`): the event replay writes with `--alarms FILE` (one NDJSON
 * line per episode) and the live worker publishes on `<prefix>.alarms.<key>`, and the per-key
 * alarm state the live worker keeps in its checkpoints.
 *
 * @module
 */
import { z } from "zod";

const Time = z.union([z.number(), z.string()]).nullable();
const Finite = z.number().refine(Number.isFinite, "expected a finite number");

/** One alarm episode: the observations of one key with the alarm on, start to end. */
export const AlarmEpisode = z.object({
  key: z.string().min(1),
  /** `seq` of the first observation with the alarm on. */
  start_seq: z.number().int().min(1),
  /** `seq` of the last observation with the alarm on (the next one closed it). */
  end_seq: z.number().int().min(1),
  /** `t` of those observations, null when the input has no time. */
  start_t: Time,
  end_t: Time,
  /** Observations in the episode (end_seq − start_seq + 1 when each is scored once). */
  observations: z.number().int().min(1),
  /** Highest −log10 p_value in the episode (p_value 0 counts as −log10 5e-324 ≈ 323.3). */
  peak_log_p: Finite.min(0),
  /** Up to 3 dimensions (0-based, as in `contrib`) that carried the episode, largest share first. */
  top_dims: z.array(z.number().int().min(0)).max(3),
  /**
   * Their shares of the episode's Mahalanobis² (each observation's contrib shares weighted by its
   * −log10 p; a saturated component takes the whole share), same order.
   */
  top_shares: z.array(z.number().min(0).max(1)).max(3),
  /** Replay only: true when the input ended with the alarm still on (end = last observation). */
  open: z.boolean().optional(),
});
export type AlarmEpisode = z.output<typeof AlarmEpisode>;

/** Alarm state of one key (`AlarmState` of `src/model/alarm.ts`), in a live checkpoint. */
export const AlarmStateSchema = z.object({
  cusum: Finite.min(0),
  open: z.boolean(),
  start_seq: z.number().int().min(0),
  start_t: Time,
  end_seq: z.number().int().min(0),
  end_t: Time,
  observations: z.number().int().min(0),
  peak: Finite.min(0),
  shares: z.array(Finite),
  /** Per dimension: last reading, current run of exact repeats, the repeat chain's counts. */
  flat: z.object({
    last: z.array(Finite),
    run: z.array(z.number().int().min(0)),
    fromN: z.array(z.number().int().min(0)),
    nToR: z.array(z.number().int().min(0)),
    fromR: z.array(z.number().int().min(0)),
    rToR: z.array(z.number().int().min(0)),
  }).optional(),
});
export type AlarmStateSchema = z.output<typeof AlarmStateSchema>;
