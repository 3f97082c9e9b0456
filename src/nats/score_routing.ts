/**
 * Scoring requests across partitioned workers. The service's queue group hands a request to any
 * worker; only the owner of the key's partition holds the key's engine. So the owner of partition
 * N — and only while it holds N's lease — subscribes to the internal subject
 * `<prefix>.svc.owner.<N>.>` ({@link OwnerEndpoints}), and a worker that receives a request for a
 * key it does not own forwards it there ({@link forwardRequest}) and relays the reply. NATS is the
 * router: no responders on that subject means nobody owns N now (`no_owner`, 503, retryable).
 *
 * @module
 */
import {
  headers,
  type Msg,
  type NatsConnection,
  NoRespondersError,
  RequestError,
  type Subscription,
} from "@nats-io/nats-core";
import { F32_FEATURES_HEADER } from "../../schemas/messages.ts";
import {
  ownerSubjectPrefix,
  scoreSubjectPrefix,
  SERVICE_ERROR_CODES,
  type ServiceErrorReason,
  ServiceErrorReply,
} from "../../schemas/service.ts";
import type { RawMessage } from "../wire/decode.ts";
import { partitionOf } from "./partitions.ts";
import {
  ERROR_CODE_HEADER,
  ERROR_HEADER,
  failure,
  respondCore,
  scoreRequest,
  type ScoreServiceSettings,
  type ServiceReply,
} from "./score_service.ts";

/** Queue group of the owner endpoints: during a handover overlap only one owner answers. */
const OWNER_QUEUE = "mvn-owner";

/** Where a request for a key goes: its partition and that partition owner's internal subject. */
export interface OwnerRoute {
  readonly partition: number;
  readonly subject: string;
}

/** The route of `key` with `partitions` partitions (the server's mapping, `partitionOf`). */
export function ownerRoute(prefix: string, partitions: number, key: string): OwnerRoute {
  const partition = partitionOf(key, partitions);
  return { partition, subject: `${ownerSubjectPrefix(prefix, partition)}${key}` };
}

function isNoResponders(e: unknown): boolean {
  return e instanceof NoRespondersError ||
    (e instanceof RequestError && e.isNoResponders());
}

/**
 * Forwards a scoring request to the owner's internal subject (`route`) and returns its reply (records
 * or error) unchanged. Never throws: no responders is `no_owner`, no reply within `timeoutMs`
 * (or a lost connection) is `unavailable`; both are 503, to be retried.
 */
export async function forwardRequest(
  nc: NatsConnection,
  route: OwnerRoute,
  request: RawMessage,
  timeoutMs: number,
): Promise<ServiceReply> {
  const { partition, subject } = route;
  const h = headers();
  if (request.contentType !== undefined) h.set("Content-Type", request.contentType);
  if (request.features !== undefined) h.set(F32_FEATURES_HEADER, request.features);
  let reply: Msg;
  try {
    reply = await nc.request(subject, request.data, { timeout: timeoutMs, headers: h });
  } catch (e) {
    if (isNoResponders(e)) {
      return failure(
        "no_owner",
        `expected a worker owning the key's partition ${partition}, found none (a failover, ` +
          `rebalance or start-up in progress): retry`,
      );
    }
    return failure(
      "unavailable",
      `the owner of partition ${partition} did not answer within ${timeoutMs} ms ` +
        `(${e instanceof Error ? e.message : e}): retry`,
    );
  }
  const code = reply.headers?.get(ERROR_CODE_HEADER);
  if (!code) return { ok: true, body: reply.data };
  const parsed = ServiceErrorReply.safeParse(safeJson(reply.data));
  if (parsed.success) return failure(parsed.data.error.reason, parsed.data.error.message);
  const message = reply.headers?.get(ERROR_HEADER) || `error ${code} from the owner`;
  return { ok: false, reason: reasonOf(Number(code)), code: Number(code), message };
}

function safeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}

/** A reason for a bare error code (an owner of another version): the first with that code. */
function reasonOf(code: number): ServiceErrorReason {
  const found = (Object.entries(SERVICE_ERROR_CODES) as [ServiceErrorReason, number][])
    .find(([, c]) => c === code);
  return found?.[0] ?? "internal";
}

/**
 * The internal endpoints of the partitions this worker owns: {@link serve} when a partition's
 * loop runs, {@link unserve} before it stops. Requests are scored here, never forwarded again
 * (a partition lost meanwhile answers `no_owner`).
 */
export class OwnerEndpoints {
  readonly #nc: NatsConnection;
  readonly #s: ScoreServiceSettings;
  readonly #subs = new Map<number, Subscription>();

  constructor(nc: NatsConnection, settings: ScoreServiceSettings) {
    this.#nc = nc;
    this.#s = settings;
  }

  /** Partitions answered now, ascending. */
  get serving(): number[] {
    return [...this.#subs.keys()].sort((a, b) => a - b);
  }

  /** Starts answering partition `n`'s internal subject. */
  serve(n: number): void {
    if (this.#subs.has(n) || this.#nc.isClosed()) return;
    const own = ownerSubjectPrefix(this.#s.prefix, n);
    const pub = scoreSubjectPrefix(this.#s.prefix);
    const sub = this.#nc.subscribe(`${own}>`, {
      queue: OWNER_QUEUE,
      callback: (err, msg) => {
        if (err !== null) {
          this.#s.log?.(`scoring service: partition ${n} endpoint failed: ${err.message}`);
          return;
        }
        // Decoded as if it came on the public subject, so records and errors read the same.
        scoreRequest({
          subject: pub + msg.subject.slice(own.length),
          data: msg.data,
          contentType: msg.headers?.get("Content-Type") || undefined,
          features: msg.headers?.get(F32_FEATURES_HEADER) || undefined,
        }, { ...this.#s, route: undefined })
          .then((outcome) => respondCore(msg, outcome))
          .catch((e) => this.#s.log?.(`scoring service: replying failed: ${e}`));
      },
    });
    this.#subs.set(n, sub);
  }

  /** Stops answering partition `n` (requests then find no responders, or the new owner). */
  unserve(n: number): void {
    const sub = this.#subs.get(n);
    if (sub === undefined) return;
    this.#subs.delete(n);
    try {
      sub.unsubscribe();
    } catch {
      // the connection is closed: nothing to unsubscribe from
    }
  }

  /** Stops answering every partition. */
  close(): void {
    for (const n of [...this.#subs.keys()]) this.unserve(n);
  }
}
