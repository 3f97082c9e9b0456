/**
 * Live section of the benchmark: obs/s from the input stream to acknowledged score records through
 * a local nats-server, for the real worker (`startWorker`, cpu backend, engine in its Web Worker)
 * beside the bare relay (`mode: "relay"`, same consumer settings), per message format; then the
 * latency from publish to score at half the measured rate.
 *
 * Every measurement gets its own nats-server (loopback, free port, temp store) so that streams,
 * checkpoints and the server's caches of one run never reach the next; worker, connection and
 * server are stopped and the store removed even when a measurement fails.
 *
 * @module
 */
import { join } from "node:path";
import { jetstream, type JetStreamClient, jetstreamManager } from "@nats-io/jetstream";
import { headers, type MsgHdrs, type NatsConnection } from "@nats-io/nats-core";
import { z } from "zod";
import { LIVE_FORMATS, type LiveFormat, type LiveRow } from "../../schemas/bench.ts";
import { type LiveConfig, resolveLiveConfig, topologyFor } from "../../schemas/live_config.ts";
import { F32_CONTENT_TYPE } from "../../schemas/messages.ts";
import { encodeF32 } from "../live/decode.ts";
import { AckedPublisher, type Publication, publishAllAcked } from "../live/nats_io.ts";
import { type RunningWorker, startWorker } from "../live/worker.ts";
import { connectNats } from "../nats/connect.ts";
import { NatsServerProcess } from "../nats/server_process.ts";
import { ensureStreams } from "../nats/topology.ts";
import { SyntheticSource } from "./synthetic.ts";

/** Observations per message of the `array` and `f32` formats. */
export const LIVE_PER_MESSAGE = 256;

/** Sizes of the live section. */
export interface LiveBenchOptions {
  readonly formats: readonly LiveFormat[];
  /** Observations preloaded per throughput measurement, per format. */
  readonly observations: Readonly<Record<LiveFormat, number>>;
  readonly keys: number;
  readonly dim: number;
  /** Untimed publishing before the latency samples are taken (JIT, first fits of every key). */
  readonly latencyWarmMs: number;
  /** Publishing time whose observations are the latency samples. */
  readonly latencyMs: number;
}

/** Sizes of `deno task bench` (full) and `--quick`. */
export function liveBenchSizes(quick: boolean): LiveBenchOptions {
  return quick
    ? {
      formats: LIVE_FORMATS,
      observations: { json: 1_000, array: 5_120, f32: 5_120 },
      keys: 10,
      dim: 3,
      latencyWarmMs: 150,
      latencyMs: 300,
    }
    : {
      formats: LIVE_FORMATS,
      observations: { json: 20_000, array: 76_800, f32: 76_800 },
      keys: 10,
      dim: 3,
      latencyWarmMs: 1000,
      latencyMs: 4000,
    };
}

/** What a score record must hold for the latency measurement (the rest is not read). */
const ScoreSeq = z.object({ stream_seq: z.number().int().min(1) });

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
): Promise<{ url: string; dir: string; nc: NatsConnection }> {
  const dir = await Deno.makeTempDir({ prefix: "mvn-bench-live-" });
  td.add(() => Deno.remove(dir, { recursive: true }));
  const server = await NatsServerProcess.start({
    storeDir: join(dir, "store"),
    workDir: join(dir, "run"),
    port: -1,
    readyTimeoutMs: 15_000,
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
  return { url: server.url, dir, nc };
}

function _config(url: string, dir: string, prefix: string): LiveConfig {
  // Flags as `deno task start` would get them; an empty environment so that NATS_URL, MVN_BATCH
  // and friends of the caller's shell do not change what is measured.
  return resolveLiveConfig(
    { "nats-url": url, backend: "cpu", prefix, "state-dir": join(dir, "state") },
    {},
  );
}

/** Generates the input messages of one format, message by message, deterministically. */
class _Messages {
  readonly #src: SyntheticSource;
  readonly #row: Float64Array;
  readonly #enc = new TextEncoder();
  readonly #f32Headers: MsgHdrs;
  #count = 0;

  constructor(
    readonly format: LiveFormat,
    readonly prefix: string,
    readonly dim: number,
    readonly keys: number,
  ) {
    this.#src = new SyntheticSource(dim, keys, 7);
    this.#row = new Float64Array(dim);
    this.#f32Headers = headers();
    this.#f32Headers.set("Content-Type", F32_CONTENT_TYPE);
  }

  get perMessage(): number {
    return this.format === "json" ? 1 : LIVE_PER_MESSAGE;
  }

  /** Headers of every message of this format (the f32 content type), or undefined. */
  get headers(): MsgHdrs | undefined {
    return this.format === "f32" ? this.#f32Headers : undefined;
  }

  #values(k: number): number[] {
    this.#src.row(this.#row, 0, k);
    return Array.from(this.#row, (v) => Math.round(v * 1e4) / 1e4);
  }

  /** The next message: keys take turns. */
  next(): { subject: string; data: Uint8Array } {
    const k = this.#count++ % this.keys;
    const subject = `${this.prefix}.obs.${this.#src.keys[k]}`;
    if (this.format === "json") {
      return { subject, data: this.#enc.encode(JSON.stringify({ v: this.#values(k) })) };
    }
    const rows = Array.from({ length: LIVE_PER_MESSAGE }, () => this.#values(k));
    if (this.format === "f32") return { subject, data: encodeF32(rows, this.dim) };
    return { subject, data: this.#enc.encode(JSON.stringify(rows.map((v) => ({ v })))) };
  }
}

/** Publishes `messages` messages into the input stream and waits for every acknowledgement. */
async function _preload(
  js: JetStreamClient,
  gen: _Messages,
  messages: number,
  log: (line: string) => void,
): Promise<void> {
  const chunk = 8192;
  const hdr = gen.format === "f32" ? { "Content-Type": F32_CONTENT_TYPE } : undefined;
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

/**
 * obs/s of one worker (`model` or `relay`) draining a preloaded input stream: observations ÷ time
 * from the worker consuming to the last score record stored in the scores stream.
 */
async function _sustained(
  format: LiveFormat,
  mode: "model" | "relay",
  o: LiveBenchOptions,
  log: (line: string) => void,
): Promise<{ obsPerS: number; total: number }> {
  await using td = new _Teardown(log);
  const { url, dir, nc } = await _freshServer(td);
  const prefix = `bench.${mode}`;
  const config = _config(url, dir, prefix);
  const topo = topologyFor(prefix);
  await ensureStreams(await jetstreamManager(nc), topo);
  const gen = new _Messages(format, prefix, o.dim, o.keys);
  const messages = Math.max(1, Math.round(o.observations[format] / gen.perMessage));
  const total = messages * gen.perMessage;
  await _preload(jetstream(nc), gen, messages, log);
  const lines: string[] = [];
  const worker = await startWorker(config, { mode, log: (l) => lines.push(l) });
  td.add(() => worker.stop());
  const t0 = performance.now();
  const failed = _failed(worker, lines);
  failed.catch(() => {});
  const deadline = t0 + 300_000;
  let count = 0;
  while (count < total) {
    if (performance.now() > deadline) {
      throw new Error(
        `live ${format} ${mode}: expected ${total} score records within 300 s, found ${count}`,
      );
    }
    // Polling at 10 ms bounds the error of the end time to < 1 % of a multi-second run.
    await Promise.race([delay(10), failed]);
    count = await Promise.race([_streamCount(nc, topo.scoresStream), failed]);
  }
  const seconds = (performance.now() - t0) / 1000;
  if (count > total) {
    throw new Error(`live ${format} ${mode}: expected ${total} score records, found ${count}`);
  }
  return { obsPerS: total / seconds, total };
}

/** Nearest-rank percentile of sorted values. */
function _percentile(sorted: Float64Array, p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i];
}

/**
 * Latency from publish to score record at `rate` obs/s: the real worker runs, the bench publishes
 * paced messages and records each message's publish time by its stream sequence (from the
 * publish acknowledgement); a core subscription on the scores subjects records arrival times.
 */
async function _latency(
  format: LiveFormat,
  rate: number,
  o: LiveBenchOptions,
  log: (line: string) => void,
): Promise<{ p50: number; p99: number; samples: number }> {
  await using td = new _Teardown(log);
  const { url, dir, nc } = await _freshServer(td);
  const prefix = "bench.latency";
  const config = _config(url, dir, prefix);
  await ensureStreams(await jetstreamManager(nc), topologyFor(prefix));
  const gen = new _Messages(format, prefix, o.dim, o.keys);
  const arrivals: number[] = [];
  const arrivedSeq: number[] = [];
  let badRecords = 0;
  const sub = nc.subscribe(`${prefix}.scores.>`, {
    callback: (err, m) => {
      const at = performance.now();
      if (err !== null) return;
      const r = ScoreSeq.safeParse(m.json());
      if (!r.success) {
        badRecords++;
        return;
      }
      arrivals.push(at);
      arrivedSeq.push(r.data.stream_seq);
    },
  });
  td.add(() => Promise.resolve(sub.unsubscribe()));
  await nc.flush();
  const lines: string[] = [];
  const worker = await startWorker(config, { mode: "model", log: (l) => lines.push(l) });
  td.add(() => worker.stop());
  const failed = _failed(worker, lines);
  failed.catch(() => {});

  // The worker's own cheap acknowledged publishing: with `js.publish` (a request each) this
  // publisher, sharing the worker's process, cost more CPU than the worker at json's rate.
  const publisher = new AckedPublisher(nc);
  td.add(() => Promise.resolve(publisher.close()));
  const hdr = gen.format === "f32" ? { "Content-Type": F32_CONTENT_TYPE } : undefined;
  const msgRate = rate / gen.perMessage;
  const publishedAt = new Map<number, number>();
  const acks: Promise<void>[] = [];
  let sent = 0;
  let firstMeasured = 0;
  let lastMeasured = 0;
  const start = performance.now();
  const measureFrom = start + o.latencyWarmMs;
  const end = measureFrom + o.latencyMs;
  while (true) {
    const now = performance.now();
    if (now >= end) break;
    const due = Math.floor(((now - start) / 1000) * msgRate);
    while (sent < due) {
      const m = gen.next();
      const t0 = performance.now();
      const measured = t0 >= measureFrom;
      const pub = { subject: m.subject, data: m.data, msgID: `lat-${sent}`, headers: hdr };
      acks.push(
        publisher.publishAll([pub], 10_000).then(([r]) => {
          if (r.status === "rejected") throw r.reason;
          if (measured) {
            publishedAt.set(r.value, t0);
            firstMeasured = firstMeasured === 0 ? r.value : Math.min(firstMeasured, r.value);
            lastMeasured = Math.max(lastMeasured, r.value);
          }
        }),
      );
      sent++;
    }
    await Promise.race([delay(1), failed]);
  }
  await Promise.race([Promise.all(acks), failed]);
  const expected = publishedAt.size * gen.perMessage;
  const countMeasured = () => {
    let n = 0;
    for (const s of arrivedSeq) if (publishedAt.has(s)) n++;
    return n;
  };
  const waitUntil = performance.now() + 30_000;
  while (countMeasured() < expected) {
    if (performance.now() > waitUntil) {
      throw new Error(
        `live ${format} latency: expected ${expected} score records within 30 s of the last ` +
          `publication, found ${countMeasured()}`,
      );
    }
    await Promise.race([delay(20), failed]);
  }
  if (badRecords > 0) {
    log(`live ${format} latency: ${badRecords} score record(s) without stream_seq`);
  }
  const lat = new Float64Array(expected);
  let n = 0;
  for (let i = 0; i < arrivals.length; i++) {
    const t0 = publishedAt.get(arrivedSeq[i]);
    if (t0 !== undefined && n < expected) lat[n++] = arrivals[i] - t0;
  }
  lat.sort();
  if (lat.length === 0) {
    throw new RangeError(
      `live ${format} latency: expected at least one message in ${o.latencyMs} ms at ${
        rate.toFixed(0)
      } obs/s, found none`,
    );
  }
  return { p50: _percentile(lat, 0.5), p99: _percentile(lat, 0.99), samples: lat.length };
}

/** Runs the live section: per format, relay, model, then latency at half the model's rate. */
export async function benchLive(
  o: LiveBenchOptions,
  log: (line: string) => void,
): Promise<LiveRow[]> {
  const rows: LiveRow[] = [];
  for (const format of o.formats) {
    const n = o.observations[format];
    log(`live ${format}: relay, ${n} observations …`);
    const relay = await _sustained(format, "relay", o, log);
    log(`live ${format}: worker, ${n} observations …`);
    const { obsPerS: model, total } = await _sustained(format, "model", o, log);
    const rate = model / 2;
    log(`live ${format}: latency at ${rate.toFixed(0)} obs/s …`);
    const lat = await _latency(format, rate, o, log);
    rows.push({
      format,
      per_message: format === "json" ? 1 : LIVE_PER_MESSAGE,
      observations: total,
      obs_per_s: model,
      relay_obs_per_s: relay.obsPerS,
      latency_rate_obs_per_s: rate,
      latency_samples: lat.samples,
      p50_ms: lat.p50,
      p99_ms: lat.p99,
    });
  }
  return rows;
}
