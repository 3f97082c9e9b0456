/**
 * The learning loop of the live worker, independent of NATS: messages in (a {@link MessageSource}),
 * scores, dead letters and parameters out (an {@link OutputSink}), checkpoints to a
 * {@link CheckpointStore} (the ports, `ports.ts`; `src/nats/` implements them on JetStream). This
 * file sequences batches through the engine and commits them; `in_flight.ts` holds a batch's
 * bookkeeping from submission to commit (and a barrier's checkpoints), `batch_builder.ts` builds
 * engine batches, `refusals.ts` isolates refused messages, `records.ts` assembles score records,
 * `params.ts` publishes parameters, `finalise.ts` publishes and commits a batch and
 * `loop_settings.ts` holds the settings.
 *
 * Exactly-once argument (per key k, messages arrive in stream order, see `resetConsumer`):
 *  - `lastApplied[k]` is the highest input sequence whose learning the engine holds; a message
 *    with sequence ≤ it is scored with `counted = 0` (never learned or counted twice).
 *  - Batches go through the engine strictly in order. Every `checkpointEveryMs` one batch is a
 *    barrier: its `exportState` (of every key learned since the previous barrier) runs right
 *    after its `process`, before the next batch's, so a checkpoint is exactly "state after the
 *    barrier batch" with `last_seq = lastApplied[k]` after it.
 *  - Alarms (`src/model/alarm.ts`) advance as records are built, in batch order, on first-time
 *    observations only; a barrier's checkpoints carry each key's alarm state after it. So a
 *    redelivered batch rebuilds the same alarm flags and episode ids from the restored state, and
 *    episodes (published with the scores, before the checkpoint) are neither lost nor doubled.
 *  - Batches are finalised strictly in order: scores published and acknowledged by the server
 *    (with `Nats-Msg-Id`, so a re-publication is dropped) as soon as they are scored; at a
 *    barrier, once it and every batch before it are published, the checkpoints are written, then
 *    the input messages of every batch up to the barrier are acked. A crash anywhere leaves
 *    unacked messages that are redelivered and either relearned (checkpoint not written) or only
 *    re-scored (checkpoint written). Barriers instead of a checkpoint per batch: at a few
 *    observations per batch, a checkpoint write per key per batch cost more than everything else.
 *  - A barrier writes only the keys learned since the previous one: any other key's checkpoint
 *    already holds its state and `last_seq` (a message only re-scored changes neither).
 *  - Idle-key eviction (`evictIdleMs`): a key is dropped (engine, `lastApplied`, alarm) only once
 *    the batch of its last observation is committed, so its checkpoint holds exactly its state;
 *    a batch with an evicted key first reloads it from that checkpoint (state, `last_seq`, alarm),
 *    before the batch's `isNew` decisions and engine work, so it continues as if never dropped.
 *
 * @module
 */
import type { ScoringEngine } from "../engine/engine.ts";
import type { Group, Item, Part } from "./batch_builder.ts";
import { collectBatch, type PipelineState } from "./collect.ts";
import { commitGroup, type FinalisePorts, publishBatch } from "./finalise.ts";
import type { EngineResult, InFlight, Prepared } from "./in_flight.ts";
import type { LoopSettings } from "./loop_settings.ts";
import { ParamsPublisher } from "./params.ts";
import type { CheckpointStore, MessageSource, OutputSink } from "./ports.ts";
import { DEFAULT_ALARM_REFERENCE, DEFAULT_ALARM_THRESHOLD } from "../model/alarm.ts";
import { KeyEviction } from "./eviction.ts";
import { LoopKeys } from "./loop_keys.ts";
import { processIsolating } from "./refusals.ts";

export type { LoopSettings };

/** The learning loop. `init()`, then `run()` until `stop()`. */
export class LiveLoop {
  readonly #engine: ScoringEngine;
  readonly #source: MessageSource;
  readonly #sink: OutputSink;
  readonly #store: CheckpointStore;
  readonly #s: LoopSettings;
  /**
   * Per key in memory: its highest applied input sequence (`lastApplied`), its last parameter
   * publication and its alarm state, advanced as records are built (`#publish` runs in batch
   * order) and checkpointed with the key: a restart resumes it from the checkpoint and the
   * redelivered batches rebuild the same records, alarms and episodes (ids), which the server
   * deduplicates.
   */
  readonly #keys: LoopKeys;
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
  readonly #params: ParamsPublisher;
  readonly #evict: KeyEviction;
  /** Batches submitted (the last one's number), and the number of the last one committed. */
  #submitted = 0;
  #committedNo = 0;
  /** What publishing and committing a batch reach (`finalise.ts`). */
  readonly #out: FinalisePorts;
  readonly #pipeline: PipelineState = {
    idle: () => this.#unpublished === 0,
    failed: () => this.#fatal !== undefined,
  };

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
    this.#keys = new LoopKeys(
      settings.dim,
      settings.alarmThreshold ?? DEFAULT_ALARM_THRESHOLD,
      settings.alarmReference ?? DEFAULT_ALARM_REFERENCE,
    );
    store.keepRevisionsIn?.(this.#keys.revisions);
    this.#out = { engine, source, sink, store, keys: this.#keys, s: settings };
    this.#params = new ParamsPublisher({
      engine,
      keys: this.#keys,
      onEngine: (f) => this.#onEngine(f),
      sink,
      paramsEveryMs: settings.paramsEveryMs,
      metrics: settings.metrics,
      log: settings.log,
    });
    this.#evict = new KeyEviction({
      idleMs: settings.evictIdleMs,
      engine,
      onEngine: (f) => this.#onEngine(f),
      store,
      keys: this.#keys,
      params: this.#params,
      metrics: settings.metrics,
      fail: (e) => this.#fail(e),
    });
  }

  /** Highest applied input sequence per key in memory (a copy; evicted keys are not in it). */
  get lastApplied(): Map<string, number> {
    return this.#keys.appliedMap();
  }

  /**
   * Loads every checkpoint into the engine (a chunk at a time); resolves to how many. With
   * idle-key eviction on, each chunk's keys are set aside again once their parameters are out:
   * the worker starts (or takes a partition over) holding no key, and each comes back from its
   * checkpoint on its next observation, so memory is bounded from the start (issue 13: 1 M keys
   * of which a few are active) rather than only once the idle time has passed.
   */
  async init(): Promise<number> {
    const n = await this.#store.loadAll(async (cps) => {
      // In engine order: a chunk's publication (its snapshot) and the previous chunk's removal
      // are on the engine chain meanwhile.
      await this.#onEngine(() => this.#engine.importState(cps.map((c) => c.state)));
      for (const c of cps) {
        this.#keys.setApplied(c.state.key, c.last_seq);
        if (c.alarm !== undefined) this.#keys.importAlarm(c.state.key, c.alarm);
        this.#evict.keys.use(c.state.key, 0);
      }
      // A worker killed after a checkpoint but before publishing that key's parameters left them
      // behind it: publish every restored key once, so the parameters catch up with the
      // checkpoint even if the key sees no new observation.
      await this.#evict.restoredChunk(cps.map((c) => c.state.key));
    });
    await this.#evict.restored();
    return n;
  }

  /** What `init` did, for the log: `n` checkpoints restored (and set aside, with eviction on). */
  restoredText(n: number): string {
    const aside = this.#s.evictIdleMs !== undefined && n > 0
      ? " (set aside until each key's next observation: idle-key eviction is on)"
      : "";
    return `${n} key checkpoint(s) restored${aside}`;
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
    const timer = setInterval(() => this.#params.publishDue(false), tick);
    // An idle stream still gets its last batches checkpointed and acked within the interval.
    const every = this.#s.checkpointEveryMs ?? 100;
    const flush = setInterval(() => {
      if (this.#fatal === undefined) this.#evict.sweep(this.#committedNo);
      if (this.#barrierLast || this.#submitting || this.#fatal !== undefined) return;
      if (performance.now() - this.#lastBarrierAt < every) return;
      this.#submit([], performance.now(), true).catch((e) => this.#fail(e));
    }, Math.max(5, every / 2));
    try {
      while (true) {
        const { items, closed, firstAt } = await collectBatch(
          this.#source,
          this.#s,
          this.#pipeline,
        );
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
        await this.#params.busy;
        await this.#params.publishDue(true);
      }
    } finally {
      clearInterval(timer);
      clearInterval(flush);
    }
    if (this.#fatal !== undefined) throw this.#fatal;
  }

  async #submit(items: Item[], firstAt: number, forceBarrier = false): Promise<void> {
    this.#submitting = true;
    let full = false;
    try {
      full = await this.#room();
      // Evicted keys come back before the batch's isNew decisions: checked again after every
      // reload (a sweep may evict another of its keys meanwhile), then nothing awaits until the
      // batch is on the engine chain.
      const idle = this.#evict.keys;
      for (let want = idle.evictedIn(items); want.length > 0; want = idle.evictedIn(items)) {
        await this.#evict.reload(want, this.#submitted + 1);
      }
    } catch (e) {
      // A checkpoint that cannot be read: the batch is not processed (its messages are redelivered
      // to the next run).
      this.#fail(e);
      return;
    } finally {
      this.#submitting = false;
    }
    // From here to the push: synchronous, so batches (and timer barriers) keep their order.
    const no = ++this.#submitted;
    const groups: Group[] = [];
    for (const item of items) {
      const decoded = item.decoded;
      if (!decoded.ok) continue;
      const key = decoded.key;
      this.#evict.keys.use(key, no);
      const isNew = item.msg.seq > (this.#keys.lastApplied(key) ?? 0);
      if (isNew) {
        this.#keys.setApplied(key, item.msg.seq);
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
    const work: Promise<EngineResult> = this.#onEngine(async () => {
      const parts: Part[] = [];
      const refused = new Map<Item, string>();
      if (groups.length > 0) {
        await processIsolating(
          this.#engine,
          groups,
          this.#s.dim,
          parts,
          refused,
          this.#s.log,
          this.#s.context,
        );
      }
      const states = learnedKeys.length > 0 ? await this.#engine.exportState(learnedKeys) : [];
      return { parts, refused, states };
    });
    const prepared: Prepared = { items, learned, firstAt };
    // Publication needs only this batch's scores: it does not wait for earlier batches' commits
    // (re-published records are deduplicated by Nats-Msg-Id, so order of commits is all that
    // matters for the guarantees).
    const published = work.then((r) => publishBatch(this.#out, prepared, r));
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
        if (barrier) {
          await this.#commit(batch);
          this.#committedNo = no;
        } else batch.result = await published;
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

  /**
   * Runs `f` with the engine once every engine call submitted before it (batches, their
   * checkpoint exports, parameter snapshots) has finished, and before any submitted after it: the
   * scoring service goes through here, so a request never races a batch.
   */
  async withEngine<T>(f: (engine: ScoringEngine) => Promise<T>, key?: string): Promise<T> {
    // `key` evicted: reloaded first; no await between the last check and the call below.
    while (key !== undefined && this.#evict.keys.isEvicted(key)) {
      await this.#evict.reload([key], this.#submitted + 1);
    }
    return await this.#onEngine(() => f(this.#engine));
  }

  /** Runs `f` on the engine once everything submitted to it before has finished, in order. */
  #onEngine<T>(f: () => Promise<T>): Promise<T> {
    const job = this.#engineChain.then(() => {
      if (this.#evict.importFailed !== undefined) throw this.#evict.importFailed;
      return f();
    });
    this.#engineChain = job.catch(() => {});
    return job;
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
    await commitGroup(this.#out, last, group);
    this.#params.markDirty(last.p.learned?.keys() ?? []);
    this.#inFlight = this.#inFlight.filter((b) => !b.committed);
  }
}
