/**
 * A small typed client of a running worker: subscribe to the scores, anomalies, alarms and
 * parameters of a key pattern (parsed and validated with the wire schemas), and call the scoring
 * service. Subjects are those of docs/api.md.
 *
 * @example
 * ```ts
 * import { connectClient } from "./mod.ts";
 *
 * await using client = await connectClient({
 *   servers: "nats://127.0.0.1:4222",
 *   prefix: "telemetry",
 * });
 * // How anomalous is this point for pump-7? (nothing is learned)
 * const [record] = await client.score("pump-7", [{ v: [1, 2, 3] }]);
 * console.log(record.log_prob, record.p_value, record.anomaly);
 * // Parameters of every pump: the stored ones first, then each update.
 * for await (const p of client.params("pump-*")) console.log(p.key, p.loc, p.observations);
 * ```
 *
 * @module
 */
import { AlarmEpisode } from "../../schemas/alarm.ts";
import {
  headers as natsHeaders,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { F32_CONTENT_TYPE, LiveScoreRecord, ParamsMessage } from "../../schemas/messages.ts";
import {
  scoreSubjectPrefix,
  ServiceErrorReply,
  type ServiceScoreRecord,
  ServiceScoreReply,
} from "../../schemas/service.ts";
import { topologyFor } from "../config/live_config.ts";
import { decodeKvKey } from "../nats/kv_key.ts";
import { encodeF32 } from "../wire/decode.ts";

/**
 * A key pattern: a model key, or NATS wildcards over its dot-separated tokens (`pump-*`
 * matches whole tokens only, so use `*` or `site.*`; `>` matches every key).
 */
export type KeyPattern = string;

/** An observation as the scoring service takes it (any of the JSON forms). */
export type ObservationInput =
  | { readonly v: readonly number[]; readonly t?: number | string; readonly label?: 0 | 1 }
  | { readonly x: number; readonly y?: number; readonly z?: number; readonly t?: number | string }
  | readonly number[];

/** Options of {@link connectClient}. */
export interface ConnectClientOptions {
  /** NATS server URL(s), e.g. `nats://127.0.0.1:4222`. */
  readonly servers: string | string[];
  /** The worker's subject prefix; default `telemetry`. */
  readonly prefix?: string;
  /** Client name shown by the server. */
  readonly name?: string;
}

/** Options of {@link MvnClient.score}. */
export interface ScoreOptions {
  /** Request timeout; default 5000 ms. */
  readonly timeoutMs?: number;
  /** Send the rows as one f32 block (application/vnd.mvn.f32) instead of JSON; `t` is dropped. */
  readonly f32?: boolean;
}

/** An error reply of the scoring service. */
export class ScoreServiceError extends Error {
  /** HTTP-like code (`Nats-Service-Error-Code`): 400, 404, 413, 422, 500, 503. */
  readonly code: number;
  /** Short reason, e.g. `unknown_key`, `dimension`, `malformed`. */
  readonly reason: string;

  constructor(code: number, reason: string, message: string) {
    super(message);
    this.name = "ScoreServiceError";
    this.code = code;
    this.reason = reason;
  }

  /**
   * True for 503 (`no_owner`: the key's partition is changing hands; `unavailable`): the same
   * request can succeed a moment later.
   */
  get retryable(): boolean {
    return this.code === 503;
  }
}

/** A subscription as an async iterable of parsed values; close it with `return()` or `close()`. */
export interface Feed<T> extends AsyncIterable<T>, AsyncDisposable {
  close(): Promise<void>;
}

/** The client; {@link connectClient} makes one with its own connection. */
export class MvnClient implements AsyncDisposable {
  readonly nc: NatsConnection;
  readonly prefix: string;
  readonly #owned: boolean;

  /** Uses `nc` (not closed by {@link close}). */
  constructor(nc: NatsConnection, prefix = "telemetry", owned = false) {
    this.nc = nc;
    this.prefix = prefix;
    this.#owned = owned;
  }

  /** Score records of the keys matching `keyPattern` (core NATS: from now on). */
  scores(keyPattern: KeyPattern = ">"): Feed<LiveScoreRecord> {
    return this.#feed(
      `${this.prefix}.scores.${keyPattern}`,
      (m) => LiveScoreRecord.parse(m.json()),
    );
  }

  /** Records of first-time observations flagged as anomalies. */
  anomalies(keyPattern: KeyPattern = ">"): Feed<LiveScoreRecord> {
    return this.#feed(
      `${this.prefix}.anomalies.${keyPattern}`,
      (m) => LiveScoreRecord.parse(m.json()),
    );
  }

  /** Alarm episodes on `<prefix>.alarms.<key>`, each once it closed (core NATS: from now on). */
  alarms(keyPattern: KeyPattern = ">"): Feed<AlarmEpisode> {
    return this.#feed(`${this.prefix}.alarms.${keyPattern}`, (m) => AlarmEpisode.parse(m.json()));
  }

  /**
   * Parameters of the keys matching `keyPattern`: the current ones from the KV bucket first (one
   * per key), then every update published on `<prefix>.params.<key>`. An update older than what
   * was already yielded for its key (`updated_at`) is skipped. The iteration fails when the
   * bucket does not exist (no worker of this prefix ran on the server).
   */
  params(keyPattern: KeyPattern = ">"): Feed<ParamsMessage> {
    const sub = this.nc.subscribe(`${this.prefix}.params.${keyPattern}`);
    const bucket = topologyFor(this.prefix).paramsBucket;
    const nc = this.nc;
    const seen = new Map<string, string>();
    const fresh = (p: ParamsMessage) => {
      const last = seen.get(p.key);
      if (last !== undefined && p.updated_at < last) return false;
      seen.set(p.key, p.updated_at);
      return true;
    };
    async function* run(): AsyncGenerator<ParamsMessage> {
      try {
        // Subscribed first, so no update falls between the KV read and the live feed.
        const kv = await new Kvm(nc).open(bucket);
        // open() binds without asking the server: status() fails when the bucket is missing.
        await kv.status().catch((cause) => {
          throw new Error(
            `expected KV bucket ${bucket} (does a worker of this prefix run on the server?)`,
            { cause },
          );
        });
        const keys: string[] = [];
        for await (const k of await kv.keys()) keys.push(k);
        keys.sort();
        for (const k of keys) {
          if (!subjectMatches(keyPattern, decodeKvKey(k))) continue;
          const e = await kv.get(k);
          if (e === null || e.operation !== "PUT") continue;
          const p = ParamsMessage.parse(e.json());
          if (fresh(p)) yield p;
        }
        for await (const m of sub) {
          const p = ParamsMessage.parse(m.json());
          if (fresh(p)) yield p;
        }
      } finally {
        sub.unsubscribe();
      }
    }
    return feedOf(run(), sub);
  }

  /**
   * Scores `observations` for `key` against its current parameters, without learning (the
   * `mvn` service's `score` endpoint). Rejects with a {@link ScoreServiceError} on an error reply.
   */
  async score(
    key: string,
    observations: readonly ObservationInput[],
    options: ScoreOptions = {},
  ): Promise<ServiceScoreRecord[]> {
    const subject = `${scoreSubjectPrefix(this.prefix)}${key}`;
    let reply: Msg;
    const timeout = options.timeoutMs ?? 5000;
    if (options.f32) {
      const rows = observations.map(rowValues);
      const h = natsHeaders();
      h.set("Content-Type", F32_CONTENT_TYPE);
      reply = await this.nc.request(subject, encodeF32(rows, rows[0]?.length ?? 0), {
        timeout,
        headers: h,
      });
    } else {
      reply = await this.nc.request(subject, JSON.stringify(observations), { timeout });
    }
    const code = reply.headers?.get("Nats-Service-Error-Code");
    if (code) {
      const body = ServiceErrorReply.safeParse(safeJson(reply));
      const message = reply.headers?.get("Nats-Service-Error") ?? "";
      throw new ScoreServiceError(
        Number(code),
        body.success ? body.data.error.reason : "unknown",
        message,
      );
    }
    return ServiceScoreReply.parse(reply.json());
  }

  /** Closes the connection when {@link connectClient} opened it. */
  async close(): Promise<void> {
    if (this.#owned && !this.nc.isClosed()) await this.nc.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #feed<T>(subject: string, parse: (m: Msg) => T): Feed<T> {
    const sub = this.nc.subscribe(subject);
    async function* run(): AsyncGenerator<T> {
      try {
        for await (const m of sub) yield parse(m);
      } finally {
        sub.unsubscribe();
      }
    }
    return feedOf(run(), sub);
  }
}

/** Connects to NATS and returns a client owning the connection. */
export async function connectClient(options: ConnectClientOptions): Promise<MvnClient> {
  const nc = await connect({ servers: options.servers, name: options.name ?? "mvn-client" });
  return new MvnClient(nc, options.prefix ?? "telemetry", true);
}

/** True when NATS subject `pattern` (with `*` and `>`) matches `subject`. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return i < s.length;
    if (i >= s.length) return false;
    if (p[i] !== "*" && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

function feedOf<T>(gen: AsyncGenerator<T>, sub: Subscription): Feed<T> {
  const close = async () => {
    sub.unsubscribe();
    await gen.return(undefined);
  };
  return {
    [Symbol.asyncIterator]: () => gen,
    close,
    [Symbol.asyncDispose]: close,
  };
}

function rowValues(o: ObservationInput): number[] {
  if (isNumberArray(o)) return [...o];
  if ("v" in o) return [...o.v];
  return [o.x, o.y, o.z].filter((v): v is number => v !== undefined);
}

function isNumberArray(o: ObservationInput): o is readonly number[] {
  return Array.isArray(o);
}

function safeJson(m: Msg): unknown {
  try {
    return m.json();
  } catch {
    return undefined;
  }
}
