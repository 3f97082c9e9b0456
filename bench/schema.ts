/**
 * Boundaries of `deno task bench`: its flags and the `--json` result file.
 *
 * @module
 */
import { z } from "zod";
import { SCORE_MESSAGES } from "../src/config/live_config.ts";
import { num, option, type Resolved, toggle } from "../src/config/settings.ts";

/** Sections the benchmark can run. */
export const BENCH_SECTIONS = [
  "engine",
  "replay",
  "live",
  "conditional",
  "latency",
  "scaleout",
  "failover",
  "keys",
] as const;

/** `--sections engine,replay,live` (comma-separated or an array). */
const Sections = z.preprocess(
  (v: string | readonly string[]) =>
    typeof v === "string" ? v.split(",").map((s) => s.trim()).filter((s) => s) : v,
  z.array(z.enum(BENCH_SECTIONS)).min(1),
);

/** Flags of `bench`. */
export const BENCH_SETTINGS = {
  json: option({
    flag: "json",
    arg: "FILE",
    group: "options",
    schema: z.string().min(1),
    help: "also write the results as JSON (bench/schema.ts)",
  }),
  sections: option({
    flag: "sections",
    arg: "LIST",
    group: "options",
    schema: Sections,
    default: [...BENCH_SECTIONS],
    expects: `comma-separated sections among ${BENCH_SECTIONS.join(", ")}`,
    help: "comma-separated sections to run",
  }),
  quick: toggle({
    flag: "quick",
    group: "options",
    help: "small sizes, short timings (a smoke test, not a measurement)",
  }),
  backend: option({
    flag: "backend",
    arg: "all|cpu|webgpu",
    group: "options",
    schema: z.enum(["all", "cpu", "webgpu"]),
    default: "all",
    help: "all: every backend with an adapter; else only the one named",
  }),
  soak: toggle({
    flag: "soak",
    group: "options",
    help: "also run the soaks (engine, then the live worker, at half load; not for CI)",
  }),
  soak_minutes: option({
    flag: "soak-minutes",
    arg: "M",
    group: "options",
    schema: num(z.number().positive()),
    default: 10,
    help: "duration of each soak",
  }),
} as const;
/** Resolved flags of `bench`. */
export type BenchFlags = Resolved<typeof BENCH_SETTINGS>;

const Rate = z.number().nonnegative();

/** One engine measurement: a score+learn step of `batch` rows over `keys` keys. */
export const EngineRow = z.object({
  backend: z.enum(["cpu", "webgpu"]),
  batch: z.number().int().positive(),
  keys: z.number().int().positive(),
  dim: z.number().int().positive(),
  /** The real engine in its compute thread: scores (no p-values) and the learning step. */
  obs_per_s: Rate,
  /** The same, computing p_value for every row too. */
  with_p_value_obs_per_s: Rate.nullable().default(null),
  /** The same engine without the worker (same thread). */
  local_obs_per_s: Rate.nullable(),
  /** The op-by-op tfjs autodiff version (reference_head.ts); null where not measured. */
  baseline_obs_per_s: Rate.nullable(),
  /** The raw float64 fused loop alone (mvnFusedCpu), no engine, no tfjs. */
  bound_obs_per_s: Rate,
  /** The tfjs `MvnFused` kernel alone on this backend (tensors in, arrays out). */
  kernel_obs_per_s: Rate.nullable(),
});
export type EngineRow = z.output<typeof EngineRow>;

export const ReplayResult = z.object({
  observations: z.number().int().nonnegative(),
  obs_per_s: Rate,
  floor_obs_per_s: Rate,
});
export type ReplayResult = z.output<typeof ReplayResult>;

/** Message formats of the live section. */
export const LIVE_FORMATS = ["json", "array", "f32"] as const;
export type LiveFormat = (typeof LIVE_FORMATS)[number];

/** One live measurement: one message format, the worker beside the bare relay. */
export const LiveRow = z.object({
  /**
   * `json`: one observation per message (`{"v":[…]}`); `array`: 256 per message as a JSON array;
   * `f32`: 256 per message as a float32 block (`Content-Type: application/vnd.mvn.f32`).
   */
  format: z.enum(LIVE_FORMATS),
  /**
   * The worker's `--score-messages`: `row`, a score message per observation (the default);
   * `message`, one per input message (the JSON array of its records). Absent in older files: row.
   */
  score_messages: z.enum(SCORE_MESSAGES).default("row"),
  /** Observations per input message. */
  per_message: z.number().int().positive().optional(),
  /** Observations per throughput measurement. */
  observations: z.number().int().positive().optional(),
  /**
   * The live worker (cpu backend, engine in its Web Worker): the highest sustained rate from
   * publish to acknowledged score record, with a load process publishing as fast as scores keep up.
   */
  obs_per_s: Rate,
  /** The bare relay (`startWorker` mode `relay`: no model), same consumer settings, same load. */
  relay_obs_per_s: Rate,
  /** The live worker draining a preloaded input stream (no publisher running): catch-up speed. */
  drain_obs_per_s: Rate.optional(),
  /** Publication rate of the latency measurement: half of `obs_per_s`. */
  latency_rate_obs_per_s: Rate.optional(),
  /** Observations whose latency was measured. */
  latency_samples: z.number().int().nonnegative().optional(),
  /** Publish → score record received, per observation, at half load. */
  p50_ms: z.number().nonnegative().nullable(),
  p99_ms: z.number().nonnegative().nullable(),
  /**
   * The same distribution's p90, p99.9 and maximum: records of one input message arrive
   * together, so with 256 per message the p99 is set by the two or three slowest messages.
   */
  p90_ms: z.number().nonnegative().optional(),
  p999_ms: z.number().nonnegative().optional(),
  max_ms: z.number().nonnegative().optional(),
});
export type LiveRow = z.output<typeof LiveRow>;

export const SoakResult = z.object({
  minutes: z.number().positive(),
  obs: z.number().int().nonnegative(),
  rss_start_mb: z.number().positive(),
  rss_end_mb: z.number().positive(),
  tensors_start: z.number().int().nonnegative(),
  tensors_end: z.number().int().nonnegative(),
});
export type SoakResult = z.output<typeof SoakResult>;

/** The live worker's soak (`--soak`): paced JSON at half its sustained rate. */
export const LiveSoakResult = z.object({
  minutes: z.number().positive(),
  obs_per_s: z.number().positive(),
  /** Observations the worker scored and learned. */
  obs: z.number().int().nonnegative(),
  /**
   * RSS of the process hosting the worker, sampled every 2 s: the lowest sample of the second
   * tenth and of the last tenth. The lowest, because RSS saws up and down by tens of MB between
   * garbage collections; comparing troughs compares like with like.
   */
  rss_start_mb: z.number().positive(),
  rss_end_mb: z.number().positive(),
  /** The highest sample over the run after the first tenth. */
  rss_max_mb: z.number().positive().optional(),
  /** RSS of the nats-server (not the worker's memory: its duplicate-window ids, its caches). */
  server_rss_start_mb: z.number().nonnegative().optional(),
  server_rss_end_mb: z.number().nonnegative().optional(),
  p50_ms: z.number().nonnegative(),
  p99_ms: z.number().nonnegative(),
});
export type LiveSoakResult = z.output<typeof LiveSoakResult>;

/** One floor checked against the measurements (printed as PASS/FAIL). */
export const FloorCheck = z.object({
  name: z.string(),
  pass: z.boolean(),
  detail: z.string(),
});
export type FloorCheck = z.output<typeof FloorCheck>;

/** One conditional-head measurement (one key, same thread), beside the unconditional head. */
export const ConditionalRow = z.object({
  backend: z.enum(["cpu", "webgpu"]),
  batch: z.number().int().positive(),
  dim: z.number().int().positive(),
  hidden: z.string(),
  features: z.number().int().positive(),
  /** The conditional head: scores, then its Adam steps (minibatch 32 + as many replayed rows). */
  obs_per_s: Rate,
  /** The unconditional head (natural step) on the same rows. */
  unconditional_obs_per_s: Rate,
});
export type ConditionalRow = z.output<typeof ConditionalRow>;

/** Live latency at a fixed moderate rate (`latency` section): the floor's measurement. */
export const LatencyRow = z.object({
  format: z.enum(LIVE_FORMATS),
  workers: z.number().int().positive(),
  /** Paced publication rate (fixed, not derived from the measured throughput). */
  rate_obs_per_s: Rate,
  /** The rate the load process actually published at. */
  published_obs_per_s: Rate,
  samples: z.number().int().positive(),
  p50_ms: z.number().nonnegative(),
  p90_ms: z.number().nonnegative(),
  p99_ms: z.number().nonnegative(),
  p999_ms: z.number().nonnegative(),
  max_ms: z.number().nonnegative(),
  /**
   * Over the samples' window: CPU time and run-queue wait (runnable, not running) summed over the
   * threads of the process hosting the worker and of the nats-server, from /proc; the box's load.
   * Says whether a slow p99 waited for the CPU. Null where not measured (no /proc).
   */
  sched: z.object({
    window_ms: z.number().nonnegative(),
    load_avg_1m: z.number().nonnegative().nullable(),
    worker_cpu_ms: z.number().nonnegative(),
    worker_wait_ms: z.number().nonnegative(),
    server_cpu_ms: z.number().nonnegative(),
    server_wait_ms: z.number().nonnegative(),
  }).nullable().default(null),
});
export type LatencyRow = z.output<typeof LatencyRow>;

/** One scale-out measurement (`scaleout` section): worker processes on a partitioned server. */
export const ScaleoutRow = z.object({
  /** Partitions of the server's mapping; 0 = unpartitioned (no mapping). */
  partitions: z.number().int().nonnegative(),
  workers: z.number().int().positive(),
  observations: z.number().int().positive(),
  keys: z.number().int().positive(),
  /** Score records stored per second, from the first one to the last. */
  obs_per_s: Rate,
  /** CPU time (user + system) of all worker processes ÷ observations, same span. */
  worker_cpu_us_per_obs: z.number().nonnegative(),
  /** CPU time of the nats-server ÷ observations, same span. */
  server_cpu_us_per_obs: z.number().nonnegative(),
});
export type ScaleoutRow = z.output<typeof ScaleoutRow>;

/** Score latency of a set of observations (null percentiles when there were none). */
const LatencySummary = z.object({
  n: z.number().int().nonnegative(),
  p50_ms: z.number().nullable(),
  p99_ms: z.number().nullable(),
  max_ms: z.number().nullable(),
});

/** The failover measurement (`failover` section): SIGKILL of one worker to scored again. */
export const FailoverResult = z.object({
  rate_obs_per_s: Rate,
  lease_ms: z.number().int().positive(),
  workers: z.number().int().positive(),
  partitions: z.number().int().positive(),
  before_kill: LatencySummary,
  after_kill: LatencySummary,
  /** Observations published after the kill whose score never arrived before the end. */
  unscored_after_kill: z.number().int().nonnegative(),
  /**
   * The worst score latency of observations published after the kill: the dead worker's
   * partitions wait for another worker to take them over. Null when none was scored.
   */
  failover_ms: z.number().nonnegative().nullable(),
});
export type FailoverResult = z.output<typeof FailoverResult>;

/** One replay of the `keys` section: its rate and its peak resident memory (VmHWM). */
const KeysRun = z.object({ obs_per_s: Rate, peak_rss: z.number().int().nonnegative() });

/** The many-key measurement (`keys` section): replay with one key against many keys. */
export const KeysResult = z.object({
  observations: z.number().int().positive(),
  dim: z.number().int().positive(),
  batch: z.number().int().positive(),
  keys: z.number().int().positive(),
  /** Runs of each side; each side's best (highest obs/s, lowest peak). Absent before: 1. */
  runs: z.number().int().positive().default(1),
  one_key: KeysRun,
  many_keys: KeysRun,
  /** (many-key peak − one-key peak) / keys. */
  bytes_per_key_beyond_base: z.number().int(),
  /** Many keys' obs/s over one key's. */
  rate_ratio: z.number().nonnegative(),
});
export type KeysResult = z.output<typeof KeysResult>;

/** The `--json` file. */
export const BenchResult = z.object({
  version: z.literal(1),
  started_at: z.string(),
  quick: z.boolean(),
  host: z.object({ deno: z.string(), os: z.string(), cpus: z.number().int().positive() }),
  engine: z.array(EngineRow),
  replay: ReplayResult.nullable(),
  live: z.array(LiveRow),
  soak: SoakResult.nullable(),
  /** Absent in files written before the live soak existed. */
  soak_live: LiveSoakResult.nullable().default(null),
  /** Absent in files written before the conditional head existed. */
  conditional: z.array(ConditionalRow).default([]),
  /** Absent in files written before these sections existed. */
  latency: LatencyRow.nullable().default(null),
  scaleout: z.array(ScaleoutRow).default([]),
  failover: FailoverResult.nullable().default(null),
  keys: KeysResult.nullable().default(null),
  floors: z.array(FloorCheck),
  /** Sections or measurements skipped, with why. */
  notes: z.array(z.string()),
});
export type BenchResult = z.output<typeof BenchResult>;
