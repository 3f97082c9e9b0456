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
 * server are stopped and the store removed even when a measurement fails (that fixture:
 * live_harness.ts). The `latency` section (latency_bench.ts) and the live soak (live_soak.ts) run
 * on {@link latencyAt} and {@link sustainedRate} from here.
 *
 * @module
 */
import { jetstream } from "@nats-io/jetstream";
import { LIVE_FORMATS, type LiveFormat, type LiveRow } from "./schema.ts";
import type { ScoreMessages } from "../src/config/live_config.ts";
import type { RunningWorker } from "../src/live/worker.ts";
import { SteadyRate } from "./timing.ts";
import {
  freshTopology,
  logRun,
  preload,
  runLoad,
  startBenchWorker,
  streamCount,
  Teardown,
} from "./live_harness.ts";
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
  await using td = new Teardown(log);
  const { format } = variant;
  const prefix = `bench.${mode}`;
  const { nc, topo, config } = await freshTopology(td, prefix, variant.scoreMessages);
  const per = recordsPerScoreMessage(variant);
  const gen = new LiveMessages(format, prefix, o.dim, o.keys);
  const messages = Math.max(1, Math.round(o.observations[format] / gen.perMessage));
  const total = messages * gen.perMessage;
  await preload(jetstream(nc), gen, messages, log);
  const { worker, failed } = await startBenchWorker(td, config, mode);
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
    count = per * await Promise.race([streamCount(nc, topo.scoresStream), failed]);
    rate.observe(count);
  }
  const tEnd = performance.now();
  logRun(log, `${format} ${mode} (drain)`, total, rate.seconds(tEnd), worker.metrics);
  if (count > total) {
    throw new Error(`live ${format} ${mode}: expected ${total} score records, found ${count}`);
  }
  return { obsPerS: rate.perSecond(tEnd), total };
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
  await using td = new Teardown(log);
  const { format } = variant;
  const prefix = `bench.${mode}`;
  const { url, topo, config } = await freshTopology(td, prefix, variant.scoreMessages);
  const { worker, failed } = await startBenchWorker(td, config, mode);
  const out = SaturateResult.parse(
    await Promise.race([
      runLoad({
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
  logRun(log, `${format} ${mode}`, out.observations, out.seconds, worker.metrics);
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
  await using td = new Teardown(log);
  const prefix = "bench.latency";
  const { url, config, serverPid } = await freshTopology(td, prefix, variant.scoreMessages);
  const { worker, failed } = await startBenchWorker(td, config, "model");
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
  const run = runLoad(params, td);
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
