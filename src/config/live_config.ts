/**
 * Configuration of the live worker (`deno task start`): flags and environment variables in, one
 * resolved {@link LiveConfig} out. Every setting is validated on its own so that an error names
 * the setting (flag or variable), the value found and what was expected.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { type HeadConfig, HeadConfigInput, resolveHeadConfig } from "./head_config.ts";

/** A setting had a bad value; the message names it. Start-up exits with code 2. */
/** A comma-separated flag value as a list. */
const _list = z.string().transform((v) =>
  v.split(",").map((x) => x.trim()).filter((x) => x !== "")
);

export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/** How to reach NATS and authenticate. */
export interface NatsSettings {
  /** nats://, tls://, ws:// or wss:// URL; undefined = start a local nats-server. */
  readonly url?: string;
  readonly creds?: string;
  readonly user?: string;
  readonly password?: string;
  readonly token?: string;
  readonly tlsCa?: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
}

/** Fully resolved live worker configuration. */
export interface LiveConfig {
  readonly nats: NatsSettings;
  readonly head: HeadConfig;
  /** Observations per mini-batch (across keys). */
  readonly batch: number;
  /** Longest a partial batch waits for more messages. */
  readonly maxWaitMs: number;
  /** Subject prefix: `<prefix>.obs.>`, `<prefix>.scores.<key>`, ... */
  readonly prefix: string;
  /** Smallest interval between two parameter publications of one key. */
  readonly paramsEveryMs: number;
  /**
   * Time between checkpoint barriers (checkpoints written, inputs acked); 0 = after every batch.
   * Scores are published as soon as scored either way; a crash redelivers about this much input.
   */
  readonly checkpointEveryMs: number;
  /** Port of the health/metrics endpoint on 127.0.0.1; undefined = none. */
  readonly httpPort?: number;
  /** Project-local state directory (the local nats-server stores under `<stateDir>/nats`). */
  readonly stateDir: string;
  /** Durable name of the pull consumer. */
  readonly durable: string;
  /** Consumer ack wait; a message not acked within it is redelivered. */
  readonly ackWaitMs: number;
  /** Larger input messages go to the dead-letter stream. */
  readonly maxMessageBytes: number;
  /**
   * Where the engine runs: `thread` (the compute thread, a Web Worker), `main` (the I/O thread) or `auto`
   * (default): `main` on the cpu backend, whose per-batch compute (µs) costs less than a thread
   * hop (two messages and two wake-ups), `worker` on webgpu.
   */
  readonly engineThread: EngineThread;
  /**
   * Score messages of multi-row input messages (JSON arrays, f32 blocks): `row` (default), one
   * message per observation (`Nats-Msg-Id: <stream>:<seq>:<index>`); `message`, one message per
   * input message holding the JSON array of its records (`Nats-Msg-Id: <stream>:<seq>`), which
   * costs the server one stored message, one acknowledgement and one duplicate-window id per
   * input message instead of per observation. Single observations get one record either way.
   */
  readonly scoreMessages: ScoreMessages;
  /**
   * Duplicate window of the scores and dead-letter streams when the worker creates them, in
   * seconds (default 1800). Re-published records are dropped by `Nats-Msg-Id` within it, so it
   * must outlast the longest outage after which no duplicate may appear; the server keeps one id
   * per record for it (memory ≈ rate × window). At least twice the ack wait. Existing streams keep
   * theirs (the worker warns when it is shorter).
   */
  readonly duplicateWindowS: number;
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
  readonly obsSubject: string;
  readonly paramsBucket: string;
  readonly checkpointBucket: string;
}

/**
 * `telemetry` → streams TELEMETRY, TELEMETRY_SCORES, TELEMETRY_DLQ and KV buckets
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
    obsSubject: `${prefix}.obs.>`,
    paramsBucket: `${bucket}_params`,
    checkpointBucket: `${bucket}_checkpoints`,
  };
}

const PositiveInt = z.coerce.number().int().min(1);
const NatsUrl = z.string().regex(
  /^(nats|tls|ws|wss):\/\/[^\s/]+(:\d+)?\/?$/,
  "expected a nats://, tls://, ws:// or wss:// URL such as nats://127.0.0.1:4222",
);
const Prefix = z.string().regex(
  /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/,
  "expected subject tokens of letters, digits, '_' or '-' separated by dots, e.g. telemetry",
);
const Durable = z.string().regex(/^[A-Za-z0-9_-]+$/, "expected letters, digits, '_' or '-'");
const NonEmpty = z.string().min(1, "expected a non-empty string");
const Port = z.coerce.number().int().min(0).max(65535);

/** Flags of `start`, shared with the benchmark. */
export const LIVE_FLAGS = {
  "nats-url": { type: "string" },
  creds: { type: "string" },
  user: { type: "string" },
  password: { type: "string" },
  token: { type: "string" },
  "tls-ca": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  dim: { type: "string" },
  head: { type: "string" },
  hidden: { type: "string" },
  features: { type: "string" },
  "time-features": { type: "string" },
  diag: { type: "string" },
  optimizer: { type: "string" },
  horizon: { type: "string" },
  "change-threshold": { type: "string" },
  lr: { type: "string" },
  alpha: { type: "string" },
  warmup: { type: "string" },
  backend: { type: "string" },
  batch: { type: "string" },
  "max-wait-ms": { type: "string" },
  prefix: { type: "string" },
  "params-every-ms": { type: "string" },
  "checkpoint-every-ms": { type: "string" },
  http: { type: "string" },
  "state-dir": { type: "string" },
  durable: { type: "string" },
  "ack-wait-ms": { type: "string" },
  "max-message-bytes": { type: "string" },
  "engine-thread": { type: "string" },
  "score-messages": { type: "string" },
  "duplicate-window-s": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export const LIVE_USAGE = `usage: main.ts start [options]
Connection (flag, else environment variable):
  --nats-url URL        NATS_URL       nats://, tls://, ws:// or wss://; none = start a local nats-server
  --creds FILE          NATS_CREDS     credentials file (JWT + nkey)
  --user U              NATS_USER      with --password / NATS_PASSWORD
  --token T             NATS_TOKEN
  --tls-ca FILE         NATS_CA        CA certificate (PEM)
  --tls-cert FILE       NATS_CERT      client certificate (PEM), with --tls-key / NATS_KEY
Model:
  --dim N (3) --diag softplus|elu1p|exp --alpha P --warmup N (10·dim) --backend auto|webgpu|cpu
  --optimizer natural|adam (natural)  --horizon H (10000)  --change-threshold h (24; 0 = off)
  --lr X (adam only)
  --head conditional  --features K  --time-features daily,weekly  --hidden 32,32
                        a per-key network maps each observation's context to loc and scale_tril
Pipeline:
  --batch N (256)  --max-wait-ms MS (20)  --prefix P (telemetry)  --params-every-ms MS (1000)
  --checkpoint-every-ms MS (100)
  --durable NAME (mvn-worker)  --ack-wait-ms MS (30000)  --max-message-bytes N (1048576)
  --engine-thread auto|thread|main (auto: main on cpu, the compute thread on webgpu; "worker" = thread)
  --score-messages row|message (row: a score message per observation; message: one per input
                        message, the JSON array of its records, for arrays and f32 blocks)
  --duplicate-window-s S (1800)  of the scores and dead-letter streams the worker creates:
                        re-published records are deduplicated within it (≥ 2 × ack wait)
Service:
  --http PORT           /healthz, /readyz, /metrics on 127.0.0.1:PORT
  --state-dir DIR (.state)`;

type Values = {
  [K in keyof typeof LIVE_FLAGS]?: (typeof LIVE_FLAGS)[K]["type"] extends "boolean" ? boolean
    : string;
};

/** Splits `start` arguments; throws {@link ConfigError} on unknown flags. */
export function parseLiveFlags(args: string[]): Values {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: LIVE_FLAGS,
      allowPositionals: true,
    });
    if (positionals.length > 0) {
      throw new ConfigError(`unexpected argument '${positionals[0]}': start takes only options`);
    }
    return values as Values;
  } catch (cause) {
    if (cause instanceof ConfigError) throw cause;
    throw new ConfigError(`${(cause as Error).message}\n${LIVE_USAGE}`, { cause });
  }
}

/**
 * Resolves flags (already split by {@link parseLiveFlags}) and environment variables into a
 * {@link LiveConfig}. Throws {@link ConfigError} naming every bad setting.
 */
export function resolveLiveConfig(
  values: Values,
  env: Readonly<Record<string, string | undefined>>,
): LiveConfig {
  const errors: string[] = [];
  function pick<T>(
    flag: keyof typeof LIVE_FLAGS,
    envName: string | undefined,
    schema: z.ZodType<T>,
  ): T | undefined {
    const fromFlag = values[flag];
    const raw = typeof fromFlag === "string" ? fromFlag : envName ? env[envName] : undefined;
    if (raw === undefined || (envName !== undefined && raw === "" && fromFlag === undefined)) {
      return undefined;
    }
    const label = typeof fromFlag === "string" ? `--${flag}` : `${envName}`;
    const r = schema.safeParse(raw);
    if (!r.success) {
      errors.push(`invalid ${label}=${JSON.stringify(raw)}: ${r.error.issues[0]?.message}`);
      return undefined;
    }
    return r.data;
  }
  const HeadShape = HeadConfigInput.shape;
  const head = {
    dim: pick("dim", undefined, z.coerce.number().pipe(HeadShape.dim.unwrap())),
    diag: pick("diag", undefined, HeadShape.diag.unwrap()),
    optimizer: pick("optimizer", undefined, HeadShape.optimizer.unwrap()),
    horizon: pick("horizon", undefined, z.coerce.number().pipe(HeadShape.horizon.unwrap())),
    change_threshold: pick(
      "change-threshold",
      undefined,
      z.coerce.number().pipe(HeadShape.change_threshold.unwrap()),
    ),
    lr: pick("lr", undefined, z.coerce.number().pipe(HeadShape.lr.unwrap())),
    alpha: pick("alpha", undefined, z.coerce.number().pipe(HeadShape.alpha.unwrap())),
    warmup: pick("warmup", undefined, z.coerce.number().pipe(HeadShape.warmup.unwrap())),
    backend: pick("backend", undefined, HeadShape.backend.unwrap()),
    // The conditional head (docs/model.md).
    head: pick("head", undefined, HeadShape.head.unwrap()),
    hidden: pick(
      "hidden",
      undefined,
      _list.transform((a) => a.map(Number)).pipe(HeadShape.hidden.unwrap()),
    ),
    features: pick("features", undefined, z.coerce.number().pipe(HeadShape.features.unwrap())),
    time_features: pick("time-features", undefined, _list.pipe(HeadShape.time_features.unwrap())),
  };
  const nats: NatsSettings = {
    url: pick("nats-url", "NATS_URL", NatsUrl),
    creds: pick("creds", "NATS_CREDS", NonEmpty),
    user: pick("user", "NATS_USER", NonEmpty),
    password: pick("password", "NATS_PASSWORD", z.string()),
    token: pick("token", "NATS_TOKEN", NonEmpty),
    tlsCa: pick("tls-ca", "NATS_CA", NonEmpty),
    tlsCert: pick("tls-cert", "NATS_CERT", NonEmpty),
    tlsKey: pick("tls-key", "NATS_KEY", NonEmpty),
  };
  const batch = pick("batch", "MVN_BATCH", PositiveInt.max(1_000_000)) ?? 256;
  const maxWaitMs = pick("max-wait-ms", "MVN_MAX_WAIT_MS", z.coerce.number().int().min(0)) ?? 20;
  const prefix = pick("prefix", "MVN_PREFIX", Prefix) ?? DEFAULT_PREFIX;
  const paramsEveryMs = pick("params-every-ms", "MVN_PARAMS_EVERY_MS", z.coerce.number().min(0)) ??
    1000;
  const checkpointEveryMs = pick(
    "checkpoint-every-ms",
    "MVN_CHECKPOINT_EVERY_MS",
    z.coerce.number().min(0).max(60_000),
  ) ?? 100;
  const httpPort = pick("http", "MVN_HTTP", Port);
  const stateDir = pick("state-dir", "MVN_STATE_DIR", NonEmpty) ?? ".state";
  const durable = pick("durable", "MVN_DURABLE", Durable) ?? "mvn-worker";
  const ackWaitMs = pick("ack-wait-ms", "MVN_ACK_WAIT_MS", z.coerce.number().int().min(1000)) ??
    30_000;
  const maxMessageBytes = pick("max-message-bytes", "MVN_MAX_MESSAGE_BYTES", PositiveInt) ??
    1_048_576;
  const engineThread = pick(
    "engine-thread",
    "MVN_ENGINE_THREAD",
    // "worker" was this value's name before the compute thread was called so.
    z.enum([...ENGINE_THREADS, "worker"]).transform((v) => v === "worker" ? "thread" : v),
  ) ??
    "auto";
  const scoreMessages = pick("score-messages", "MVN_SCORE_MESSAGES", z.enum(SCORE_MESSAGES)) ??
    "row";
  const duplicateWindowS = pick(
    "duplicate-window-s",
    "MVN_DUPLICATE_WINDOW_S",
    PositiveInt.max(7 * 24 * 3600),
  ) ?? 1800;
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
  if (nats.user !== undefined && nats.password === undefined) {
    errors.push("NATS_USER/--user is set but NATS_PASSWORD/--password is not: expected both");
  }
  if ((nats.tlsCert === undefined) !== (nats.tlsKey === undefined)) {
    errors.push("expected NATS_CERT/--tls-cert and NATS_KEY/--tls-key together, found only one");
  }
  let headConfig: HeadConfig | undefined;
  if (errors.length === 0) {
    try {
      headConfig = resolveHeadConfig(
        Object.fromEntries(Object.entries(head).filter(([, v]) => v !== undefined)),
      );
    } catch (cause) {
      errors.push(`invalid model settings: ${(cause as Error).message}`);
    }
  }
  if (errors.length > 0 || headConfig === undefined) {
    throw new ConfigError(errors.join("\n"));
  }
  return {
    nats,
    head: headConfig,
    batch,
    maxWaitMs,
    prefix,
    paramsEveryMs,
    checkpointEveryMs,
    httpPort,
    stateDir,
    durable,
    ackWaitMs,
    maxMessageBytes,
    engineThread,
    scoreMessages,
    duplicateWindowS,
  };
}
