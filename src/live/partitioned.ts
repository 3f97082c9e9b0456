/**
 * The partitioned worker: partitions come and go with their leases ({@link LeaseManager}); each
 * owned partition N runs its own {@link LiveLoop} over its own durable pull consumer
 * (`<durable>-p<N>`, filter `<prefix>.obs.<N>.>`), its own engine (holding only that
 * partition's keys, so a partition handed over leaves nothing behind) and its own checkpoints
 * (KV keys `p<N>.<key>`, restored when the partition is acquired). Outputs go to one shared sink.
 *
 * @module
 */
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { LiveConfig, Topology } from "../config/live_config.ts";
import type { ScoringEngine } from "../engine/engine.ts";
import { PartitionNotOwnedError, partitionOf } from "../nats/partitions.ts";
import { KvCheckpointStore } from "../nats/checkpoint_store.ts";
import type { KvBatchWriter } from "../nats/kv_writer.ts";
import { LeaseLostError, LeaseManager } from "../nats/leases.ts";
import { JetStreamSource } from "../nats/pull_source.ts";
import { resetConsumer } from "../nats/topology.ts";
import { LiveLoop } from "./loop.ts";
import { loopSettingsOf } from "./context.ts";
import type { LiveMetrics } from "./metrics.ts";
import type { OutputSink } from "./ports.ts";

/** What the partitioned worker needs from `startWorker`. */
export interface PartitionedDeps {
  readonly config: LiveConfig;
  readonly topo: Topology;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly checkpoints: KV;
  /** Batches the partitions' checkpoint writes (`KvCheckpointStore`'s `writer`). */
  readonly checkpointWriter?: KvBatchWriter;
  readonly leases: KV;
  readonly sink: OutputSink;
  readonly metrics: LiveMetrics;
  readonly workerId: string;
  /** A fresh engine for one partition. */
  readonly engine: () => Promise<ScoringEngine>;
  readonly log: (line: string) => void;
  /**
   * The scoring service's internal per-partition endpoints (`OwnerEndpoints`): served while the
   * partition's loop runs, so forwarded requests reach only its owner.
   */
  readonly owners?: { serve(partition: number): void; unserve(partition: number): void };
}

interface Partition {
  /** Set when the lease was lost: the fence throws, nothing more is committed. */
  abandoned: boolean;
  /** Set once a release was asked for (the loop's end is then expected). */
  releasing: boolean;
  started: Promise<void>;
  loop?: LiveLoop;
  engine?: ScoringEngine;
  done?: Promise<void>;
}

/** Partitions of this worker, driven by its leases. */
export class PartitionedWorker {
  readonly #d: PartitionedDeps;
  readonly #parts = new Map<number, Partition>();
  readonly leases: LeaseManager;

  constructor(deps: PartitionedDeps) {
    this.#d = deps;
    this.leases = new LeaseManager({
      kv: deps.leases,
      workerId: deps.workerId,
      partitions: deps.config.partitions,
      leaseMs: deps.config.leaseMs,
      log: deps.log,
      hooks: {
        acquired: (n) => this.#acquire(n),
        release: (n, graceful) => this.#release(n, graceful),
      },
    });
  }

  /** Partitions currently consumed. */
  get owned(): number[] {
    return this.leases.owned;
  }

  /** True while `key`'s partition runs here (its requests are scored here, not forwarded). */
  owns(key: string): boolean {
    const part = this.#parts.get(partitionOf(key, this.#d.config.partitions));
    return part?.done !== undefined && !part.releasing;
  }

  /**
   * Runs `f` with the engine of the partition that holds `key`, in that partition's loop order
   * (the scoring service). A partition this worker does not own is a
   * {@link PartitionNotOwnedError}.
   */
  withEngine<T>(key: string, f: (engine: ScoringEngine) => Promise<T>): Promise<T> {
    const n = partitionOf(key, this.#d.config.partitions);
    const loop = this.#parts.get(n)?.loop;
    if (loop === undefined) {
      return Promise.reject(
        new PartitionNotOwnedError(
          n,
          `expected key '${key}' in a partition this worker owns, found partition ${n} owned ` +
            `elsewhere or by nobody now (a failover or rebalance in progress): retry`,
        ),
      );
    }
    return loop.withEngine(f, key);
  }

  start(): Promise<void> {
    return this.leases.start();
  }

  /** Hands every partition over (finishing what is in flight) and stops. */
  stop(): Promise<void> {
    return this.leases.stop();
  }

  #acquire(n: number): Promise<void> {
    const part: Partition = { abandoned: false, releasing: false, started: Promise.resolve() };
    this.#parts.set(n, part);
    part.started = this.#open(n, part);
    return part.started;
  }

  async #open(n: number, part: Partition): Promise<void> {
    const { config, topo, js, jsm, log } = this.#d;
    const durable = `${config.durable}-p${n}`;
    const settings = {
      durable,
      ackWaitMs: config.ackWaitMs,
      filterSubject: `${config.prefix}.obs.${n}.>`,
    };
    const fence = () => {
      if (part.abandoned) throw new LeaseLostError(`partition ${n}: lease lost; abandoning it`);
      this.leases.fence(n);
    };
    const engine = await this.#d.engine();
    part.engine = engine;
    try {
      // Re-creating the consumer deletes the old one: only while the lease is fresh, so that a
      // worker whose lease lapsed while starting never deletes its successor's consumer.
      fence();
      const startSeq = await resetConsumer(jsm, topo, settings);
      fence();
      const consumer = await js.consumers.get(topo.inputStream, durable);
      const source = new JetStreamSource(consumer, {
        maxMessages: Math.max(2 * config.batch, 512),
        expiresMs: 1000,
        reset: async () => {
          fence();
          const from = await resetConsumer(jsm, topo, settings);
          log(`partition ${n}: consumer re-created from sequence ${from}`);
          return await js.consumers.get(topo.inputStream, durable);
        },
        log,
      });
      const loop = new LiveLoop(
        engine,
        source,
        this.#d.sink,
        new KvCheckpointStore(this.#d.checkpoints, log, {
          keyPrefix: `p${n}.`,
          fence,
          writer: this.#d.checkpointWriter,
        }),
        loopSettingsOf(config, {
          obsPrefix: `${config.prefix}.obs.${n}.`,
          inputStream: topo.inputStream,
          metrics: this.#d.metrics,
          log,
          fence,
        }),
      );
      part.loop = loop;
      let restored: number;
      try {
        restored = await loop.init();
      } catch (e) {
        await source.close();
        throw e;
      }
      if (part.releasing) {
        // Released while starting: nothing was consumed yet.
        await source.close();
        throw new LeaseLostError(`partition ${n}: released while starting`);
      }
      part.done = loop.run();
      this.#d.owners?.serve(n);
      part.done.catch((e) => {
        this.#d.owners?.unserve(n);
        if (part.releasing) return;
        log(`partition ${n}: stopped (${e instanceof Error ? e.message : e}); handing it back`);
        this.#parts.delete(n);
        engine.close().catch(() => {});
        this.leases.drop(n).catch(() => {});
      });
      log(
        `partition ${n}: consuming ${settings.filterSubject} (durable ${durable}) from sequence ` +
          `${startSeq}; ${loop.restoredText(restored)}`,
      );
    } catch (e) {
      part.loop = undefined;
      await engine.close().catch(() => {});
      part.engine = undefined;
      if (this.#parts.get(n) === part) this.#parts.delete(n);
      throw e;
    }
  }

  async #release(n: number, graceful: boolean): Promise<void> {
    const part = this.#parts.get(n);
    if (part === undefined) return;
    part.releasing = true;
    // Forwarded requests stop coming here first; those in progress still finish below.
    this.#d.owners?.unserve(n);
    if (!graceful) part.abandoned = true;
    await part.started.catch(() => {});
    if (part.loop === undefined) return;
    part.loop.stop();
    try {
      await part.done;
      this.#d.log(`partition ${n}: handed over`);
    } catch (e) {
      this.#d.log(`partition ${n}: abandoned (${e instanceof Error ? e.message : e})`);
    } finally {
      if (this.#parts.get(n) === part) this.#parts.delete(n);
      await part.engine?.close().catch(() => {});
    }
  }
}
