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
import { ConfigError, type LiveConfig, topologyFor } from "../config/live_config.ts";
import { createEngine } from "../engine/thread/compute_thread.ts";
import type { ScoringEngine } from "../engine/engine.ts";
import { connectNats, isWebSocketUrl } from "../nats/connect.ts";
import { dashboardHandler } from "../dashboard/server.ts";
import { isPortFree, NatsServerProcess } from "../nats/server_process.ts";
import { KvCheckpointStore } from "../nats/checkpoint_store.ts";
import { KvBatchWriter } from "../nats/kv_writer.ts";
import { NatsSink } from "../nats/nats_sink.ts";
import { JetStreamSource } from "../nats/pull_source.ts";
import { type ScoreServiceSettings, startScoreService } from "../nats/score_service.ts";
import { forwardRequest, OwnerEndpoints, ownerRoute } from "../nats/score_routing.ts";
import { ensureStreams, openBuckets, openLeaseBucket, resetConsumer } from "../nats/topology.ts";
import { partitionMapping, probePartitions } from "../nats/partitions.ts";
import { PartitionedWorker } from "./partitioned.ts";
import { contextOf, loopSettingsOf } from "./context.ts";
import { serveHttp } from "./http.ts";
import { LiveLoop } from "./loop.ts";
import { LiveMetrics } from "./metrics.ts";
import { NullCheckpointStore } from "./null_checkpoint_store.ts";
import { StandInEngine } from "../engine/stand_in.ts";

/**
 * How long a scoring request forwarded to the owner of its key's partition waits for the reply
 * (a score-only batch waits for the batch in progress on that partition, rarely near this).
 */
const SCORE_FORWARD_TIMEOUT_MS = 5000;

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
  /** This worker's id in the lease bucket; default `<hostname>-<pid>-<random>`. */
  readonly workerId?: string;
}

/** A running worker. */
export interface RunningWorker extends AsyncDisposable {
  /** URL the worker is connected to (the local server's when it started one). */
  readonly url: string;
  /** NATS WebSocket URL the dashboard page uses (the local server's listener when it started one). */
  readonly wsUrl?: string;
  /** Port of the http endpoint (dashboard, health, metrics) when `--http` was given. */
  readonly httpPort?: number;
  readonly metrics: LiveMetrics;
  /** Resolves when the loop ended (after `stop()`), rejects on a fatal error. */
  readonly done: Promise<void>;
  /** Stops pulling, finishes the batches in flight (publish, checkpoint, ack), drains, closes. */
  stop(): Promise<void>;
  /**
   * For a process that exits at once instead of {@link stop} (a second Ctrl-C): stops the local
   * nats-server the worker started, if any (it runs in its own session and would outlive it).
   */
  abort(): void;
  /** Partitioned mode (the server maps keys to partitions): the partitions it consumes now. */
  readonly partitions?: () => number[];
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
  let localServer: NatsServerProcess | undefined;
  const abort = () => localServer?.terminate();
  const cleanup = async () => {
    for (const c of cleanups.reverse()) {
      await c().catch((e) => log(`shutdown step failed: ${e}`));
    }
    cleanups.length = 0;
  };
  try {
    let url = config.nats.url;
    let wsUrl = config.wsUrl ?? (url !== undefined && isWebSocketUrl(url) ? url : undefined);
    if (url === undefined) {
      const port = isPortFree(4222) ? 4222 : -1;
      // WebSocket on loopback too, for the dashboard page in the browser.
      const server = await NatsServerProcess.start({
        storeDir: join(config.stateDir, "nats"),
        workDir: join(config.stateDir, "nats-run"),
        port,
        websocket: true,
        wsPort: isPortFree(4223) ? 4223 : -1,
        extraConfig: partitionMapping(config.prefix, config.partitions),
        // Its own session: a terminal's Ctrl-C reaches only the worker, which finishes what is in
        // flight (publish, checkpoint, ack, hand partitions over) and then stops the server.
        detached: true,
      });
      cleanups.push(() => server.stop());
      localServer = server;
      url = server.url;
      wsUrl ??= server.wsUrl;
      log(
        `no NATS URL configured (--nats-url / NATS_URL): started a local nats-server at ${url} ` +
          `(JetStream store ${join(config.stateDir, "nats")}/, WebSocket ${server.wsUrl}, ` +
          `${config.partitions} key partitions, stopped on exit)\n` +
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
    await ensureStreams(jsm, topo, log, config.duplicateWindowS * 1e9, config.replicas);
    const buckets = await openBuckets(nc, topo, log, config.replicas);
    let probe: Awaited<ReturnType<typeof probePartitions>> = { mode: "none" };
    for (let attempt = 1; options.mode !== "relay" && attempt <= 3; attempt++) {
      probe = await probePartitions(nc, config.prefix, config.partitions);
      // Nothing came back (a slow server, a cluster still forming): ask again.
      if (probe.mode !== "mismatch" || !probe.detail.startsWith("no probe")) break;
    }
    if (probe.mode === "mismatch") {
      throw new ConfigError(
        `expected the server to map ${topo.obsSubject.replace(">", "<key>")} to ` +
          `${config.prefix}.obs.<partition>.<key> with ${config.partitions} partitions ` +
          `(--partitions), found otherwise: ${probe.detail}. Use the same count as the ` +
          `server's mapping, or put this in every server's configuration ` +
          `(deploy/nats/partitions.conf):\n${partitionMapping(config.prefix, config.partitions)}`,
      );
    }
    if (probe.mode === "partitioned") {
      const engineThread = _engineThread(config.engineThread);
      // The backend is chosen once, here; every partition's engine (one each) uses it.
      const chosen = options.engine ??
        await createEngine(config.head, { thread: engineThread, log });
      log(`engine backend: ${chosen.backendReason} (one engine per partition)`);
      const head = { ...config.head, backend: chosen.backend };
      await chosen.close();
      const leases = await openLeaseBucket(nc, topo, config.leaseMs, config.replicas);
      const js = jetstream(nc);
      const workerId = options.workerId ??
        `${Deno.hostname()}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
      // The scoring service: a request for a key of a partition owned elsewhere is forwarded to
      // the owner's internal endpoint, which only the lease holder serves (score_routing.ts).
      const scoring: ScoreServiceSettings = {
        prefix: config.prefix,
        dim: config.head.dim,
        maxMessageBytes: config.maxMessageBytes,
        withEngine: (key, f) => part.withEngine(key, f),
        route: (key) =>
          part.owns(key) ? undefined : (request) =>
            forwardRequest(
              nc,
              ownerRoute(config.prefix, config.partitions, key),
              request,
              SCORE_FORWARD_TIMEOUT_MS,
            ),
        log,
        ...contextOf(config),
      };
      const owners = options.mode === "relay" ? undefined : new OwnerEndpoints(nc, scoring);
      const part: PartitionedWorker = new PartitionedWorker({
        config,
        topo,
        js,
        jsm,
        checkpoints: buckets.checkpoints,
        checkpointWriter: new KvBatchWriter(nc),
        leases,
        sink: new NatsSink(nc, js, buckets.params, config.prefix, log),
        metrics,
        workerId,
        engine: () => createEngine(head, { thread: engineThread, log: () => {} }),
        log,
        owners,
      });
      log(
        `partitioned: ${config.partitions} partitions (${config.prefix}.obs.<N>.<key>), ` +
          `worker ${workerId}, leases in ${topo.leaseBucket} (${config.leaseMs} ms)`,
      );
      await part.start();
      if (options.mode !== "relay") {
        const service = await startScoreService(nc, scoring);
        cleanups.push(() => service.stop());
        log(
          `scoring service 'mvn' answering on ${config.prefix}.svc.score.<key> (keys of other ` +
            `workers' partitions forwarded to their owner)`,
        );
      }
      const httpPort = _serveHttp(config, wsUrl, metrics, log, cleanups);
      metrics.ready = true;
      let resolveDone: () => void = () => {};
      const done = new Promise<void>((r) => (resolveDone = r));
      let stopping: Promise<void> | undefined;
      const stop = () => {
        stopping ??= (async () => {
          metrics.ready = false;
          try {
            await part.stop();
          } finally {
            await cleanup();
            resolveDone();
          }
        })();
        return stopping;
      };
      return {
        url,
        wsUrl,
        httpPort,
        metrics,
        done,
        stop,
        abort,
        partitions: () => part.owned,
        [Symbol.asyncDispose]: stop,
      };
    }
    log(
      `unpartitioned: the server does not map ${topo.obsSubject} to partitions, so only one ` +
        `worker may consume (durable ${config.durable}); to run several, add ` +
        `deploy/nats/partitions.conf to every server's configuration`,
    );
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
      relay ? new NullCheckpointStore() : new KvCheckpointStore(buckets.checkpoints, log, {
        writer: new KvBatchWriter(nc),
      }),
      {
        ...loopSettingsOf(config, {
          obsPrefix: `${config.prefix}.obs.`,
          inputStream: topo.inputStream,
          metrics,
          log,
          paramsEveryMs: relay ? Infinity : config.paramsEveryMs,
        }),
        // No checkpoints to reload from in relay mode.
        ...(relay ? { evictIdleMs: undefined } : {}),
      },
    );
    const restored = await loop.init();
    log(
      `consuming ${topo.obsSubject} (stream ${topo.inputStream}, durable ${config.durable}) from ` +
        `sequence ${startSeq}; ${loop.restoredText(restored)}`,
    );
    if (!relay) {
      // The scoring service ($SRV discoverable): answers until the worker stops, before the
      // engine and the connection close (cleanups run in reverse).
      const service = await startScoreService(nc, {
        prefix: config.prefix,
        dim: config.head.dim,
        maxMessageBytes: config.maxMessageBytes,
        withEngine: (key, f) => loop.withEngine(f, key),
        log,
        ...contextOf(config),
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
    const httpPort = _serveHttp(config, wsUrl, metrics, log, cleanups);
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
    return { url, wsUrl, httpPort, metrics, done, stop, abort, [Symbol.asyncDispose]: stop };
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

/** The dashboard, health and metrics on `--http`; returns the port it listens on. */
function _serveHttp(
  config: LiveConfig,
  wsUrl: string | undefined,
  metrics: LiveMetrics,
  log: (l: string) => void,
  cleanups: (() => Promise<void>)[],
): number | undefined {
  if (config.httpPort === undefined) return undefined;
  const dashboard = dashboardHandler({
    wsUrl,
    prefix: config.prefix,
    alpha: config.head.alpha,
    user: config.nats.user,
    password: config.nats.password,
    token: config.nats.token,
  });
  const http = serveHttp(config.httpPort, metrics, log, dashboard);
  cleanups.push(() => http.shutdown());
  if (wsUrl === undefined) {
    log(
      "dashboard: no NATS WebSocket URL known (--ws-url / MVN_WS_URL); open the page with " +
        "?nats=ws://host:port",
    );
  }
  return http.port;
}
