/**
 * The scoring service: a NATS service (the micro protocol of `@nats-io/services`: discoverable
 * with `$SRV.PING` / `$SRV.INFO` / `$SRV.STATS`) named `mvn`, endpoint `score` on
 * `<prefix>.svc.score.>` — the model key is the remainder of the subject, as on `<prefix>.obs.>`.
 *
 * A request is any observation message form the worker consumes (one JSON observation, a JSON
 * array of them, or an f32 block with `Content-Type: application/vnd.mvn.f32`, decoded by
 * `src/wire/decode.ts`); the reply is the JSON array of score records against the key's current
 * parameters. Nothing is learned, counted or created: the engine runs the rows as a score-only
 * batch (`ObservationBatch.scoreOnly`), in the live loop's engine order, so a request never races
 * a batch. A bad request gets an error reply (`Nats-Service-Error-Code` / `Nats-Service-Error`
 * headers, and a {@link ServiceErrorReply} body), never a crash.
 *
 * Partitioned workers: a request for a key whose partition another worker owns is forwarded to
 * that owner (`src/nats/score_routing.ts`) and its reply relayed, so every request gets the
 * owner's answer, or `no_owner` (503, retryable) while nobody owns the partition.
 *
 * @module
 */
import { timeMs } from "../model/time_features.ts";
import { F32_FEATURES_HEADER } from "../../schemas/messages.ts";
import { headers, type Msg, type NatsConnection } from "@nats-io/nats-core";
import { type Service, type ServiceMsg, Svcm } from "@nats-io/services";
import {
  SCORE_ENDPOINT,
  scoreSubjectPrefix,
  SERVICE_ERROR_CODES,
  SERVICE_NAME,
  type ServiceErrorReason,
  type ServiceErrorReply,
  type ServiceScoreRecord,
} from "../../schemas/service.ts";
import { hasEngineErrorCode } from "../engine/errors.ts";
import { PartitionNotOwnedError } from "./partitions.ts";
import type { ScoringEngine } from "../engine/engine.ts";
import type { ObservationBatch } from "../engine/types.ts";
import { type DecodedRow, decodeMessage, type RawMessage } from "../wire/decode.ts";

/** Version the service announces. */
export const SERVICE_VERSION = "0.1.0";

/** Settings of {@link scoreRequest} and {@link startScoreService}. */
export interface ScoreServiceSettings {
  /** Subject prefix of the worker (`telemetry`). */
  readonly prefix: string;
  readonly dim: number;
  /** Largest request body accepted, in bytes. */
  readonly maxMessageBytes: number;
  /**
   * Runs `f` with the engine that holds `key`, in its live loop's engine order
   * (`LiveLoop.withEngine`), so that a request never races a batch. Throws an `unknown_key`
   * EngineError when this worker holds no engine for the key (a partition it does not own).
   */
  readonly withEngine: <T>(key: string, f: (engine: ScoringEngine) => Promise<T>) => Promise<T>;
  readonly log?: (line: string) => void;
  /** Conditional head: the context requests carry (`features`, a time `t`), as for input. */
  readonly context?: { readonly features: number; readonly timed: boolean };
  /**
   * Partitioned mode: when this worker does not own the key's partition, what passes the request
   * on to its owner (`forwardRequest` of `score_routing.ts`); `undefined` to score here.
   */
  readonly route?: (key: string) => ((request: RawMessage) => Promise<ServiceReply>) | undefined;
}

/** Outcome of one request. */
export type ScoreOutcome =
  | { readonly ok: true; readonly records: ServiceScoreRecord[] }
  | {
    readonly ok: false;
    readonly reason: ServiceErrorReason;
    readonly code: number;
    readonly message: string;
  };

/** A failed outcome of `reason`. */
export function failure(
  reason: ServiceErrorReason,
  message: string,
): Extract<ScoreOutcome, { ok: false }> {
  return { ok: false, reason, code: SERVICE_ERROR_CODES[reason], message };
}

/** What a request is answered with: a reply body (the records' JSON), or an error. */
export type ServiceReply =
  | { readonly ok: true; readonly body: string | Uint8Array }
  | Extract<ScoreOutcome, { ok: false }>;

function replyOf(outcome: ScoreOutcome): ServiceReply {
  return outcome.ok ? { ok: true, body: JSON.stringify(outcome.records) } : outcome;
}

/** The {@link ServiceErrorReply} body of an error. */
export function errorBody(e: Extract<ScoreOutcome, { ok: false }>): string {
  const body: ServiceErrorReply = {
    error: { code: e.code, reason: e.reason, message: e.message },
  };
  return JSON.stringify(body);
}

/**
 * Answers a core NATS request (the owner's internal endpoint) as the service would: the body, or
 * the error headers and body.
 */
export function respondCore(msg: Msg, outcome: ScoreOutcome): void {
  if (outcome.ok) {
    msg.respond(JSON.stringify(outcome.records));
    return;
  }
  const h = headers();
  h.set(ERROR_CODE_HEADER, String(outcome.code));
  h.set(ERROR_HEADER, outcome.message);
  msg.respond(errorBody(outcome), { headers: h });
}

/** The micro protocol's error headers. */
export const ERROR_CODE_HEADER = "Nats-Service-Error-Code";
export const ERROR_HEADER = "Nats-Service-Error";

/**
 * Scores one request (decoded as the worker decodes input messages) against the key's current
 * parameters, without learning. Never throws: every failure is an error outcome.
 */
export async function scoreRequest(
  msg: RawMessage,
  s: ScoreServiceSettings,
): Promise<ScoreOutcome> {
  const decoded = decodeMessage(msg, {
    dim: s.dim,
    obsPrefix: scoreSubjectPrefix(s.prefix),
    maxBytes: s.maxMessageBytes,
    features: s.context?.features,
    timed: s.context?.timed,
  });
  if (!decoded.ok) return failure(decoded.reason, decoded.detail);
  const { key, rows, multi } = decoded;
  const d = s.dim;
  const n = rows.length;
  const values = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const v = rows[i].values;
    for (let j = 0; j < d; j++) values[i * d + j] = v[j];
  }
  const batch: ObservationBatch = {
    dim: d,
    n,
    values,
    keyIndex: new Uint32Array(n),
    keys: [key],
    scoreOnly: true,
    ...contextArrays(rows, s.context),
  };
  try {
    const records = await s.withEngine(key, async (engine) => {
      const scores = await engine.process(batch);
      const out: ServiceScoreRecord[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const row = rows[i];
        const contrib: (number | null)[] = new Array(d);
        for (let j = 0; j < d; j++) contrib[j] = finiteOrNull(scores.contrib[i * d + j]);
        out[i] = {
          seq: scores.seq[i],
          key,
          ...(row.t !== undefined ? { t: row.t } : {}),
          log_prob: finiteOrNull(scores.logProb[i]),
          mahalanobis2: finiteOrNull(scores.mahalanobis2[i]),
          p_value: finiteOrNull(scores.pValue[i]),
          anomaly: scores.anomaly[i] === 1,
          ...(row.label !== undefined ? { label: row.label } : {}),
          contrib,
          ...(multi ? { index: i } : {}),
        };
      }
      engine.release(scores);
      return out;
    });
    return { ok: true, records };
  } catch (e) {
    const text = e instanceof Error ? e.message : String(e);
    if (e instanceof PartitionNotOwnedError) return failure("no_owner", text);
    if (hasEngineErrorCode(e, "unknown_key")) {
      return failure("unknown_key", `expected a key this worker holds, found '${key}'`);
    }
    if (hasEngineErrorCode(e, "non_finite_input")) return failure("non_finite", text);
    if (hasEngineErrorCode(e, "closed")) return failure("unavailable", "the worker is stopping");
    s.log?.(`scoring service: request for '${key}' failed: ${text}`);
    return failure("internal", text);
  }
}

/** The running service. */
export interface ScoreService {
  /** The micro-protocol service (its id, info and stats). */
  readonly service: Service;
  /** Stops answering: new requests are not taken; requests in progress still get their reply. */
  stop(): Promise<void>;
}

/** Registers the `mvn` service with its `score` endpoint on `nc`. */
export async function startScoreService(
  nc: NatsConnection,
  s: ScoreServiceSettings,
): Promise<ScoreService> {
  // @nats-io/services 3.0.0-25 (the newest 3.x on the registry) is typed against its own copy of
  // nats-core (3.0.0-50); at run time it needs only the connection's public methods.
  const svcm = new Svcm(nc as unknown as ConstructorParameters<typeof Svcm>[0]);
  const service = await svcm.add({
    name: SERVICE_NAME,
    version: SERVICE_VERSION,
    description: "Scores observations against a model key's current parameters, without learning",
    metadata: { prefix: s.prefix, dim: String(s.dim) },
  });
  const inFlight = new Set<Promise<void>>();
  let stopping = false;
  const handle = async (msg: ServiceMsg): Promise<void> => {
    const request: RawMessage = {
      subject: msg.subject,
      data: msg.data,
      contentType: contentTypeOf(msg),
      features: msg.headers?.get(F32_FEATURES_HEADER) || undefined,
    };
    const owner = s.route?.(msg.subject.slice(scoreSubjectPrefix(s.prefix).length));
    const reply: ServiceReply = stopping
      ? failure("unavailable", "the worker is stopping")
      : owner !== undefined
      ? await owner(request)
      : replyOf(await scoreRequest(request, s));
    if (reply.ok) {
      msg.respond(reply.body);
      return;
    }
    msg.respondError(reply.code, reply.message, errorBody(reply));
    countError(service, `${reply.reason}: ${reply.message}`);
  };
  service.addEndpoint(SCORE_ENDPOINT, {
    subject: `${scoreSubjectPrefix(s.prefix)}>`,
    metadata: { key: "the remainder of the subject after <prefix>.svc.score." },
    handler: (err, msg) => {
      if (err !== null) {
        s.log?.(`scoring service: subscription failed: ${err.message}`);
        return;
      }
      const job = handle(msg)
        .catch((e) => s.log?.(`scoring service: replying failed: ${e}`))
        .finally(() => inFlight.delete(job));
      inFlight.add(job);
    },
  });
  return {
    service,
    async stop() {
      stopping = true;
      await service.stop().catch((e) => s.log?.(`scoring service: stopping failed: ${e}`));
      await Promise.all([...inFlight]);
    },
  };
}

function contentTypeOf(msg: ServiceMsg): string | undefined {
  const ct = msg.headers?.get("Content-Type");
  return ct ? ct : undefined;
}

/**
 * Counts an error reply in the endpoint's `num_errors` / `last_error` ($SRV.STATS). The library
 * counts only errors its handler throws synchronously; this endpoint replies after the engine,
 * asynchronously, so it counts them itself through the endpoint's stats object (tested in
 * `tests/service_score.test.ts`, which fails if a library update moves it).
 */
function countError(service: Service, message: string): void {
  const handlers = (service as unknown as {
    handlers?: { name?: string; stats?: { countError?: (e: Error) => void } }[];
  }).handlers;
  handlers?.find((h) => h.name === SCORE_ENDPOINT)?.stats?.countError?.(new Error(message));
}

function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

/** The batch fields of a conditional head's context (features, times) for decoded rows. */
function contextArrays(
  rows: readonly DecodedRow[],
  context: { readonly features: number; readonly timed: boolean } | undefined,
): Partial<ObservationBatch> {
  if (context === undefined) return {};
  const F = context.features;
  const n = rows.length;
  const out: { features?: Float64Array; featureDim?: number; timeMs?: Float64Array } = {};
  if (F > 0) {
    const f = new Float64Array(n * F);
    rows.forEach((r, i) => {
      for (let j = 0; j < F; j++) f[i * F + j] = r.features![j];
    });
    out.features = f;
    out.featureDim = F;
  }
  if (context.timed) out.timeMs = Float64Array.from(rows, (r) => timeMs(r.t));
  return out;
}
