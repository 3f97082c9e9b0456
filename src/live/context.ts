/**
 * What a live loop takes from the config: the context it expects on each observation (features
 * and/or a time for the conditional head, nothing for the unconditional one) and its settings.
 *
 * @module
 */
import type { LiveConfig } from "../config/live_config.ts";
import { alarmReference } from "../model/alarm.ts";
import type { LoopSettings } from "./loop.ts";

/** The context observations carry with the conditional head (none with the unconditional one). */
export function contextOf(
  config: LiveConfig,
): { context?: { features: number; timed: boolean } } {
  return config.head.head === "conditional"
    ? { context: { features: config.head.features, timed: config.head.time_features.length > 0 } }
    : {};
}

/** The settings of one loop that do not come from the config (`paramsEveryMs`: default the config's). */
export type LoopRun =
  & Pick<LoopSettings, "obsPrefix" | "inputStream" | "metrics" | "log" | "fence">
  & { readonly paramsEveryMs?: number };

/** A live loop's settings: the config's, then `run`'s. */
export function loopSettingsOf(config: LiveConfig, run: LoopRun): LoopSettings {
  return {
    dim: config.head.dim,
    batch: config.batch,
    maxWaitMs: config.maxWaitMs,
    paramsEveryMs: config.paramsEveryMs,
    checkpointEveryMs: config.checkpointEveryMs,
    ...(config.evictIdleS > 0 ? { evictIdleMs: config.evictIdleS * 1000 } : {}),
    maxMessageBytes: config.maxMessageBytes,
    scoreMessages: config.scoreMessages,
    alarmThreshold: config.alarmThreshold,
    alarmReference: alarmReference(config.head.alpha),
    alarmArmedFrom: config.head.warmup + 1,
    ...contextOf(config),
    ...run,
  };
}
