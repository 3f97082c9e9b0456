/**
 * The context a live loop expects on each observation: features and/or a time for the conditional
 * head, nothing for the unconditional one.
 *
 * @module
 */
import type { LiveConfig } from "../config/live_config.ts";

/** The context observations carry with the conditional head (none with the unconditional one). */
export function contextOf(
  config: LiveConfig,
): { context?: { features: number; timed: boolean } } {
  return config.head.head === "conditional"
    ? { context: { features: config.head.features, timed: config.head.time_features.length > 0 } }
    : {};
}
