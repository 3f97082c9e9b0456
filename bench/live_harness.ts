/**
 * The fixture every live measurement runs in: a fresh nats-server with the worker's streams, the
 * worker under test, the load process (`live_load.ts`) and a {@link Teardown} that stops them all
 * and removes the store, also when the measurement fails. Apart from the measurements
 * (live_bench.ts) so that each of them reads as what it measures.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { type JetStreamClient, type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { V8_FLAGS_ARG } from "../src/config/v8_flags.ts";
import {
  type LiveConfig,
  resolveLiveConfig,
  type ScoreMessages,
  type Topology,
  topologyFor,
} from "../src/config/live_config.ts";
import type { Publication } from "../src/nats/acked_publisher.ts";
import { publishAllAcked } from "../src/nats/publish_retry.ts";
import { type RunningWorker, startWorker } from "../src/live/worker.ts";
import { connectNats } from "../src/nats/connect.ts";
import { NatsServerProcess } from "../src/nats/server_process.ts";
import { ensureStreams } from "../src/nats/topology.ts";
import type { LiveMessages, LoadParams } from "./live_load.ts";

/** Cleanups run in reverse order, each one even when an earlier one failed. */
export class Teardown implements AsyncDisposable {
  readonly #steps: (() => Promise<unknown>)[] = [];
  constructor(private readonly log: (line: string) => void) {}
  add(step: () => Promise<unknown>): void {
    this.#steps.push(step);
  }
  async [Symbol.asyncDispose](): Promise<void> {
    for (const step of this.#steps.reverse()) {
      await step().catch((e) => this.log(`live: teardown step failed: ${e}`));
    }
    this.#steps.length = 0;
  }
}

/** A fresh nats-server and a bench connection to it, both closed by the teardown. */
async function _freshServer(
  td: Teardown,
): Promise<{ url: string; dir: string; nc: NatsConnection; serverPid?: number }> {
  const dir = await Deno.makeTempDir({ prefix: "mvn-bench-live-" });
  td.add(() => Deno.remove(dir, { recursive: true }));
  const server = await NatsServerProcess.start({
    storeDir: join(dir, "store"),
    workDir: join(dir, "run"),
    port: -1,
    readyTimeoutMs: 60_000,
  });
  td.add(() => server.stop());
  const nc = await connectNats({ url: server.url }, {
    name: "mvn-bench",
    waitOnFirstConnect: false,
    maxReconnectAttempts: 0,
  });
  td.add(async () => {
    if (!nc.isClosed()) await nc.drain();
  });
  return { url: server.url, dir, nc, serverPid: server.pid };
}

function _config(
  url: string,
  dir: string,
  prefix: string,
  scoreMessages: ScoreMessages,
): LiveConfig {
  // Flags as `deno task start` would get them; an empty environment so that NATS_URL, MVN_BATCH
  // and friends of the caller's shell do not change what is measured.
  return resolveLiveConfig(
    {
      "nats-url": url,
      backend: "cpu",
      prefix,
      "state-dir": join(dir, "state"),
      "score-messages": scoreMessages,
    },
    {},
  );
}

/** Publishes `messages` messages into the input stream and waits for every acknowledgement. */
export async function preload(
  js: JetStreamClient,
  gen: LiveMessages,
  messages: number,
  log: (line: string) => void,
): Promise<void> {
  const chunk = 8192;
  const hdr = gen.headers;
  for (let start = 0; start < messages; start += chunk) {
    const pubs: Publication[] = [];
    for (let i = start; i < Math.min(messages, start + chunk); i++) {
      const m = gen.next();
      pubs.push({ subject: m.subject, data: m.data, msgID: `bench-${i}`, headers: hdr });
    }
    await publishAllAcked(js, pubs, log);
  }
}

/** Messages stored in `stream`; 0 while it does not exist yet (the worker creates it). */
export async function storedCount(jsm: JetStreamManager, stream: string): Promise<number> {
  try {
    return (await jsm.streams.info(stream)).state.messages;
  } catch {
    return 0;
  }
}

export async function streamCount(nc: NatsConnection, stream: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(stream)).state.messages;
}

/** Rejects when the worker's loop fails, so that a wait never outlives a dead worker. */
function _failed(worker: RunningWorker, lines: readonly string[]): Promise<never> {
  return worker.done.then(
    () => Promise.reject(new Error("expected the worker to keep running, it stopped")),
    (e) =>
      Promise.reject(
        new Error(`the worker failed: ${e}\n  ${lines.slice(-8).join("\n  ")}`, { cause: e }),
      ),
  );
}

/** A fresh server holding the worker's streams for `prefix`, and the worker's configuration. */
export async function freshTopology(
  td: Teardown,
  prefix: string,
  scoreMessages: ScoreMessages = "row",
): Promise<
  { url: string; nc: NatsConnection; topo: Topology; config: LiveConfig; serverPid?: number }
> {
  const { url, dir, nc, serverPid } = await _freshServer(td);
  const topo = topologyFor(prefix);
  await ensureStreams(await jetstreamManager(nc), topo);
  return { url, nc, topo, config: _config(url, dir, prefix, scoreMessages), serverPid };
}

/** The worker under test (stopped by the teardown), and a promise rejecting if its loop ends. */
export async function startBenchWorker(
  td: Teardown,
  config: LiveConfig,
  mode: "model" | "relay",
): Promise<{ worker: RunningWorker; failed: Promise<never> }> {
  const lines: string[] = [];
  const worker = await startWorker(config, { mode, log: (l) => lines.push(l) });
  td.add(() => worker.stop());
  const failed = _failed(worker, lines);
  failed.catch(() => {});
  return { worker, failed };
}

export function logRun(
  log: (line: string) => void,
  what: string,
  total: number,
  seconds: number,
  m: RunningWorker["metrics"],
): void {
  log(
    `live ${what}: ${total} obs in ${seconds.toFixed(2)} s, ${m.batches} batches ` +
      `(mean ${(m.batchSize.sum / Math.max(1, m.batchSize.count)).toFixed(1)} obs), ` +
      `${m.checkpointWrites} checkpoint writes`,
  );
}

/**
 * Runs `live_load.ts` with `params` in its own process (killed by the teardown if still running)
 * and returns the JSON line it prints.
 */
export async function runLoad(params: LoadParams, td: Teardown): Promise<unknown> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      // As `deno task start` runs the worker (src/config/v8_flags.ts).
      V8_FLAGS_ARG,
      "--config",
      fromFileUrl(new URL("../deno.json", import.meta.url)),
      fromFileUrl(new URL("./live_load.ts", import.meta.url)),
      JSON.stringify(params),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  td.add(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    return child.status;
  });
  const out = await child.output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();
  if (!out.success) {
    throw new Error(`live ${params.format}: the load process failed: ${text(out.stderr)}`);
  }
  return JSON.parse(text(out.stdout).split("\n").at(-1) ?? "");
}
