/**
 * Configuration of the live worker (`deno task start`): flags and environment variables in, one
 * resolved {@link LiveConfig} out. The settings are tables (src/config/settings.ts): connection
 * ({@link NATS_SETTINGS}), model (MODEL_SETTINGS) and pipeline ({@link PIPELINE_SETTINGS}); every
 * setting is validated on its own so that an error names the setting (flag or variable), the
 * value found and what was expected, then the checks across settings run.
 *
 * @module
 */
import { z } from "zod";
import { type HeadConfig, resolveHeadConfig } from "./head_config.ts";
import { ALARM_THRESHOLD_SETTING, MODEL_SETTINGS } from "./model_settings.ts";
import { CONNECTION, NATS_SETTINGS, natsErrors, type NatsSettings } from "./nats_settings.ts";
import {
  type Env,
  type FlagValues,
  num,
  option,
  parseArgsOptions,
  parseFlags,
  type Resolved,
  resolveSettings,
  SettingsError,
} from "./settings.ts";
import { usage } from "./settings_usage.ts";

export {
  NATS_CLIENT_SETTINGS,
  NATS_SETTINGS,
  natsErrors,
  type NatsSettings,
} from "./nats_settings.ts";

/** A comma-separated flag value as a list. */
const _list = z.string().transform((v) =>
  v.split(",").map((x) => x.trim()).filter((x) => x !== "")
);

/** A setting had a bad value; the message names it. Start-up exits with code 2. */
export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/** Values of `--engine-thread`. */
export const ENGINE_THREADS = ["auto", "thread", "main"] as const;
export type EngineThread = (typeof ENGINE_THREADS)[number];

/** Values of `--score-messages`. */
export const SCORE_MESSAGES = ["row", "message"] as const;
export type ScoreMessages = (typeof SCORE_MESSAGES)[number];

/** Subject prefix when `--prefix` is not given. */
export const DEFAULT_PREFIX = "telemetry";

/** Names of the streams, consumer and buckets derived from the prefix. */
export interface Topology {
  readonly prefix: string;
  readonly inputStream: string;
  readonly scoresStream: string;
  readonly dlqStream: string;
  /** Alarm episodes, on `<prefix>.alarms.>`. */
  readonly alarmsStream: string;
  readonly obsSubject: string;
  readonly paramsBucket: string;
  readonly checkpointBucket: string;
  /** KV bucket of partition leases and worker heartbeats. */
  readonly leaseBucket: string;
}

/**
 * `telemetry` → streams TELEMETRY, TELEMETRY_SCORES, TELEMETRY_DLQ, TELEMETRY_ALARMS and KV buckets
 * telemetry_params, telemetry_checkpoints: every name follows the prefix, so workers with
 * different prefixes share nothing on one server.
 */
export function topologyFor(prefix: string): Topology {
  const base = prefix.toUpperCase().replace(/[^A-Z0-9_-]/g, "_");
  const bucket = prefix.toLowerCase().replace(/[^a-z0-9_-]/g, "_");
  return {
    prefix,
    inputStream: base,
    scoresStream: `${base}_SCORES`,
    dlqStream: `${base}_DLQ`,
    alarmsStream: `${base}_ALARMS`,
    obsSubject: `${prefix}.obs.>`,
    paramsBucket: `${bucket}_params`,
    checkpointBucket: `${bucket}_checkpoints`,
    leaseBucket: `${bucket}_leases`,
  };
}

const Int = z.number().int();
const NonEmpty = z.string().min(1, "expected a non-empty string");
const Prefix = z.string().regex(
  /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/,
  "expected subject tokens of letters, digits, '_' or '-' separated by dots, e.g. telemetry",
);
const Durable = z.string().regex(/^[A-Za-z0-9_-]+$/, "expected letters, digits, '_' or '-'");

const PIPELINE = "pipeline";
const SERVICE = "service";
const SCALE_OUT = "scale-out";

/** The subject prefix setting (shared by start, publish and watch). */
export const PREFIX_SETTING = option({
  flag: "prefix",
  env: "MVN_PREFIX",
  arg: "P",
  group: PIPELINE,
  schema: Prefix,
  default: DEFAULT_PREFIX,
  help: "subject prefix: <P>.obs.>, <P>.scores.<key>; streams and buckets are named after it",
});

/** The worker's own settings; each key is the {@link LiveConfig} field it resolves to. */
export const PIPELINE_SETTINGS = {
  batch: option({
    flag: "batch",
    env: "MVN_BATCH",
    arg: "N",
    group: PIPELINE,
    schema: num(Int.min(1).max(1_000_000)),
    default: 256,
    help: "observations per mini-batch, across keys",
  }),
  maxWaitMs: option({
    flag: "max-wait-ms",
    env: "MVN_MAX_WAIT_MS",
    arg: "MS",
    group: PIPELINE,
    schema: num(Int.min(0)),
    default: 20,
    help: "longest a partial batch waits for more messages",
  }),
  prefix: PREFIX_SETTING,
  paramsEveryMs: option({
    flag: "params-every-ms",
    env: "MVN_PARAMS_EVERY_MS",
    arg: "MS",
    group: PIPELINE,
    schema: num(z.number().min(0)),
    default: 1000,
    help: "smallest interval between two parameter publications of one key",
  }),
  checkpointEveryMs: option({
    flag: "checkpoint-every-ms",
    env: "MVN_CHECKPOINT_EVERY_MS",
    arg: "MS",
    group: PIPELINE,
    schema: num(z.number().min(0).max(60_000)),
    default: 100,
    help: "time between checkpoint barriers (checkpoints written, inputs acked); 0 = every " +
      "batch; a crash redelivers about this much input (≤ ack wait / 4)",
  }),
  /**
   * Idle-key eviction (docs/live.md): off by default, because a returning key then costs a KV read
   * in its batch's path and start-up still loads every checkpoint; worth it with many keys.
   */
  evictIdleS: option({
    flag: "evict-idle-s",
    env: "MVN_EVICT_IDLE_S",
    arg: "S",
    group: PIPELINE,
    schema: num(z.number().min(0).max(30 * 24 * 3600)),
    default: 0,
    help: "drop a key from memory once it saw no observation for S seconds and its state is " +
      "checkpointed; it is reloaded from its checkpoint when it returns (0 = never)",
  }),
  durable: option({
    flag: "durable",
    env: "MVN_DURABLE",
    arg: "NAME",
    group: PIPELINE,
    schema: Durable,
    default: "mvn-worker",
    help: "durable name of the pull consumer",
  }),
  ackWaitMs: option({
    flag: "ack-wait-ms",
    env: "MVN_ACK_WAIT_MS",
    arg: "MS",
    group: PIPELINE,
    schema: num(Int.min(1000)),
    default: 30_000,
    help: "consumer ack wait: a message not acked within it is redelivered",
  }),
  maxMessageBytes: option({
    flag: "max-message-bytes",
    env: "MVN_MAX_MESSAGE_BYTES",
    arg: "N",
    group: PIPELINE,
    schema: num(Int.min(1)),
    default: 1_048_576,
    help: "larger input messages go to the dead-letter stream",
  }),
  engineThread: option({
    flag: "engine-thread",
    env: "MVN_ENGINE_THREAD",
    arg: ENGINE_THREADS.join("|"),
    group: PIPELINE,
    // "worker" was this value's name before the compute thread was called so.
    schema: z.enum([...ENGINE_THREADS, "worker"]).transform((v): EngineThread =>
      v === "worker" ? "thread" : v
    ),
    default: "auto",
    help: "where the engine runs: thread (the compute thread, a Web Worker; old name worker), " +
      "main (the I/O thread) or auto: main on cpu, the compute thread on webgpu",
  }),
  scoreMessages: option({
    flag: "score-messages",
    env: "MVN_SCORE_MESSAGES",
    arg: SCORE_MESSAGES.join("|"),
    group: PIPELINE,
    schema: z.enum(SCORE_MESSAGES),
    default: "row",
    help: "row: a score message per observation; message: one per input message, the JSON " +
      "array of its records (for arrays and f32 blocks: one stored message, ack and " +
      "duplicate-window id per input message)",
  }),
  duplicateWindowS: option({
    flag: "duplicate-window-s",
    env: "MVN_DUPLICATE_WINDOW_S",
    arg: "S",
    group: PIPELINE,
    schema: num(Int.min(1).max(7 * 24 * 3600)),
    default: 1800,
    help:
      "duplicate window of the output streams (scores, dead letters, alarms) the worker creates: " +
      "re-published records are dropped within it (≥ 2 × ack wait; existing streams keep theirs)",
  }),
  /** Alarm CUSUM threshold in decades of −log10 p (`src/model/alarm.ts`); default 5. */
  alarmThreshold: ALARM_THRESHOLD_SETTING,
  /**
   * Partitions of the key space: must equal the `partition(P, …)` of the server's subject mapping
   * (`deploy/nats/partitions.conf`). Without the mapping the worker runs unpartitioned (one worker).
   */
  partitions: option({
    flag: "partitions",
    env: "MVN_PARTITIONS",
    arg: "P",
    group: SCALE_OUT,
    schema: num(Int.min(1).max(1024)),
    default: 16,
    help: "partitions of the key space; must match the server's partition(P, …) subject mapping",
  }),
  /** Replicas of every stream and bucket the worker creates. */
  replicas: option({
    flag: "replicas",
    env: "MVN_REPLICAS",
    arg: "R",
    group: SCALE_OUT,
    schema: num(Int.min(1).max(5)),
    default: 1,
    help: "replicas of the streams and buckets the worker creates (3 on a 3-node cluster)",
  }),
  /** Lifetime of a partition lease: a dead worker's partitions are taken over within it. */
  leaseMs: option({
    flag: "lease-ms",
    env: "MVN_LEASE_MS",
    arg: "MS",
    group: SCALE_OUT,
    schema: num(Int.min(1000).max(600_000)),
    default: 10_000,
    help: "partition lease lifetime: a dead worker's partitions move to another within it",
  }),
  httpPort: option({
    flag: "http",
    env: "MVN_HTTP",
    arg: "PORT",
    group: SERVICE,
    schema: num(Int.min(0).max(65535)),
    help: "serve the dashboard at /, /healthz, /readyz, /metrics on 127.0.0.1:PORT",
  }),
  wsUrl: option({
    flag: "ws-url",
    env: "MVN_WS_URL",
    arg: "URL",
    group: SERVICE,
    schema: z.string().regex(/^wss?:\/\/[^\s/]+(:\d+)?\/?$/, "expected a ws:// or wss:// URL"),
    help:
      "NATS WebSocket URL the dashboard page connects to (default: the local nats-server's WebSocket listener, or --nats-url when it is ws://)",
  }),
  stateDir: option({
    flag: "state-dir",
    env: "MVN_STATE_DIR",
    arg: "DIR",
    group: SERVICE,
    schema: NonEmpty,
    default: ".state",
    help: "project-local state (the local nats-server stores under <DIR>/nats)",
  }),
} as const;

/** Every setting of `start`: connection, model and pipeline. */
export const LIVE_SETTINGS = { ...NATS_SETTINGS, ...MODEL_SETTINGS, ...PIPELINE_SETTINGS } as const;

/** Flags of `start` as node:util parseArgs options (generated from {@link LIVE_SETTINGS}). */
export const LIVE_FLAGS = parseArgsOptions(LIVE_SETTINGS);

/** Usage text of `start`, generated from {@link LIVE_SETTINGS}. */
export const LIVE_USAGE = usage(LIVE_SETTINGS, {
  synopsis: "usage: main.ts start [options]",
  groups: [CONNECTION, "model", PIPELINE, SCALE_OUT, SERVICE],
});

/** Fully resolved live worker configuration: each pipeline setting, the connection, the head. */
export type LiveConfig = Resolved<typeof PIPELINE_SETTINGS> & {
  readonly nats: NatsSettings;
  readonly head: HeadConfig;
};

/** Flag values of `start`, keyed by flag name (as {@link parseLiveFlags} returns them). */
export type LiveFlags = FlagValues<typeof LIVE_SETTINGS> & { readonly help?: boolean };

/** Splits `start` arguments; throws {@link ConfigError} on unknown flags. */
export function parseLiveFlags(args: string[]): LiveFlags {
  try {
    const { values, positionals, help } = parseFlags(LIVE_SETTINGS, args);
    if (positionals.length > 0) {
      throw new ConfigError(`unexpected argument '${positionals[0]}': start takes only options`);
    }
    return help ? { ...values, help } : values;
  } catch (cause) {
    if (!(cause instanceof SettingsError)) throw cause;
    throw new ConfigError(`${cause.message}\n${LIVE_USAGE}`, { cause });
  }
}

/**
 * Resolves flags (already split by {@link parseLiveFlags}, or written by a caller, keyed by flag
 * name) and environment variables into a {@link LiveConfig}. Throws {@link ConfigError} naming
 * every bad setting.
 */
export function resolveLiveConfig(values: FlagValues<typeof LIVE_SETTINGS>, env: Env): LiveConfig {
  const nats = resolveSettings(NATS_SETTINGS, values, env);
  const model = resolveSettings(MODEL_SETTINGS, values, env);
  const pipeline = resolveSettings(PIPELINE_SETTINGS, values, env);
  const errors = [...nats.errors, ...model.errors, ...pipeline.errors];
  const { ackWaitMs, checkpointEveryMs, duplicateWindowS } = pipeline.values;
  if (duplicateWindowS * 1000 < 2 * ackWaitMs) {
    errors.push(
      `expected --duplicate-window-s at least twice --ack-wait-ms (${ackWaitMs / 1000} s), found ` +
        `${duplicateWindowS}: a record re-published on redelivery would escape deduplication`,
    );
  }
  if (4 * checkpointEveryMs > ackWaitMs) {
    errors.push(
      `expected --checkpoint-every-ms at most a quarter of --ack-wait-ms (${ackWaitMs}), found ` +
        `${checkpointEveryMs}: messages would be redelivered while waiting for their checkpoint`,
    );
  }
  errors.push(...natsErrors(nats.values));
  let head: HeadConfig | undefined;
  if (errors.length === 0) {
    try {
      head = resolveHeadConfig(model.values);
    } catch (cause) {
      errors.push(`invalid model settings: ${(cause as Error).message}`);
    }
  }
  if (errors.length > 0 || head === undefined) throw new ConfigError(errors.join("\n"));
  return { ...pipeline.values, nats: nats.values, head };
}
