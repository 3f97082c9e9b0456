/**
 * The live benchmark's load generator, run as its own process
 * (`deno run -A src/bench/live_load.ts '<json>'`, started by `live_bench.ts`), in one of two modes:
 *
 * - `saturate`: publishes as fast as the worker scores, at most `window` observations ahead of the
 *   score records stored in the scores stream (polled every few ms), until `observations` are
 *   scored; prints the sustained rate. Publishing, storing the input and scoring all share the box
 *   as they would in production, so the rate is what the pipeline sustains from publish to
 *   acknowledged score (draining a preloaded stream leaves the publisher and the server's ingest
 *   out, and half of that rate was close to saturation on 2 cores).
 * - `paced`: publishes at `rate`, receives the score records of one key (a tenth of them with the
 *   bench's 10 keys taking turns) on a core subscription and prints the publish → score
 *   latencies' summary.
 *
 * JSON and JSON-array messages carry their publish time in `t`, which every score record echoes;
 * they are published without acknowledgement (JetStream stores them all the same), so that the
 * generator costs the 2-core box little. Paced f32 blocks have no `t`: they are published with
 * acknowledgements and matched by stream sequence (a 256-row message costs one ack).
 *
 * In its own process it neither slows the worker under test nor is slowed by it: sharing the
 * worker's event loop, its 10,000s of JSON parses per second queued behind the worker's batches and
 * the latency measured the generator as much as the worker. The result is one JSON line on stdout.
 *
 * @module
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { headers, type MsgHdrs, type NatsConnection } from "@nats-io/nats-core";
import { z } from "zod";
import { LIVE_FORMATS, type LiveFormat } from "./schema.ts";
import { F32_CONTENT_TYPE } from "../schemas/messages.ts";
import { encodeF32 } from "../src/wire/decode.ts";
import { AckedPublisher } from "../src/nats/acked_publisher.ts";
import { connectNats } from "../src/nats/connect.ts";
import { SyntheticSource } from "./synthetic.ts";
import { SteadyRate } from "./timing.ts";

/** Observations per message of the `array` and `f32` formats. */
export const LIVE_PER_MESSAGE = 256;

/** Generates the input messages of one format, message by message, deterministically. */
export class LiveMessages {
  readonly #src: SyntheticSource;
  readonly #row: Float64Array;
  readonly #enc = new TextEncoder();
  /** Headers of every message of this format as the client takes them (f32: its content type). */
  readonly msgHeaders: MsgHdrs | undefined;
  #count = 0;

  constructor(
    readonly format: LiveFormat,
    readonly prefix: string,
    readonly dim: number,
    readonly keys: number,
  ) {
    this.#src = new SyntheticSource(dim, keys, 7);
    this.#row = new Float64Array(dim);
    if (format === "f32") {
      this.msgHeaders = headers();
      this.msgHeaders.set("Content-Type", F32_CONTENT_TYPE);
    }
  }

  get perMessage(): number {
    return this.format === "json" ? 1 : LIVE_PER_MESSAGE;
  }

  /** Headers of every message of this format (the f32 content type), or undefined. */
  get headers(): Record<string, string> | undefined {
    return this.format === "f32" ? { "Content-Type": F32_CONTENT_TYPE } : undefined;
  }

  /** Key names, in the order they take turns. */
  get keyNames(): readonly string[] {
    return this.#src.keys;
  }

  #values(k: number): number[] {
    this.#src.row(this.#row, 0, k);
    return Array.from(this.#row, (v) => Math.round(v * 1e4) / 1e4);
  }

  /** The next message (keys take turns) and its key's turn; JSON rows carry `t` when given. */
  next(t?: number): { subject: string; data: Uint8Array; key: number } {
    const k = this.#count++ % this.keys;
    const subject = `${this.prefix}.obs.${this.#src.keys[k]}`;
    const stamp = t === undefined ? {} : { t };
    if (this.format === "json") {
      const data = this.#enc.encode(JSON.stringify({ v: this.#values(k), ...stamp }));
      return { subject, data, key: k };
    }
    const rows = Array.from({ length: LIVE_PER_MESSAGE }, () => this.#values(k));
    if (this.format === "f32") return { subject, data: encodeF32(rows, this.dim), key: k };
    const data = this.#enc.encode(JSON.stringify(rows.map((v) => ({ v, ...stamp }))));
    return { subject, data, key: k };
  }
}

const _Common = {
  url: z.string().min(1),
  prefix: z.string().min(1),
  format: z.enum(LIVE_FORMATS),
  dim: z.number().int().min(1).max(32),
  keys: z.number().int().min(1),
  /**
   * Score records per stored score message: 1, or 256 for the multi-row formats when the worker
   * runs with `--score-messages message` (one JSON array per input message).
   */
  recordsPerMessage: z.number().int().min(1).default(1),
};

/** Parameters of a paced (latency) run. */
export const PacedParams = z.object({
  mode: z.literal("paced"),
  ..._Common,
  /** Observations per second. */
  rate: z.number().positive(),
  warmMs: z.number().min(0),
  measureMs: z.number().positive(),
  /** How long to wait for the last measured scores after publishing stops. */
  drainMs: z.number().positive().default(120_000),
});
export type PacedParams = z.input<typeof PacedParams>;

/** Parameters of a saturating (throughput) run. */
export const SaturateParams = z.object({
  mode: z.literal("saturate"),
  ..._Common,
  /** The stream holding the score records (one per observation). */
  scoresStream: z.string().min(1),
  /** Observations to publish; the run ends once every one is scored. */
  observations: z.number().int().positive(),
  /** Observations published but not yet scored, at most. */
  window: z.number().int().positive(),
  /** Give up after this long. */
  timeoutMs: z.number().positive().default(300_000),
});
export type SaturateParams = z.input<typeof SaturateParams>;

/** The load process's parameters (its one argument, as JSON). */
export const LoadParams = z.discriminatedUnion("mode", [PacedParams, SaturateParams]);
export type LoadParams = z.input<typeof LoadParams>;

/** What a paced run prints. */
export const LoadResult = z.object({
  p50_ms: z.number(),
  p90_ms: z.number(),
  p99_ms: z.number(),
  /** The tail beyond p99: where one pause (a GC, a burst) shows. */
  p999_ms: z.number(),
  max_ms: z.number(),
  samples: z.number().int().min(1),
  published_obs_per_s: z.number(),
});
export type LoadResult = z.infer<typeof LoadResult>;

/** What a saturating run prints. */
export const SaturateResult = z.object({
  /** Score records stored per second over the last 80 % of them. */
  obs_per_s: z.number().positive(),
  observations: z.number().int().positive(),
  seconds: z.number().positive(),
});
export type SaturateResult = z.infer<typeof SaturateResult>;

/** Nearest-rank percentile of sorted values. */
function _percentile(sorted: Float64Array, p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i];
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const STREAM_SEQ = /"stream_seq":(\d+)/;
const STAMP = /"t":([0-9.e+-]+)/;

function _connect(url: string): Promise<NatsConnection> {
  return connectNats({ url }, {
    name: "mvn-bench-load",
    waitOnFirstConnect: false,
    maxReconnectAttempts: 0,
  });
}

/**
 * Publishes while fewer than `p.window` observations wait for their score, until all are scored;
 * returns the rate over the last 80 % of them (the first ones pay for JIT warm-up, the first
 * pulls and every key's initialisation).
 */
export async function runSaturate(input: SaturateParams): Promise<SaturateResult> {
  const p = SaturateParams.parse(input);
  const nc = await _connect(p.url);
  try {
    const jsm = await jetstreamManager(nc);
    const gen = new LiveMessages(p.format, p.prefix, p.dim, p.keys);
    const messages = Math.ceil(p.observations / gen.perMessage);
    const total = messages * gen.perMessage;
    const opts = gen.msgHeaders === undefined ? undefined : { headers: gen.msgHeaders };
    const rate = new SteadyRate(total);
    const deadline = performance.now() + p.timeoutMs;
    let sent = 0;
    let scored = 0;
    while (scored < total) {
      if (performance.now() > deadline) {
        throw new Error(
          `expected ${total} score records within ${p.timeoutMs} ms, found ${scored}`,
        );
      }
      // Up to the window, then one flush and one look at the scores stream.
      while (sent < messages && sent * gen.perMessage - scored < p.window) {
        const m = gen.next();
        nc.publish(m.subject, m.data, opts);
        sent++;
      }
      await nc.flush();
      scored = p.recordsPerMessage * (await jsm.streams.info(p.scoresStream)).state.messages;
      rate.observe(scored);
      if (sent === messages && scored < total) await delay(5);
    }
    const end = performance.now();
    if (scored > total) {
      throw new Error(`expected ${total} score records, found ${scored}`);
    }
    return { obs_per_s: rate.perSecond(end), observations: total, seconds: rate.seconds(end) };
  } finally {
    await nc.close();
  }
}

/** Publishes at `p.rate`, measures, and returns the latency summary. */
export async function runLoad(input: PacedParams): Promise<LoadResult> {
  const p = PacedParams.parse(input);
  const nc = await _connect(p.url);
  try {
    const gen = new LiveMessages(p.format, p.prefix, p.dim, p.keys);
    const stamped = p.format !== "f32";
    const dec = new TextDecoder();
    // Only one number is read from each record: a full parse would cost more than the worker's
    // encoding of it.
    const lat: number[] = [];
    const arrivals: number[] = [];
    const arrivedSeq: number[] = [];
    let start = performance.now();
    let measureFrom = Infinity;
    nc.subscribe(`${p.prefix}.scores.${gen.keyNames[0]}`, {
      callback: (err, m) => {
        const at = performance.now();
        if (err !== null) return;
        const text = dec.decode(m.data);
        // A message of `recordsPerMessage` records (all of one input message) arrives at once:
        // each record is one sample of the latency.
        const per = p.recordsPerMessage;
        if (stamped) {
          const t = STAMP.exec(text);
          if (t !== null && Number(t[1]) >= measureFrom - start) {
            for (let i = 0; i < per; i++) lat.push(at - start - Number(t[1]));
          }
          return;
        }
        const s = STREAM_SEQ.exec(text);
        if (s === null) return;
        for (let i = 0; i < per; i++) {
          arrivals.push(at);
          arrivedSeq.push(Number(s[1]));
        }
      },
    });
    await nc.flush();
    const publisher = new AckedPublisher(nc);
    const hdr = gen.headers;
    const msgRate = p.rate / gen.perMessage;
    const publishedAt = new Map<number, number>();
    const acks: Promise<void>[] = [];
    let sent = 0;
    let expected = 0;
    start = performance.now();
    measureFrom = start + p.warmMs;
    const end = measureFrom + p.measureMs;
    // The window closes at `end` once it holds at least one of key 0's messages: a short window
    // (`--quick`) on a busy machine can otherwise pass with the loop asleep, or at a low message
    // rate hold none of key 0's turns. `hangAt` only bounds a publisher that never gets to run.
    const hangAt = end + 120_000;
    while (true) {
      const now = performance.now();
      if (now >= end && expected > 0) break;
      if (now >= hangAt) {
        throw new Error(
          `expected to publish one of key 0's messages within ${
            (hangAt - measureFrom).toFixed(0)
          } ms of the window's start, published none (${sent} in all)`,
        );
      }
      const due = Math.floor(((now - start) / 1000) * msgRate);
      while (sent < due) {
        const t0 = performance.now();
        const measured = t0 >= measureFrom;
        // Rounded to 1 µs: what JSON carries back exactly.
        const m = gen.next(stamped ? Math.round((t0 - start) * 1000) / 1000 : undefined);
        if (measured && m.key === 0) expected += gen.perMessage;
        if (stamped) nc.publish(m.subject, m.data);
        else {
          const pub = { subject: m.subject, data: m.data, msgID: `lat-${sent}`, headers: hdr };
          acks.push(
            publisher.publishAll([pub], 10_000).then(([r]) => {
              if (r.status === "rejected") throw r.reason;
              if (measured && m.key === 0) publishedAt.set(r.value, t0);
            }),
          );
        }
        sent++;
      }
      await delay(1);
    }
    const publishedRate = (sent * gen.perMessage) / ((performance.now() - start) / 1000);
    await Promise.all(acks);
    publisher.close();
    const measuredCount = () => {
      if (stamped) return lat.length;
      let n = 0;
      for (const s of arrivedSeq) if (publishedAt.has(s)) n++;
      return n;
    };
    const waitUntil = performance.now() + p.drainMs;
    while (measuredCount() < expected) {
      if (performance.now() > waitUntil) {
        throw new Error(
          `expected ${expected} score records within ${p.drainMs} ms of the last publication, ` +
            `found ${measuredCount()}`,
        );
      }
      await delay(20);
    }
    if (!stamped) {
      for (let i = 0; i < arrivals.length; i++) {
        const t0 = publishedAt.get(arrivedSeq[i]);
        if (t0 !== undefined) lat.push(arrivals[i] - t0);
      }
    }
    const sorted = Float64Array.from(lat).sort();
    if (sorted.length === 0) {
      throw new RangeError(
        `expected at least one message in ${p.measureMs} ms at ${
          p.rate.toFixed(0)
        } obs/s, found none`,
      );
    }
    return {
      p50_ms: _percentile(sorted, 0.5),
      p90_ms: _percentile(sorted, 0.9),
      p99_ms: _percentile(sorted, 0.99),
      p999_ms: _percentile(sorted, 0.999),
      max_ms: sorted[sorted.length - 1],
      samples: sorted.length,
      published_obs_per_s: publishedRate,
    };
  } finally {
    await nc.close();
  }
}

if (import.meta.main) {
  try {
    const p = LoadParams.parse(JSON.parse(Deno.args[0] ?? ""));
    const result = p.mode === "paced" ? await runLoad(p) : await runSaturate(p);
    console.log(JSON.stringify(result));
  } catch (e) {
    console.error(`live load: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
