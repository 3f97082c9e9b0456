/**
 * The live loop's ports: what it reads ({@link MessageSource}, {@link InputMessage}), what it
 * publishes ({@link OutputSink}: {@link ScoreOut}, {@link RecordOut}, {@link DeadLetterOut}) and
 * where it keeps checkpoints ({@link CheckpointStore}). `src/nats/` implements them on JetStream.
 *
 * @module
 */
import type {
  Checkpoint,
  DeadLetterReason,
  LiveScoreRecord,
  ParamsMessage,
} from "../../schemas/messages.ts";
import type { RawMessage } from "../wire/decode.ts";
import type { AlarmEpisode } from "../../schemas/alarm.ts";

/** One input message as the loop sees it. */
export interface InputMessage extends RawMessage {
  /** Sequence of the message in the input stream. */
  readonly seq: number;
  /** Acknowledges the message (fire and forget). */
  ack(): void;
}

/** Where input messages come from. */
export interface MessageSource {
  /**
   * The next message in stream order; `undefined` when none arrived within `timeoutMs`; `null`
   * once the source is closed and every message it pulled has been returned.
   */
  next(timeoutMs: number): Promise<InputMessage | undefined | null>;
  /** Stops pulling; messages already pulled are still returned by `next`. */
  close(): Promise<void>;
  /**
   * Makes a pending `next` return now (with a message if one is there, else `undefined`), so the
   * loop can wait for input and for its pipeline going idle at once. Optional: without it the
   * loop looks again every millisecond.
   */
  interrupt?(): void;
  /**
   * True when acking a message acks every message delivered before it (a JetStream consumer with
   * `AckPolicy.All`): the loop then acks only the last message of each checkpoint. Default false.
   */
  readonly cumulativeAck?: boolean;
}

/**
 * A score message to publish: one record (`Nats-Msg-Id: <stream>:<stream_seq>[:<index>]`), or,
 * with `scoreMessages: "message"`, the records of one multi-row input message, in row order, as
 * one JSON array (`<stream>:<stream_seq>`).
 */
export type ScoreOut =
  | { readonly key: string; readonly msgId: string; readonly record: LiveScoreRecord }
  | { readonly key: string; readonly msgId: string; readonly records: LiveScoreRecord[] };

/** A score message holding one record (anomalies are published record by record). */
export type RecordOut = Extract<ScoreOut, { record: LiveScoreRecord }>;

/** A dead letter to publish. */
export interface DeadLetterOut {
  readonly key: string;
  readonly msgId: string;
  readonly subject: string;
  readonly streamSeq: number;
  readonly data: Uint8Array;
  readonly contentType?: string;
  readonly reason: DeadLetterReason;
  readonly detail: string;
}

/**
 * An alarm episode to publish on `<prefix>.alarms.<key>` (`Nats-Msg-Id:
 * <stream>:alarm:<key>:<start_seq>-<end_seq>`: a re-published episode is dropped).
 */
export interface AlarmOut {
  readonly key: string;
  readonly msgId: string;
  readonly episode: AlarmEpisode;
}

/** Where results go. Publications that must be durable resolve once the server acknowledged them. */
export interface OutputSink {
  publishScores(items: readonly ScoreOut[]): Promise<void>;
  publishDeadLetters(items: readonly DeadLetterOut[]): Promise<void>;
  /** Best effort (core NATS). */
  publishAnomalies(items: readonly RecordOut[]): void;
  publishParams(items: readonly ParamsMessage[]): Promise<void>;
  /** Alarm episodes; resolves once the server acknowledged them. */
  publishAlarms(items: readonly AlarmOut[]): Promise<void>;
}

/** Per-key checkpoints. */
export interface CheckpointStore {
  /**
   * Hands every checkpoint to `each`, a chunk at a time (each awaited before the next is handed
   * over, so at most one chunk's states live at once); resolves to how many there were.
   */
  loadAll(each: (cps: readonly Checkpoint[]) => Promise<void>): Promise<number>;
  /**
   * The checkpoints of the given model keys, for those that have one (idle-key eviction reloads
   * an evicted key from it).
   */
  load(keys: readonly string[]): Promise<Checkpoint[]>;
  /** Writes the checkpoints (revision-checked); resolves once all are stored. */
  save(items: readonly Checkpoint[]): Promise<void>;
  /**
   * Optional: keep each key's checkpoint revision in `revisions` (the loop's per-key state, one
   * key map for everything) instead of a map of the store's own. Called before any other call.
   */
  keepRevisionsIn?(revisions: CheckpointRevisions): void;
}

/** Checkpoint revisions by model key (what a revision-checked store remembers of each key). */
export interface CheckpointRevisions {
  get(key: string): number | undefined;
  set(key: string, revision: number): void;
}
