/**
 * The bookkeeping of a batch between submission and commit in the learning loop (`loop.ts`):
 * what it carries once prepared, once scored and once published, and the checkpoints and alarm
 * states a barrier commits (see the exactly-once argument in `loop.ts`).
 *
 * @module
 */
import type { Checkpoint, DeadLetterReason } from "../../schemas/messages.ts";
import type { HeadState } from "../engine/types.ts";
import type { AlarmState } from "../model/alarm.ts";
import type { Item, Part } from "./batch_builder.ts";
import type { KeyAlarms } from "./loop_keys.ts";
import type { InputMessage } from "./ports.ts";

/** A batch as submitted. */
export interface Prepared {
  readonly items: Item[];
  /**
   * A barrier: key → last applied sequence, for every key learned since the previous barrier
   * (its checkpoint). null for other batches.
   */
  readonly learned: Map<string, number> | null;
  readonly firstAt: number;
}

/** What a batch published, once the server acknowledged it. */
export interface Published {
  /**
   * Messages its commit acks: all of them, or only the last one when the source acks
   * cumulatively. Nothing else of the batch's input is kept past publication: held until the
   * checkpoint, it made every garbage collection copy it (10–20 ms pauses at 8 000 obs/s).
   */
  readonly acks: InputMessage[];
  readonly states: HeadState[];
  /** A barrier: the alarm state of each key learned since the previous one, after this batch. */
  readonly alarmStates: Map<string, AlarmState> | null;
  readonly deadReasons: DeadLetterReason[];
  readonly scored: number;
  readonly newRows: number;
  readonly outs: number;
  readonly anomalies: number;
}

/** A batch between submission and commit. */
export interface InFlight {
  /** The batch's input; replaced by an empty one once published. */
  p: Prepared;
  /** Input messages of the batch. */
  readonly messages: number;
  /** Scores and dead letters acknowledged by the server. */
  readonly published: Promise<Published>;
  /** Set once `published` resolved. */
  result?: Published;
  committed: boolean;
  /**
   * Settles when the batch is finalised: committed (a barrier), published (any other batch, which
   * the next barrier commits), or skipped after a fatal error.
   */
  done: Promise<void>;
}

/** What the engine made of a batch. */
export interface EngineResult {
  readonly parts: Part[];
  /** Messages the engine refused (non-finite scores), with its message. */
  readonly refused: Map<Item, string>;
  readonly states: HeadState[];
}

/**
 * The alarm state of each key a barrier batch checkpoints (`learned`), right after the batch (as
 * the heads' states); null for a batch that is no barrier.
 */
export function barrierAlarmStates(
  alarms: Pick<KeyAlarms, "export">,
  learned: Map<string, number> | null,
): Map<string, AlarmState> | null {
  if (learned === null) return null;
  const alarmStates = new Map<string, AlarmState>();
  for (const key of learned.keys()) {
    const a = alarms.export(key);
    if (a !== undefined) alarmStates.set(key, a);
  }
  return alarmStates;
}

/**
 * The checkpoints a published barrier writes: one per key learned since the previous barrier,
 * its state and alarm state after the barrier with `last_seq` its last applied sequence.
 */
export function barrierCheckpoints(
  learned: Map<string, number> | null,
  result: Published,
  written_at: string,
): Checkpoint[] {
  const latest: Checkpoint[] = [];
  for (const state of result.states) {
    const seq = learned?.get(state.key);
    if (seq === undefined) {
      throw new RangeError(
        `expected state for a key learned before the barrier, found '${state.key}'`,
      );
    }
    const alarm = result.alarmStates?.get(state.key);
    latest.push({ last_seq: seq, state, ...(alarm !== undefined ? { alarm } : {}), written_at });
  }
  return latest;
}
