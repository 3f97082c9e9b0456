/**
 * Settings of the live learning loop (`LiveLoop`, `loop.ts`).
 *
 * @module
 */
import type { ScoreMessages } from "../config/live_config.ts";
import type { BatchContext } from "./batch_builder.ts";
import type { LiveMetrics } from "./metrics.ts";

/** Settings of `LiveLoop`. */
export interface LoopSettings {
  readonly dim: number;
  /** Observations per mini-batch. */
  readonly batch: number;
  readonly maxWaitMs: number;
  readonly paramsEveryMs: number;
  /** `<prefix>.obs.` */
  readonly obsPrefix: string;
  readonly maxMessageBytes: number;
  /** Input stream name, the first part of every `Nats-Msg-Id`. */
  readonly inputStream: string;
  /**
   * Batches submitted but not yet published, at most. Default 8: scores of batch N are published
   * as soon as the engine scored it, whatever N−1's publication or commit is doing.
   */
  readonly maxInFlight?: number;
  /**
   * Time between checkpoint barriers (checkpoint written, inputs acked); 0: every batch. Default
   * 100 ms. A crash redelivers at most about this much input (plus batches in flight).
   */
  readonly checkpointEveryMs?: number;
  /**
   * Idle-key eviction: a key that saw no observation for this long, whose state is checkpointed
   * and whose parameters are published, is dropped from memory (engine, alarms, sequence) and
   * reloaded from its checkpoint before its next observation is scored. Default: never.
   */
  readonly evictIdleMs?: number;
  /** Input messages awaiting their checkpoint (unacked), at most. Default 20,000. */
  readonly maxUncommitted?: number;
  /** See `LiveConfig.scoreMessages`. Default `row`. */
  readonly scoreMessages?: ScoreMessages;
  /** Alarm CUSUM threshold (`src/model/alarm.ts`). Default `DEFAULT_ALARM_THRESHOLD`. */
  readonly alarmThreshold?: number;
  /** Alarm CUSUM reference, −log10 alpha. Default `DEFAULT_ALARM_REFERENCE` (alpha 1e-3). */
  readonly alarmReference?: number;
  /** Observations with `seq` below this add no alarm evidence (warm-up + 1). Default 0. */
  readonly alarmArmedFrom?: number;
  readonly metrics: LiveMetrics;
  readonly log: (line: string) => void;
  /**
   * Called before a commit writes checkpoints and again before it acks; throws when the loop may
   * no longer commit (its partition's lease is no longer fresh): the loop then fails, abandoning
   * what is in flight. Default: always allowed.
   */
  readonly fence?: () => void;
  /** Conditional head: the context observations carry (checked when decoding: dead letters). */
  readonly context?: BatchContext;
}
