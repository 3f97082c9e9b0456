/**
 * Live section of the benchmark, per message format, through a local nats-server: the highest
 * sustained obs/s from publish to acknowledged score record for the real worker (`startWorker`, cpu
 * backend, engine in-process as `--engine-thread auto` puts it) beside the bare relay (`mode: "relay"`, same consumer
 * settings), with a load process publishing as fast as the scores keep up; the worker's backlog
 * drain rate (a preloaded stream: its catch-up speed after an outage); then the latency from
 * publish to score at half the sustained rate.
 *
 * Every measurement gets its own nats-server (loopback, free port, temp store) so that streams,
 * checkpoints and the server's caches of one run never reach the next; worker, connection and
 * server are stopped and the store removed even when a measurement fails.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { jetstream, type JetStreamClient, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import {
  type LatencyRow,
  LIVE_FORMATS,
  type LiveFormat,
  type LiveRow,
  type LiveSoakResult,
} from "./schema.ts";
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
import { SteadyRate } from "./timing.ts";
import {
  LIVE_PER_MESSAGE,
  LiveMessages,
  type LoadParams,
  LoadResult,
  SaturateResult,
} from "./live_load.ts";

/** A measured configuration: the message format and the worker's `--score-messages`. */
export interface LiveVariant {
  readonly format: LiveFormat;
  readonly scoreMessages: ScoreMessages;
}

/**
 * The variants of the live section: every format with a score message per observation (the
 * default), then the multi-row formats with one score message per input message.
 */
export const LIVE_VARIANTS: readonly LiveVariant[] = [
  ...LIVE_FORMATS.map((format) => ({ format, scoreMessages: "row" as const })),
  { format: "array", scoreMessages: "message" },
  { format: "f32", scoreMessages: "message" },
];

/** Score records per stored score message: the multi-row formats in `message` mode hold 256. */
export function recordsPerScoreMessage(v: LiveVariant): number {
  return v.scoreMessages === "message" && v.format !== "json" ? LIVE_PER_MESSAGE : 1;
}

/**
 * Observations the saturating load may be ahead of the stored scores: `window`, or 4× for one
 * score message per input message (at their rates a round trip holds ~4× the observations, and
 * `window` ahead left both worker and relay waiting for input).
 */
export function loadWindow(v: LiveVariant, window: number): number {
  return recordsPerScoreMessage(v) > 1 ? 4 * window : window;
}

/** Sizes of the live section. */
export interface LiveBenchOptions {
  readonly variants: readonly LiveVariant[];
  /** Observations per throughput measurement, per format. */
  readonly observations: Readonly<Record<LiveFormat, number>>;
  readonly keys: number;
  readonly dim: number;
  /** Untimed publishing before the latency samples are taken (JIT, first fits of every key). */
  readonly latencyWarmMs: number;
  /** Publishing time whose observations are the latency samples. */
  readonly latencyMs: number;
  /** Throughput runs per mode (relay, worker, alternating); the best of each counts. */
  readonly rounds: number;
  /** Observations published but not yet scored, at most, in a throughput run. */
  readonly window: number;
}

/** Sizes of `deno task bench` (full) and `--quick`. */
export function liveBenchSizes(quick: boolean): LiveBenchOptions {
  return quick
    ? {
      variants: LIVE_VARIANTS,
      observations: { json: 1_000, array: 5_120, f32: 5_120 },
      keys: 10,
      dim: 3,
      latencyWarmMs: 150,
      latencyMs: 300,
      rounds: 1,
      window: 2_048,
    }
    : {
      variants: LIVE_VARIANTS,
      observations: { json: 40_000, array: 128_000, f32: 128_000 },
      keys: 10,
      dim: 3,
      // A fresh worker and server: the first seconds pay for JIT warm-up and every key's first
      // fits (a backlog built in the first second took about another to drain at half load).
      latencyWarmMs: 2500,
      // Key 0's messages are the samples: with 256 records each, 6 s held about 70 messages at
      // half load and the p99 was the slowest one's; 15 s hold about 180.
      latencyMs: 15_000,
      // Best of three: one run of the relay or the worker on this shared 2-core box can be off by
      // ±30 % by itself, and with two rounds the ratio still swung 0.66–1.22 between runs.
      rounds: 3,
      window: 16_384,
    };
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Cleanups run in reverse order, each one even when an earlier one failed. */
class _Teardown implements AsyncDisposable {
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
  td: _Teardown,
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
async function _preload(
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

async function _streamCount(nc: NatsConnection, stream: string): Promise<number> {
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
async function _freshTopology(
  td: _Teardown,
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
async function _startWorker(
  td: _Teardown,
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

function _logRun(
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
 * obs/s of one worker (`model` or `relay`) draining a preloaded input stream: score records
 * stored in the scores stream ÷ time, over the last 80 % of them.
 */
export async function drainRate(
  variant: LiveVariant,
  mode: "model" | "relay",
  o: LiveBenchOptions,
  log: (line: string) => void,
): Promise<{ obsPerS: number; total: number }> {
  await using td = new _Teardown(log);
  const { format } = variant;
  const prefix = `bench.${mode}`;
  const { nc, topo, config } = await _freshTopology(td, prefix, variant.scoreMessages);
  const per = recordsPerScoreMessage(variant);
  const gen = new LiveMessages(format, prefix, o.dim, o.keys);
  const messages = Math.max(1, Math.round(o.observations[format] / gen.perMessage));
  const total = messages * gen.perMessage;
  await _preload(jetstream(nc), gen, messages, log);
  const { worker, failed } = await _startWorker(td, config, mode);
  const rate = new SteadyRate(total);
  const deadline = performance.now() + 300_000;
  let count = 0;
  while (count < total) {
    if (performance.now() > deadline) {
      throw new Error(
        `live ${format} ${mode}: expected ${total} score records within 300 s, found ${count}`,
      );
    }
    // Polling at 10 ms bounds the error of the end time to < 1 % of a multi-second run.
    await Promise.race([delay(10), failed]);
    count = per * await Promise.race([_streamCount(nc, topo.scoresStream), failed]);
    rate.observe(count);
  }
  const tEnd = performance.now();
  _logRun(log, `${format} ${mode} (drain)`, total, rate.seconds(tEnd), worker.metrics);
  if (count > total) {
    throw new Error(`live ${format} ${mode}: expected ${total} score records, found ${count}`);
  }
  return { obsPerS: rate.perSecond(tEnd), total };
}

/**
 * Runs `live_load.ts` with `params` in its own process (killed by the teardown if still running)
 * and returns the JSON line it prints.
 */
async function _runLoad(params: LoadParams, td: _Teardown): Promise<unknown> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      // As `deno task start` runs the worker (see deno.json): without it V8 pretenured the
      // short-lived message objects and every scavenge took ~10 ms.
      "--v8-flags=--no-allocation-site-pretenuring",
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

/**
 * The highest sustained obs/s from publish to acknowledged score of one worker (`model` or
 * `relay`): a load process publishes at most `o.window` observations ahead of the score records
 * stored, so the worker never waits for input while publishing, ingest and scoring share the box.
 */
export async function sustainedRate(
  variant: LiveVariant,
  mode: "model" | "relay",
  o: LiveBenchOptions,
  log: (line: string) => void,
): Promise<{ obsPerS: number; total: number }> {
  await using td = new _Teardown(log);
  const { format } = variant;
  const prefix = `bench.${mode}`;
  const { url, topo, config } = await _freshTopology(td, prefix, variant.scoreMessages);
  const { worker, failed } = await _startWorker(td, config, mode);
  const out = SaturateResult.parse(
    await Promise.race([
      _runLoad({
        mode: "saturate",
        url,
        prefix,
        format,
        dim: o.dim,
        keys: o.keys,
        scoresStream: topo.scoresStream,
        recordsPerMessage: recordsPerScoreMessage(variant),
        observations: o.observations[format],
        window: loadWindow(variant, o.window),
      }, td),
      failed,
    ]),
  );
  _logRun(log, `${format} ${mode}`, out.observations, out.seconds, worker.metrics);
  return { obsPerS: out.obs_per_s, total: out.observations };
}

/**
 * Latency from publish to score record at `rate` obs/s: the real worker runs here; the paced
 * publisher and the score subscriber run in their own process (`live_load.ts`).
 */
export async function latencyAt(
  variant: LiveVariant,
  rate: number,
  o: LiveBenchOptions,
  log: (line: string) => void,
  probe?: (phase: "warm" | "end", worker: RunningWorker, serverPid?: number) => void,
  sample?: { everyMs: number; fn: (worker: RunningWorker, serverPid?: number) => void },
): Promise<LoadResult> {
  await using td = new _Teardown(log);
  const prefix = "bench.latency";
  const { url, config, serverPid } = await _freshTopology(td, prefix, variant.scoreMessages);
  const { worker, failed } = await _startWorker(td, config, "model");
  const params: LoadParams = {
    mode: "paced",
    url,
    prefix,
    format: variant.format,
    recordsPerMessage: recordsPerScoreMessage(variant),
    dim: o.dim,
    keys: o.keys,
    rate,
    warmMs: o.latencyWarmMs,
    measureMs: o.latencyMs,
    drainMs: 120_000,
  };
  const run = _runLoad(params, td);
  const warmTimer = setTimeout(() => probe?.("warm", worker, serverPid), o.latencyWarmMs);
  td.add(() => Promise.resolve(clearTimeout(warmTimer)));
  if (sample !== undefined) {
    const every = setInterval(() => sample.fn(worker, serverPid), sample.everyMs);
    td.add(() => Promise.resolve(clearInterval(every)));
  }
  const out = await Promise.race([run, failed]);
  probe?.("end", worker, serverPid);
  return LoadResult.parse(out);
}
/**
 * Live soak: the worker (cpu, `--engine-thread auto`) under paced one-observation JSON messages
 * at half its sustained rate for `minutes`; RSS of this process (which hosts the worker) and of the
 * nats-server sampled every 2 s, and the publish → score latency over the last nine tenths.
 */
export async function soakLive(
  minutes: number,
  log: (line: string) => void,
): Promise<LiveSoakResult> {
  const o = liveBenchSizes(false);
  const json: LiveVariant = { format: "json", scoreMessages: "row" };
  const { obsPerS } = await sustainedRate(json, "model", o, log);
  const rate = obsPerS / 2;
  const totalMs = minutes * 60_000;
  log(`soak: live worker ${minutes} min at ${Math.round(rate)} obs/s (half its sustained rate)`);
  const t0 = performance.now();
  const samples: { at: number; rss: number; server: number }[] = [];
  let observations = 0;
  const lat = await latencyAt(
    json,
    rate,
    { ...o, latencyWarmMs: totalMs / 10, latencyMs: totalMs - totalMs / 10 },
    log,
    (phase, worker) => {
      if (phase === "end") observations = worker.metrics.observations;
    },
    {
      everyMs: 2000,
      fn: (_worker, serverPid) => {
        samples.push({
          at: performance.now() - t0,
          rss: Deno.memoryUsage().rss / 2 ** 20,
          server: _rssMb(serverPid),
        });
      },
    },
  );
  // RSS saws up and down by tens of MB between collections: troughs compare like with like.
  const window = (from: number, to: number) =>
    samples.filter((x) => x.at >= from * totalMs && x.at < to * totalMs);
  const low = (xs: { rss: number }[]) => Math.min(...xs.map((x) => x.rss));
  const early = window(0.1, 0.2), late = window(0.9, 2);
  if (early.length === 0 || late.length === 0) {
    throw new Error(
      `soak: expected RSS samples early and late in the run, found ${samples.length}`,
    );
  }
  return {
    minutes,
    obs_per_s: rate,
    obs: observations,
    rss_start_mb: low(early),
    rss_end_mb: low(late),
    rss_max_mb: Math.max(...window(0.1, 2).map((x) => x.rss)),
    server_rss_start_mb: early[0].server,
    server_rss_end_mb: late[late.length - 1].server,
    p50_ms: lat.p50_ms,
    p99_ms: lat.p99_ms,
  };
}

/** Resident set of a process in MB (0 when unknown or gone). */
function _rssMb(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m === null ? 0 : Number(m[1]) / 1024;
  } catch {
    return 0;
  }
}

/** Runs the live section: per format, relay, model, then latency at half the model's rate. */
export async function benchLive(
  o: LiveBenchOptions,
  log: (line: string) => void,
): Promise<LiveRow[]> {
  const rows: LiveRow[] = [];
  for (const variant of o.variants) {
    const { format, scoreMessages } = variant;
    const n = o.observations[format];
    const name = scoreMessages === "row" ? format : `${format}, --score-messages message`;
    // Alternating relay and worker runs, best of each: on a shared 2-core box one run can be
    // slowed by ±30 % by the box alone, and the floor is their ratio.
    let relay = 0, model = 0, total = 0, modelSum = 0;
    for (let round = 1; round <= o.rounds; round++) {
      log(`live ${name}: relay, ${n} observations (round ${round}/${o.rounds}) …`);
      relay = Math.max(relay, (await sustainedRate(variant, "relay", o, log)).obsPerS);
      log(`live ${name}: worker, ${n} observations (round ${round}/${o.rounds}) …`);
      const r = await sustainedRate(variant, "model", o, log);
      model = Math.max(model, r.obsPerS);
      modelSum += r.obsPerS;
      total = r.total;
    }
    log(`live ${name}: worker draining a preloaded stream of ${n} observations …`);
    const drain = (await drainRate(variant, "model", o, log)).obsPerS;
    // Half of the worker's mean rate, not of its best: what it sustains, not what it peaked at.
    const rate = modelSum / o.rounds / 2;
    log(`live ${name}: latency at ${rate.toFixed(0)} obs/s …`);
    const lat = await latencyAt(variant, rate, o, log);
    rows.push({
      format,
      score_messages: scoreMessages,
      per_message: format === "json" ? 1 : LIVE_PER_MESSAGE,
      observations: total,
      obs_per_s: model,
      relay_obs_per_s: relay,
      drain_obs_per_s: drain,
      latency_rate_obs_per_s: rate,
      latency_samples: lat.samples,
      p50_ms: lat.p50_ms,
      p99_ms: lat.p99_ms,
      p90_ms: lat.p90_ms,
      p999_ms: lat.p999_ms,
      max_ms: lat.max_ms,
    });
  }
  return rows;
}

/**
 * The latency floor's rate: JSON, one observation per message, one worker. Fixed rather than half
 * the measured throughput, so that the figure does not move with the throughput (half of a
 * saturating rate on the shared 2-core box measured the saturation as much as the worker).
 */
export const LATENCY_RATE_OBS_PER_S = 5000;

/** The `latency` section: publish → score of JSON observations at a fixed moderate rate. */
export async function benchLatency(
  o: LiveBenchOptions,
  rate: number,
  log: (line: string) => void,
): Promise<LatencyRow> {
  const json: LiveVariant = { format: "json", scoreMessages: "row" };
  log(`latency: json, one worker, ${rate} obs/s …`);
  // CPU and run-queue wait over the samples' window: on the shared box a p99 over the floor came
  // with seconds of run-queue wait (other processes' load), not with a stalled worker.
  let from: { at: number; self: Sched; server: Sched } | undefined;
  let sched: LatencyRow["sched"] = null;
  const lat = await latencyAt(json, rate, o, log, (phase, _worker, serverPid) => {
    const self = _sched("self"), server = _sched(serverPid);
    if (phase === "warm") {
      from = { at: performance.now(), self, server };
      return;
    }
    if (from === undefined) return;
    const d = (a: Sched, b: Sched, k: keyof Sched) => Math.round(a[k] - b[k]);
    sched = {
      window_ms: Math.round(performance.now() - from.at),
      load_avg_1m: _loadAvg(),
      worker_cpu_ms: d(self, from.self, "cpuMs"),
      worker_wait_ms: d(self, from.self, "waitMs"),
      server_cpu_ms: d(server, from.server, "cpuMs"),
      server_wait_ms: d(server, from.server, "waitMs"),
    };
  });
  log(`latency: p50 ${lat.p50_ms.toFixed(2)} ms, p99 ${lat.p99_ms.toFixed(2)} ms`);
  return {
    sched,
    format: "json",
    workers: 1,
    rate_obs_per_s: rate,
    published_obs_per_s: lat.published_obs_per_s,
    samples: lat.samples,
    p50_ms: lat.p50_ms,
    p90_ms: lat.p90_ms,
    p99_ms: lat.p99_ms,
    p999_ms: lat.p999_ms,
    max_ms: lat.max_ms,
  };
}

interface Sched {
  readonly cpuMs: number;
  readonly waitMs: number;
}

/**
 * CPU time and run-queue wait of every thread of a process, summed (`/proc/PID/task/*\/schedstat`:
 * ns on cpu, ns runnable but waiting). Zeros where unknown (not Linux, process gone).
 */
function _sched(pid: number | "self" | undefined): Sched {
  let cpu = 0, wait = 0;
  if (pid === undefined) return { cpuMs: 0, waitMs: 0 };
  try {
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        const [c, w] = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/schedstat`).split(" ");
        cpu += Number(c);
        wait += Number(w);
      } catch {
        // The thread ended meanwhile.
      }
    }
  } catch {
    // No /proc.
  }
  return { cpuMs: cpu / 1e6, waitMs: wait / 1e6 };
}

/** The 1-minute load average, or null where unknown. */
function _loadAvg(): number | null {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return null;
  }
}
