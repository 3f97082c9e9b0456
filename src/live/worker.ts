/**
 * The live worker, in-process: `startWorker(config)` connects (or starts a local nats-server),
 * sets up streams, consumer and buckets, restores checkpoints, registers the scoring service
 * (`src/nats/score_service.ts`) and runs the {@link LiveLoop} until `stop()`. `src/cli/start.ts` wraps it; the benchmark uses it directly.
 *
 * @module
 */
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { type LiveConfig, topologyFor } from "../config/live_config.ts";
import { createEngine } from "../engine/thread/compute_thread.ts";
import type { ScoringEngine } from "../engine/engine.ts";
import { connectNats } from "../nats/connect.ts";
import { isPortFree, NatsServerProcess } from "../nats/server_process.ts";
import { KvCheckpointStore } from "../nats/checkpoint_store.ts";
import { NatsSink } from "../nats/nats_sink.ts";
import { JetStreamSource } from "../nats/pull_source.ts";
import { startScoreService } from "../nats/score_service.ts";
import { ensureStreams, openBuckets, resetConsumer } from "../nats/topology.ts";
import { serveHttp } from "./http.ts";
import { LiveLoop } from "./loop.ts";
import { LiveMetrics } from "./metrics.ts";
import { NullCheckpointStore } from "./null_checkpoint_store.ts";
import { StandInEngine } from "../engine/stand_in.ts";

/** Options of {@link startWorker}. */
export interface WorkerOptions {
  /** Log sink; default stderr. */
  readonly log?: (line: string) => void;
  /** Use this engine instead of creating one (tests, benchmarks); the worker closes it on stop. */
  readonly engine?: ScoringEngine;
  /**
   * `relay`: no model, no checkpoints, no parameters — pull, parse, publish one record per
   * observation, ack (the `live` benchmark's baseline). Default `model`.
   */
  readonly mode?: "model" | "relay";
}

/** A running worker. */
export interface RunningWorker extends AsyncDisposable {
  /** URL the worker is connected to (the local server's when it started one). */
  readonly url: string;
  readonly metrics: LiveMetrics;
  /** Resolves when the loop ended (after `stop()`), rejects on a fatal error. */
  readonly done: Promise<void>;
  /** Stops pulling, finishes the batches in flight (publish, checkpoint, ack), drains, closes. */
  stop(): Promise<void>;
}

/** Starts the worker; resolves once it is consuming. */
export async function startWorker(
  config: LiveConfig,
  options: WorkerOptions = {},
): Promise<RunningWorker> {
  const log = options.log ?? ((l: string) => console.error(l));
  const metrics = new LiveMetrics();
  const topo = topologyFor(config.prefix);
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) {
      await c().catch((e) => log(`shutdown step failed: ${e}`));
    }
    cleanups.length = 0;
  };
  try {
    let url = config.nats.url;
    if (url === undefined) {
      const port = isPortFree(4222) ? 4222 : -1;
      const server = await NatsServerProcess.start({
        storeDir: join(config.stateDir, "nats"),
        workDir: join(config.stateDir, "nats-run"),
        port,
      });
      cleanups.push(() => server.stop());
      url = server.url;
      log(
        `no NATS URL configured (--nats-url / NATS_URL): started a local nats-server at ${url} ` +
          `(JetStream store ${join(config.stateDir, "nats")}/, stopped on exit)\n` +
          `  publish to it with: deno task publish data/sample.ndjson --server ${url}`,
      );
    }
    log(`connecting to ${url} (retrying until it answers)`);
    const nc: NatsConnection = await connectNats({ ...config.nats, url }, { name: "mvn-worker" });
    cleanups.push(async () => {
      if (!nc.isClosed()) await nc.drain();
    });
    metrics.connected = true;
    watchStatus(nc, metrics, log);
    const jsm = await jetstreamManager(nc);
    await ensureStreams(jsm, topo, log, config.duplicateWindowS * 1e9);
    const buckets = await openBuckets(nc, topo, log);
    const consumerSettings = { durable: config.durable, ackWaitMs: config.ackWaitMs };
    const startSeq = await resetConsumer(jsm, topo, consumerSettings);
    const js = jetstream(nc);
    const consumer = await js.consumers.get(topo.inputStream, config.durable);
    let current = consumer;
    const relay = options.mode === "relay";
    const engine = options.engine ??
      (relay
        ? new StandInEngine(config.head, "zero")
        : await createEngine(config.head, { thread: _engineThread(config.engineThread), log }));
    cleanups.push(() => engine.close());
    metrics.backend = engine.backend;
    log(`engine backend: ${engine.backendReason}`);
    const source = new JetStreamSource(consumer, {
      maxMessages: Math.max(2 * config.batch, 512),
      expiresMs: 1000,
      reset: async () => {
        const from = await resetConsumer(jsm, topo, consumerSettings);
        log(`consumer re-created from sequence ${from}`);
        current = await js.consumers.get(topo.inputStream, config.durable);
        return current;
      },
      log,
    });
    const loop = new LiveLoop(
      engine,
      source,
      new NatsSink(nc, js, buckets.params, config.prefix, log),
      relay ? new NullCheckpointStore() : new KvCheckpointStore(buckets.checkpoints, log),
      {
        dim: config.head.dim,
        batch: config.batch,
        maxWaitMs: config.maxWaitMs,
        paramsEveryMs: relay ? Infinity : config.paramsEveryMs,
        checkpointEveryMs: config.checkpointEveryMs,
        obsPrefix: `${config.prefix}.obs.`,
        maxMessageBytes: config.maxMessageBytes,
        inputStream: topo.inputStream,
        scoreMessages: config.scoreMessages,
        metrics,
        log,
        ...(config.head.head === "conditional"
          ? {
            context: {
              features: config.head.features,
              timed: config.head.time_features.length > 0,
            },
          }
          : {}),
      },
    );
    const restored = await loop.init();
    log(
      `consuming ${topo.obsSubject} (stream ${topo.inputStream}, durable ${config.durable}) from ` +
        `sequence ${startSeq}; ${restored} key checkpoint(s) restored`,
    );
    if (!relay) {
      // The scoring service ($SRV discoverable): answers until the worker stops, before the
      // engine and the connection close (cleanups run in reverse).
      const service = await startScoreService(nc, {
        prefix: config.prefix,
        dim: config.head.dim,
        maxMessageBytes: config.maxMessageBytes,
        withEngine: (f) => loop.withEngine(f),
        log,
        ...(config.head.head === "conditional"
          ? {
            context: {
              features: config.head.features,
              timed: config.head.time_features.length > 0,
            },
          }
          : {}),
      });
      cleanups.push(() => service.stop());
      log(`scoring service 'mvn' answering on ${config.prefix}.svc.score.<key>`);
    }
    const poll = setInterval(async () => {
      try {
        const info = await current.info();
        metrics.consumerPending = info.num_pending;
        metrics.consumerAckPending = info.num_ack_pending;
      } catch {
        // transient: keep the last values
      }
    }, 2000);
    cleanups.push(() => Promise.resolve(clearInterval(poll)));
    if (config.httpPort !== undefined) {
      const http = serveHttp(config.httpPort, metrics, log);
      cleanups.push(() => http.shutdown());
    }
    metrics.ready = true;
    const done = loop.run();
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= (async () => {
        metrics.ready = false;
        loop.stop();
        try {
          await done;
        } finally {
          await cleanup();
        }
      })();
      return stopping;
    };
    // A fatal loop error shuts everything down too.
    done.catch(() => stop().catch(() => {}));
    return { url, metrics, done, stop, [Symbol.asyncDispose]: stop };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

function watchStatus(nc: NatsConnection, metrics: LiveMetrics, log: (l: string) => void): void {
  (async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case "disconnect":
          metrics.connected = false;
          log(`disconnected from ${s.server}; reconnecting`);
          break;
        case "reconnect":
          metrics.connected = true;
          metrics.reconnects++;
          log(`reconnected to ${s.server}`);
          break;
        case "error":
          log(`nats error: ${s.error.message}`);
          break;
        default:
          break;
      }
    }
  })().catch(() => {});
}

function _engineThread(t: LiveConfig["engineThread"]): boolean | "auto" {
  return t === "auto" ? "auto" : t === "thread";
}
