/**
 * Collecting one batch of input: {@link collectBatch} takes messages from the source and decodes
 * them until the batch is full, its wait is over, or (for a partial batch) the loop's pipeline is
 * idle.
 *
 * @module
 */
import { decodeMessage, type DecodeSettings } from "../wire/decode.ts";
import type { BatchContext } from "./batch_builder.ts";
import type { Item } from "./batch_builder.ts";
import type { InputMessage, MessageSource } from "./ports.ts";

/** The settings {@link collectBatch} reads (a subset of the loop's). */
export interface CollectSettings {
  readonly dim: number;
  /** Observations per mini-batch. */
  readonly batch: number;
  readonly maxWaitMs: number;
  /** `<prefix>.obs.` */
  readonly obsPrefix: string;
  readonly maxMessageBytes: number;
  /** Conditional head: the context each observation must carry (see `DecodeSettings`). */
  readonly context?: BatchContext;
}

/** The loop's state that {@link collectBatch} looks at while it waits. */
export interface PipelineState {
  /** True when no submitted batch waits for its publication. */
  idle(): boolean;
  /** True once the loop failed. */
  failed(): boolean;
}

/** One batch of decoded input messages; `closed` once the source has no more. */
export interface Collected {
  readonly items: Item[];
  readonly closed: boolean;
  /** When the batch's first message arrived (`performance.now()`). */
  readonly firstAt: number;
}

/** Collects the next batch from `source`. */
export async function collectBatch(
  source: MessageSource,
  s: CollectSettings,
  pipeline: PipelineState,
): Promise<Collected> {
  const items: Item[] = [];
  let obs = 0;
  let deadline = 0;
  let firstAt = 0;
  const decodeSettings = {
    dim: s.dim,
    obsPrefix: s.obsPrefix,
    maxBytes: s.maxMessageBytes,
    features: s.context?.features,
    timed: s.context?.timed,
  };
  while (obs < s.batch) {
    let wait = items.length === 0 ? 1000 : deadline - performance.now();
    if (items.length > 0 && wait <= 0) break;
    if (items.length > 0) {
      // A partial batch goes as soon as the pipeline is idle (nothing scored and waiting for
      // its acknowledgements): at low rates every observation goes at once, at higher ones
      // what arrives during one batch's round trip becomes the next batch — fewer, larger
      // publications and engine calls for the same latency. Full batches do not wait.
      const m0 = await source.next(0);
      if (m0 === null) return { items, closed: true, firstAt };
      if (m0 !== undefined) {
        obs += take(m0, items, decodeSettings);
        continue;
      }
      if (pipeline.idle()) break;
      // The pipeline going idle interrupts the wait (the loop calls `source.interrupt`); else
      // look every ms.
      if (source.interrupt === undefined) wait = Math.min(wait, 1);
    }
    const m = await source.next(Math.max(0, wait));
    if (m === null) return { items, closed: true, firstAt };
    if (m === undefined) {
      if (items.length > 0) continue;
      if (pipeline.failed()) return { items, closed: true, firstAt };
      continue;
    }
    if (items.length === 0) {
      firstAt = performance.now();
      deadline = firstAt + s.maxWaitMs;
    }
    obs += take(m, items, decodeSettings);
  }
  return { items, closed: false, firstAt };
}

/** Decodes `m` into `items`; returns its observations (0 if it did not decode). */
function take(
  m: InputMessage,
  items: Item[],
  settings: DecodeSettings,
): number {
  const decoded = decodeMessage(m, settings);
  items.push({ msg: m, decoded });
  return decoded.ok ? decoded.rows.length : 0;
}
