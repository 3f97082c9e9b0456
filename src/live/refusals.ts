/**
 * Refused batches: the engine refuses a whole batch, before any state change, when a row's values
 * or scores are not finite (an {@link EngineError} with code `non_finite_input`, values so large
 * that m² overflows). {@link processIsolating} splits such a batch until the message at fault is
 * alone; that message is set aside (the loop dead-letters it) and the rest is processed in order.
 *
 * @module
 */
import type { ScoringEngine } from "../engine/engine.ts";
import { hasEngineErrorCode } from "../engine/errors.ts";
import {
  type BatchContext,
  buildBatch,
  type Group,
  type Item,
  type Part,
} from "./batch_builder.ts";

/**
 * Processes the groups in order, appending their scores to `parts`; a message the engine refused
 * goes to `refused` with the engine's message. Any other error rejects.
 */
export async function processIsolating(
  engine: ScoringEngine,
  groups: readonly Group[],
  dim: number,
  parts: Part[],
  refused: Map<Item, string>,
  log: (line: string) => void,
  context?: BatchContext,
): Promise<void> {
  // The batch's buffers may be transferred to the engine's worker: build it afresh per try.
  const { batch, rows } = buildBatch(groups, dim, context);
  try {
    parts.push({ rows, scores: await engine.process(batch) });
  } catch (e) {
    if (!hasEngineErrorCode(e, "non_finite_input")) throw e;
    if (groups.length === 1) {
      refused.set(groups[0].item, e.message);
      log(`engine refused message ${groups[0].item.msg.seq} of '${groups[0].key}': ${e.message}`);
      return;
    }
    const half = Math.ceil(groups.length / 2);
    await processIsolating(engine, groups.slice(0, half), dim, parts, refused, log, context);
    await processIsolating(engine, groups.slice(half), dim, parts, refused, log, context);
  }
}
