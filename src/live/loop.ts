/**
 * The learning loop of the live worker, independent of NATS: messages in (a {@link MessageSource}),
 * scores, dead letters and parameters out (an {@link OutputSink}), checkpoints to a
 * {@link CheckpointStore}. `src/live/nats_io.ts` implements the three on JetStream.
 *
 * Exactly-once argument (per key k, messages arrive in stream order, see `resetConsumer`):
 *  - `lastApplied[k]` is the highest input sequence whose learning the engine holds; a message
 *    with sequence ≤ it is scored with `counted = 0` (never learned or counted twice).
 *  - Batches go through the engine strictly in order. Every `checkpointEveryMs` one batch is a
 *    barrier: its `exportState` (of every key learned since the previous barrier) runs right
 *    after its `process`, before the next batch's, so a checkpoint is exactly "state after the
 *    barrier batch" with `last_seq = lastApplied[k]` after it.
 *  - Batches are finalised strictly in order: scores published and acknowledged by the server
 *    (with `Nats-Msg-Id`, so a re-publication is dropped) as soon as they are scored; at a
 *    barrier, once it and every batch before it are published, the checkpoints are written, then
 *    the input messages of every batch up to the barrier are acked. A crash anywhere leaves
 *    unacked messages that are redelivered and either relearned (checkpoint not written) or only
 *    re-scored (checkpoint written). Barriers instead of a checkpoint per batch: at a few
 *    observations per batch, a checkpoint write per key per batch cost more than everything else.
 *
 * @module
 */
import type { Checkpoint, DeadLetterReason, ParamsMessage } from "../../schemas/messages.ts";
import type { LiveScoreRecord } from "../../schemas/messages.ts";
import type { ScoreMessages } from "../config/live_config.ts";
import type { ScoringEngine } from "../engine/engine.ts";
import type { HeadState, ObservationBatch, ScoreBatch } from "../engine/types.ts";
import { type Decoded, type DecodedRow, decodeMessage, type RawMessage } from "../wire/decode.ts";
import type { LiveMetrics } from "./metrics.ts";

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

/** Where results go. Publications that must be durable resolve once the server acknowledged them. */
export interface OutputSink {
  publishScores(items: readonly ScoreOut[]): Promise<void>;
  publishDeadLetters(items: readonly DeadLetterOut[]): Promise<void>;
  /** Best effort (core NATS). */
  publishAnomalies(items: readonly RecordOut[]): void;
  publishParams(items: readonly ParamsMessage[]): Promise<void>;
}

/** Per-key checkpoints. */
export interface CheckpointStore {
  loadAll(): Promise<Checkpoint[]>;
  /** Writes the checkpoints (revision-checked); resolves once all are stored. */
  save(items: readonly Checkpoint[]): Promise<void>;
}

/** Settings of {@link LiveLoop}. */
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
  /** Input messages awaiting their checkpoint (unacked), at most. Default 20,000. */
  readonly maxUncommitted?: number;
  /** See `LiveConfig.scoreMessages`. Default `row`. */
  readonly scoreMessages?: ScoreMessages;
  readonly metrics: LiveMetrics;
  readonly log: (line: string) => void;
}

interface Item {
  readonly msg: InputMessage;
  readonly decoded: Decoded;
}

interface RowRef {
  readonly key: string;
  readonly streamSeq: number;
  readonly index?: number;
  readonly t?: number | string;
  readonly label?: 0 | 1;
  readonly isNew: boolean;
}

/** The rows of one good message, as they go to the engine. */
interface Group {
  readonly item: Item;
  readonly key: string;
  readonly isNew: boolean;
  readonly rows: readonly DecodedRow[];
  readonly multi: boolean;
}

interface Prepared {
  readonly items: Item[];
  /**
   * A barrier: key → last applied sequence, for every key learned since the previous barrier
   * (its checkpoint). null for other batches.
   */
  readonly learned: Map<string, number> | null;
  readonly firstAt: number;
}

/** What a batch published, once the server acknowledged it. */
interface Published {
  /**
   * Messages its commit acks: all of them, or only the last one when the source acks
   * cumulatively. Nothing else of the batch's input is kept past publication: held until the
   * checkpoint, it made every garbage collection copy it (10–20 ms pauses at 8 000 obs/s).
   */
  readonly acks: InputMessage[];
  readonly states: HeadState[];
  readonly deadReasons: DeadLetterReason[];
  readonly scored: number;
  readonly newRows: number;
  readonly outs: number;
  readonly anomalies: number;
}

/** A batch between submission and commit. */
interface InFlight {
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

/** Scores of consecutive groups processed as one engine batch. */
interface Part {
  readonly rows: RowRef[];
  readonly scores: ScoreBatch;
}

interface EngineResult {
  readonly parts: Part[];
  /** Messages the engine refused (non-finite scores), with its message. */
  readonly refused: Map<Item, string>;
  readonly states: HeadState[];
}

/**
 * The engine refuses a whole batch, before any state change, when a row's scores would not be
 * finite (values so large that m² overflows). Such a batch is split until the message at fault is
 * alone; that message becomes a dead letter and the rest is processed in order.
 */
function isRefusal(e: unknown): e is Error {
  return e instanceof Error && (e.name === "RangeError" || e.name === "EngineError") &&
    /expected finite values/.test(e.message);
}

function buildBatch(
  groups: readonly Group[],
  dim: number,
): { batch: ObservationBatch; rows: RowRef[] } {
  let n = 0;
  for (const g of groups) n += g.rows.length;
  const values = new Float64Array(n * dim);
  const keyIndex = new Uint32Array(n);
  const counted = new Uint8Array(n);
  const keys: string[] = [];
  const keyIdx = new Map<string, number>();
  const rows: RowRef[] = [];
  let r = 0;
  for (const g of groups) {
    let ki = keyIdx.get(g.key);
    if (ki === undefined) {
      ki = keys.length;
      keys.push(g.key);
      keyIdx.set(g.key, ki);
    }
    g.rows.forEach((row, index) => {
      for (let j = 0; j < dim; j++) values[r * dim + j] = row.values[j];
      keyIndex[r] = ki;
      counted[r] = g.isNew ? 1 : 0;
      rows.push({
        key: g.key,
        streamSeq: g.item.msg.seq,
        index: g.multi ? index : undefined,
        t: row.t,
        label: row.label,
        isNew: g.isNew,
      });
      r++;
    });
  }
  return { batch: { dim, n, values, keyIndex, keys, counted }, rows };
}

/** The learning loop. `init()`, then `run()` until `stop()`. */
export class LiveLoop {
  readonly #engine: ScoringEngine;
  readonly #source: MessageSource;
  readonly #sink: OutputSink;
  readonly #store: CheckpointStore;
  readonly #s: LoopSettings;
  readonly #lastApplied = new Map<string, number>();
  #engineChain: Promise<unknown> = Promise.resolve();
  /** Batches submitted whose scores are not yet acknowledged by the server. */
  #unpublished = 0;
  /** Batches not committed yet, in order. */
  #inFlight: InFlight[] = [];
  /** Keys learned since the last barrier → their last applied sequence. */
  #sinceBarrier = new Map<string, number>();
  #lastBarrierAt = performance.now();
  /** Whether the last batch submitted was a barrier (nothing waits for a checkpoint then). */
  #barrierLast = true;
  #submitting = false;
  #stopping = false;
  #fatal: unknown;
  readonly #dirty = new Set<string>();
  readonly #paramsAt = new Map<string, number>();
  #paramsBusy: Promise<void> | undefined;

  constructor(
    engine: ScoringEngine,
    source: MessageSource,
    sink: OutputSink,
    store: CheckpointStore,
    settings: LoopSettings,
  ) {
    this.#engine = engine;
    this.#source = source;
    this.#sink = sink;
    this.#store = store;
    this.#s = settings;
  }

  /** Highest applied input sequence per key (a copy). */
  get lastApplied(): Map<string, number> {
    return new Map(this.#lastApplied);
  }

  /** Loads every checkpoint into the engine. */
  async init(): Promise<number> {
    const cps = await this.#store.loadAll();
    if (cps.length > 0) await this.#engine.importState(cps.map((c) => c.state));
    for (const c of cps) this.#lastApplied.set(c.state.key, c.last_seq);
    return cps.length;
  }

  /** Asks the loop to stop: pulling stops, pulled messages are finished, then `run` resolves. */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#source.close().catch((e) => this.#s.log(`closing the source failed: ${e}`));
  }

  /** Processes messages until stopped; rejects on a fatal error (engine, checkpoint conflict). */
  async run(): Promise<void> {
    const tick = Math.max(10, Math.min(this.#s.paramsEveryMs, 1000) / 2);
    const timer = setInterval(() => this.#maybeParams(false), tick);
    // An idle stream still gets its last batches checkpointed and acked within the interval.
    const every = this.#s.checkpointEveryMs ?? 100;
    const flush = setInterval(() => {
      if (this.#barrierLast || this.#submitting || this.#fatal !== undefined) return;
      if (performance.now() - this.#lastBarrierAt < every) return;
      this.#submit([], performance.now(), true).catch((e) => this.#fail(e));
    }, Math.max(5, every / 2));
    try {
      while (true) {
        const { items, closed, firstAt } = await this.#collect();
        if (items.length > 0) await this.#submit(items, firstAt);
        if (this.#fatal !== undefined) break;
        if (closed) break;
      }
      clearInterval(flush);
      if (this.#fatal === undefined && !this.#barrierLast) {
        await this.#submit([], performance.now(), true);
      }
      await Promise.all(this.#inFlight.map((b) => b.done));
      if (this.#fatal === undefined) {
        await this.#paramsBusy;
        await this.#maybeParams(true);
      }
    } finally {
      clearInterval(timer);
      clearInterval(flush);
    }
    if (this.#fatal !== undefined) throw this.#fatal;
  }

  async #collect(): Promise<{ items: Item[]; closed: boolean; firstAt: number }> {
    const items: Item[] = [];
    let obs = 0;
    let deadline = 0;
    let firstAt = 0;
    const decodeSettings = {
      dim: this.#s.dim,
      obsPrefix: this.#s.obsPrefix,
      maxBytes: this.#s.maxMessageBytes,
    };
    while (obs < this.#s.batch) {
      let wait = items.length === 0 ? 1000 : deadline - performance.now();
      if (items.length > 0 && wait <= 0) break;
      if (items.length > 0) {
        // A partial batch goes as soon as the pipeline is idle (nothing scored and waiting for
        // its acknowledgements): at low rates every observation goes at once, at higher ones
        // what arrives during one batch's round trip becomes the next batch — fewer, larger
        // publications and engine calls for the same latency. Full batches do not wait.
        const m0 = await this.#source.next(0);
        if (m0 === null) return { items, closed: true, firstAt };
        if (m0 !== undefined) {
          this.#take(m0, items, decodeSettings, (n) => (obs += n));
          continue;
        }
        if (this.#unpublished === 0) break;
        // The pipeline going idle interrupts the wait (see #settled); else look every ms.
        if (this.#source.interrupt === undefined) wait = Math.min(wait, 1);
      }
      const m = await this.#source.next(Math.max(0, wait));
      if (m === null) return { items, closed: true, firstAt };
      if (m === undefined) {
        if (items.length > 0) continue;
        if (this.#fatal !== undefined) return { items, closed: true, firstAt };
        continue;
      }
      if (items.length === 0) {
        firstAt = performance.now();
        deadline = firstAt + this.#s.maxWaitMs;
      }
      this.#take(m, items, decodeSettings, (n) => (obs += n));
    }
    return { items, closed: false, firstAt };
  }

  #take(
    m: InputMessage,
    items: Item[],
    settings: { dim: number; obsPrefix: string; maxBytes: number },
    count: (n: number) => void,
  ): void {
    const decoded = decodeMessage(m, settings);
    items.push({ msg: m, decoded });
    if (decoded.ok) count(decoded.rows.length);
  }

  async #submit(items: Item[], firstAt: number, forceBarrier = false): Promise<void> {
    this.#submitting = true;
    let full = false;
    try {
      full = await this.#room();
    } finally {
      this.#submitting = false;
    }
    // From here to the push: synchronous, so batches (and timer barriers) keep their order.
    const groups: Group[] = [];
    for (const item of items) {
      const decoded = item.decoded;
      if (!decoded.ok) continue;
      const key = decoded.key;
      const isNew = item.msg.seq > (this.#lastApplied.get(key) ?? 0);
      if (isNew) {
        this.#lastApplied.set(key, item.msg.seq);
        this.#sinceBarrier.set(key, item.msg.seq);
      }
      groups.push({ item, key, isNew, rows: decoded.rows, multi: decoded.multi });
    }
    const now = performance.now();
    const barrier = forceBarrier || full || this.#stopping ||
      now - this.#lastBarrierAt >= (this.#s.checkpointEveryMs ?? 100);
    let learned: Map<string, number> | null = null;
    if (barrier) {
      learned = this.#sinceBarrier;
      this.#sinceBarrier = new Map();
      this.#lastBarrierAt = now;
    }
    this.#barrierLast = barrier;
    const learnedKeys = learned === null ? [] : [...learned.keys()];
    // exportState right after process, before anything else reaches the engine: the checkpoint
    // must hold exactly the state after this batch.
    const work: Promise<EngineResult> = this.#engineChain.then(async () => {
      const parts: Part[] = [];
      const refused = new Map<Item, string>();
      if (groups.length > 0) await this.#processIsolating(groups, parts, refused);
      const states = learnedKeys.length > 0 ? await this.#engine.exportState(learnedKeys) : [];
      return { parts, refused, states };
    });
    this.#engineChain = work.catch(() => {});
    const prepared: Prepared = { items, learned, firstAt };
    // Publication needs only this batch's scores: it does not wait for earlier batches' commits
    // (re-published records are deduplicated by Nats-Msg-Id, so order of commits is all that
    // matters for the guarantees).
    const published = work.then((r) => this.#publish(prepared, r));
    this.#unpublished++;
    published.finally(() => this.#settled()).catch(() => {});
    const batch: InFlight = {
      p: prepared,
      messages: items.length,
      published,
      committed: false,
      done: Promise.resolve(),
    };
    published.then((r) => {
      batch.result = r;
      batch.p = { items: [], learned: prepared.learned, firstAt: prepared.firstAt };
    }, () => {});
    const previous = this.#inFlight[this.#inFlight.length - 1]?.done ?? Promise.resolve();
    batch.done = previous
      .then(async () => {
        if (this.#fatal !== undefined) return;
        if (barrier) await this.#commit(batch);
        else batch.result = await published;
      })
      .catch((e) => this.#fail(e));
    this.#inFlight.push(batch);
  }

  /**
   * Waits while too many batches are unpublished or too many messages await a checkpoint; true
   * when the next batch must be a barrier (too many messages wait, and no barrier is on its way).
   */
  async #room(): Promise<boolean> {
    const maxInFlight = this.#s.maxInFlight ?? 8;
    const maxUncommitted = this.#s.maxUncommitted ?? 20_000;
    while (true) {
      let unpublished: InFlight | undefined;
      let count = 0;
      let messages = 0;
      for (const b of this.#inFlight) {
        messages += b.messages;
        if (b.result === undefined && !b.committed) {
          unpublished ??= b;
          count++;
        }
      }
      if (count >= maxInFlight && unpublished !== undefined) {
        await unpublished.published.catch(() => {});
      } else if (messages >= maxUncommitted && this.#inFlight.length > 0) {
        if (!this.#barrierLast) return true;
        await this.#inFlight[this.#inFlight.length - 1].done;
      } else return false;
      if (this.#fatal !== undefined) return false;
    }
  }

  /** A batch's publication settled: an idle pipeline lets a waiting partial batch go. */
  #settled(): void {
    if (--this.#unpublished === 0) this.#source.interrupt?.();
  }

  #fail(e: unknown): void {
    if (this.#fatal === undefined) {
      this.#fatal = e;
      this.#s.log(`fatal: ${e instanceof Error ? e.message : String(e)}`);
      this.stop();
    }
  }

  /** Processes the groups in order; see {@link isRefusal}. */
  async #processIsolating(
    groups: readonly Group[],
    parts: Part[],
    refused: Map<Item, string>,
  ): Promise<void> {
    // The batch's buffers may be transferred to the engine's worker: build it afresh per try.
    const { batch, rows } = buildBatch(groups, this.#s.dim);
    try {
      parts.push({ rows, scores: await this.#engine.process(batch) });
    } catch (e) {
      if (!isRefusal(e)) throw e;
      if (groups.length === 1) {
        refused.set(groups[0].item, e.message);
        this.#s.log(
          `engine refused message ${groups[0].item.msg.seq} of '${groups[0].key}': ${e.message}`,
        );
        return;
      }
      const half = Math.ceil(groups.length / 2);
      await this.#processIsolating(groups.slice(0, half), parts, refused);
      await this.#processIsolating(groups.slice(half), parts, refused);
    }
  }

  /** Builds and publishes the batch's score records and dead letters; resolves once acked. */
  async #publish(p: Prepared, r: EngineResult): Promise<Published> {
    const { parts, refused, states } = r;
    const stream = this.#s.inputStream;
    const outs: ScoreOut[] = [];
    const anomalies: RecordOut[] = [];
    // scoreMessages "message": the records of each multi-row message, gathered by its sequence
    // (batches take whole messages). Rows come in message order, so index 0 starts a message: a
    // second copy of one in the batch (a redelivery) gets a message of its own, with the same id,
    // which the server drops, as it drops the copy's records in row mode.
    const grouped = this.#s.scoreMessages === "message"
      ? new Map<number, LiveScoreRecord[]>()
      : undefined;
    let scoredRows = 0;
    let newRows = 0;
    for (const { rows, scores } of parts) {
      const d = scores.dim;
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i];
        const contrib: (number | null)[] = new Array(d);
        for (let j = 0; j < d; j++) contrib[j] = finiteOrNull(scores.contrib[i * d + j]);
        const record: LiveScoreRecord = {
          seq: scores.seq[i],
          key: row.key,
          ...(row.t !== undefined ? { t: row.t } : {}),
          log_prob: finiteOrNull(scores.logProb[i]),
          mahalanobis2: finiteOrNull(scores.mahalanobis2[i]),
          p_value: finiteOrNull(scores.pValue[i]),
          anomaly: scores.anomaly[i] === 1,
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
        scoredRows++;
        if (row.isNew) newRows++;
      }
      // Every number is in a record now: the buffers go back to the engine for reuse.
      this.#engine.release(scores);
    }
    const dead: DeadLetterOut[] = [];
    for (const item of p.items) {
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
    await Promise.all([this.#sink.publishScores(outs), this.#sink.publishDeadLetters(dead)]);
    if (anomalies.length > 0) this.#sink.publishAnomalies(anomalies);
    const msgs = p.items;
    return {
      acks: this.#source.cumulativeAck === true
        ? msgs.slice(-1).map((it) => it.msg)
        : msgs.map((it) => it.msg),
      states,
      deadReasons: dead.map((d) => d.reason),
      scored: scoredRows,
      newRows,
      outs: scoredRows,
      anomalies: anomalies.length,
    };
  }

  /**
   * Commits the barrier `last` and every batch before it not committed yet (all published by
   * now: batches are finalised in order): one checkpoint per key learned since the previous
   * barrier, then the input messages of all of them are acked.
   */
  async #commit(last: InFlight): Promise<void> {
    last.result = await last.published;
    const end = this.#inFlight.indexOf(last);
    const group = this.#inFlight.slice(0, end + 1).filter((b) => !b.committed);
    const latest: Checkpoint[] = [];
    const written_at = new Date().toISOString();
    for (const state of last.result.states) {
      const seq = last.p.learned?.get(state.key);
      if (seq === undefined) {
        throw new RangeError(
          `expected state for a key learned before the barrier, found '${state.key}'`,
        );
      }
      latest.push({ last_seq: seq, state, written_at });
    }
    const m = this.#s.metrics;
    if (latest.length > 0) {
      await this.#store.save(latest);
      m.checkpointWrites += latest.length;
    }
    const now = performance.now();
    if (this.#source.cumulativeAck === true) {
      // One ack for the whole group: every earlier delivery is committed by now.
      const acks = group.map((b) => b.result?.acks ?? []).findLast((a) => a.length > 0);
      acks?.at(-1)?.ack();
    }
    for (const b of group) {
      b.committed = true;
      const r = b.result!;
      if (this.#source.cumulativeAck !== true) { for (const msg of r.acks) msg.ack(); }
      // Metrics count first-time observations only.
      m.observations += r.newRows;
      m.scoresPublished += r.outs;
      m.anomalies += r.anomalies;
      for (const reason of r.deadReasons) m.deadLetter(reason);
      if (b.messages > 0) {
        m.batches++;
        m.batchSize.observe(r.scored);
        m.batchLatency.observe((now - b.p.firstAt) / 1000);
      }
    }
    for (const k of last.p.learned?.keys() ?? []) this.#dirty.add(k);
    this.#inFlight = this.#inFlight.filter((b) => !b.committed);
  }

  /** Publishes parameters of dirty keys whose last publication is older than `paramsEveryMs`. */
  #maybeParams(force: boolean): Promise<void> {
    if (this.#paramsBusy !== undefined || this.#dirty.size === 0) {
      return this.#paramsBusy ?? Promise.resolve();
    }
    const now = performance.now();
    const due = [...this.#dirty].filter((k) =>
      force || now - (this.#paramsAt.get(k) ?? -Infinity) >= this.#s.paramsEveryMs
    );
    if (due.length === 0) return Promise.resolve();
    for (const k of due) {
      this.#dirty.delete(k);
      this.#paramsAt.set(k, now);
    }
    const job = this.#engineChain.then(() => this.#engine.snapshot(due));
    this.#engineChain = job.catch(() => {});
    this.#paramsBusy = job
      .then(async (snaps) => {
        const updated_at = new Date().toISOString();
        const msgs: ParamsMessage[] = snaps.map((s) => ({
          key: s.key,
          dim: s.dim,
          loc: s.loc,
          scale_tril: s.scale_tril,
          covariance: s.covariance,
          observations: s.observations,
          steps: s.steps,
          updated_at,
        }));
        await this.#sink.publishParams(msgs);
        this.#s.metrics.paramsPublished += msgs.length;
      })
      .catch((e) => {
        for (const k of due) this.#dirty.add(k);
        this.#s.log(`publishing parameters failed (will retry): ${e}`);
      })
      .finally(() => (this.#paramsBusy = undefined));
    return this.#paramsBusy;
  }
}

function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}
