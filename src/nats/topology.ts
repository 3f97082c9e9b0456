/**
 * Creates (or verifies) the worker's streams, its durable pull consumer and its KV buckets.
 *
 * Streams (prefix `telemetry`): `TELEMETRY` on `telemetry.obs.>` (input), `TELEMETRY_SCORES` on
 * `telemetry.scores.>`, `TELEMETRY_DLQ` on `telemetry.dlq.>`, `TELEMETRY_ALARMS` on
 * `telemetry.alarms.>` (alarm episodes); the output streams with a duplicate window
 * (30 min unless configured) so that re-published scores (same `Nats-Msg-Id`) are dropped by the
 * server.
 *
 * @module
 */
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  type StreamInfo,
} from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { DEFAULT_PREFIX, type Topology } from "../config/live_config.ts";

/** Duplicate window of the output streams, in nanoseconds (30 min). */
export const DUPLICATE_WINDOW_NS = 30 * 60 * 1e9;

/** The existing stream does not fit (its subjects do not cover what the worker needs). */
export class TopologyError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TopologyError";
  }
}

/** True when NATS subject filter `filter` matches every subject matched by `wanted`. */
export function filterCovers(filter: string, wanted: string): boolean {
  const f = filter.split(".");
  const w = wanted.split(".");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === ">") return true;
    if (i >= w.length) return false;
    if (w[i] === ">") return false;
    if (f[i] === "*") continue;
    if (w[i] === "*" || f[i] !== w[i]) return false;
  }
  return f.length === w.length;
}

function isNotFound(e: unknown, code: number): boolean {
  return e instanceof JetStreamApiError && e.code === code;
}

/** Creates the stream if missing; if present, checks that its subjects cover `subject`. */
export async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  subject: string,
  duplicateWindowNs?: number,
  replicas = 1,
): Promise<StreamInfo> {
  try {
    const info = await jsm.streams.info(name);
    const subjects = info.config.subjects ?? [];
    if (!subjects.some((s) => filterCovers(s, subject))) {
      throw new TopologyError(
        `expected stream ${name} to cover subject ${subject}, found subjects ${
          JSON.stringify(subjects)
        }`,
      );
    }
    return info;
  } catch (e) {
    if (!isNotFound(e, JetStreamApiCodes.StreamNotFound)) throw e;
  }
  return await jsm.streams.add({
    name,
    subjects: [subject],
    num_replicas: replicas,
    ...(duplicateWindowNs !== undefined ? { duplicate_window: duplicateWindowNs } : {}),
  });
}

/**
 * Ensures the four streams of a topology. Output streams it creates get `outputWindowNs`; an
 * existing one with a shorter window is left as it is, with a warning.
 */
export async function ensureStreams(
  jsm: JetStreamManager,
  topo: Topology,
  log: (line: string) => void = () => {},
  outputWindowNs = DUPLICATE_WINDOW_NS,
  replicas = 1,
): Promise<void> {
  await ensureStream(jsm, topo.inputStream, topo.obsSubject, DUPLICATE_WINDOW_NS, replicas);
  for (
    const [name, subject] of [
      [topo.scoresStream, `${topo.prefix}.scores.>`],
      [topo.dlqStream, `${topo.prefix}.dlq.>`],
      [topo.alarmsStream, `${topo.prefix}.alarms.>`],
    ]
  ) {
    const info = await ensureStream(jsm, name, subject, outputWindowNs, replicas);
    const window = info.config.duplicate_window ?? 0;
    if (window < outputWindowNs) {
      log(
        `warning: stream ${name} has a duplicate window of ${window / 1e9} s; re-published ` +
          `records after a restart are only deduplicated within it (expected ≥ ` +
          `${outputWindowNs / 1e9} s, --duplicate-window-s)`,
      );
    }
  }
}

/** Consumer settings shared by the worker and the relay benchmark. */
export interface ConsumerSettings {
  readonly durable: string;
  readonly ackWaitMs: number;
  /** Filter subject (one partition: `<prefix>.obs.<N>.>`); default: the whole input. */
  readonly filterSubject?: string;
  /** Replicas of the consumer; default: the stream's. */
  readonly replicas?: number;
}

/** `max_ack_pending` of the consumer: large so that pipelined batches never starve. */
export const MAX_ACK_PENDING = 100_000;

/**
 * (Re)creates the durable pull consumer so that delivery restarts, in stream order, right after
 * the consumer's ack floor. A plain resume would redeliver the unacked messages of a crashed
 * worker only after `ack_wait`, after newer ones, and per-key stream order is what makes
 * "learned exactly once" checkable against the checkpoint's last applied sequence.
 * Returns the first stream sequence that will be delivered.
 */
export async function resetConsumer(
  jsm: JetStreamManager,
  topo: Topology,
  settings: ConsumerSettings,
): Promise<number> {
  let startSeq = 1;
  try {
    const info = await jsm.consumers.info(topo.inputStream, settings.durable);
    // A consumer this function created at sequence S had everything before S acknowledged
    // already. Until it acks something itself, a restarted nats-server (2.9) reports its ack
    // floor as 0, which would redeliver the whole stream.
    const created = info.config.deliver_policy === DeliverPolicy.StartSequence
      ? info.config.opt_start_seq ?? 1
      : 1;
    startSeq = Math.max(info.ack_floor.stream_seq + 1, created);
    await jsm.consumers.delete(topo.inputStream, settings.durable);
  } catch (e) {
    if (!isNotFound(e, JetStreamApiCodes.ConsumerNotFound)) throw e;
  }
  // A filter equal to the stream's only subject selects nothing more, and nats-server 2.9 pays
  // for a wildcard filter on every delivery (see docs/live.md, "backlog stall"): omit it then.
  const subjects = (await jsm.streams.info(topo.inputStream)).config.subjects ?? [];
  const filter = settings.filterSubject ?? topo.obsSubject;
  const needsFilter = !(subjects.length === 1 && subjects[0] === filter);
  await jsm.consumers.add(topo.inputStream, {
    durable_name: settings.durable,
    // One ack per checkpoint acks everything before it: per-message acks were a third of the
    // worker's protocol traffic at one observation per message.
    ack_policy: AckPolicy.All,
    ack_wait: settings.ackWaitMs * 1e6,
    max_ack_pending: MAX_ACK_PENDING,
    max_deliver: -1,
    ...(needsFilter ? { filter_subject: filter } : {}),
    ...(settings.replicas !== undefined ? { num_replicas: settings.replicas } : {}),
    ...(startSeq > 1
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq }
      : { deliver_policy: DeliverPolicy.All }),
  });
  return startSeq;
}

/** Bucket names before they followed the prefix (shared by every prefix on a server). */
export const LEGACY_BUCKETS = { params: "mvn_params", checkpoints: "mvn_checkpoints" } as const;

/**
 * Opens (creating if missing) the parameters and checkpoint buckets. A new checkpoint bucket of
 * the default prefix is seeded from the legacy `mvn_checkpoints` when that exists, so an upgraded
 * worker resumes its keys instead of learning their stream again.
 */
export async function openBuckets(
  nc: NatsConnection,
  topo: Topology,
  log: (line: string) => void = () => {},
  replicas = 1,
): Promise<{ params: KV; checkpoints: KV }> {
  const kvm = new Kvm(nc);
  const jsm = await jetstreamManager(nc);
  const existed = await streamExists(jsm, `KV_${topo.checkpointBucket}`);
  const params = await kvm.create(topo.paramsBucket, { history: 1, replicas });
  const checkpoints = await kvm.create(topo.checkpointBucket, { history: 1, replicas });
  if (!existed && topo.prefix === DEFAULT_PREFIX) {
    if (await streamExists(jsm, `KV_${LEGACY_BUCKETS.checkpoints}`)) {
      const legacy = await kvm.open(LEGACY_BUCKETS.checkpoints);
      let copied = 0;
      for await (const k of await legacy.keys()) {
        const e = await legacy.get(k);
        if (e !== null && e.operation === "PUT") {
          await checkpoints.put(k, e.value);
          copied++;
        }
      }
      log(
        `copied ${copied} checkpoints from the legacy bucket '${LEGACY_BUCKETS.checkpoints}' into '${topo.checkpointBucket}' (bucket names now follow --prefix); the legacy bucket is left as it was`,
      );
    }
  }
  return { params, checkpoints };
}

/**
 * Opens (creating if missing) the lease bucket: entries expire `leaseMs` after their last write
 * (the bucket's max age), so a dead worker's leases and heartbeat vanish by themselves.
 */
export async function openLeaseBucket(
  nc: NatsConnection,
  topo: Topology,
  leaseMs: number,
  replicas = 1,
): Promise<KV> {
  const kvm = new Kvm(nc);
  const kv = await kvm.create(topo.leaseBucket, { history: 1, ttl: leaseMs, replicas });
  const status = await kv.status();
  if (Math.abs(status.ttl - leaseMs) > 1) {
    throw new TopologyError(
      `expected lease bucket ${topo.leaseBucket} to expire entries after ${leaseMs} ms ` +
        `(--lease-ms), found ${status.ttl} ms: every worker must use the same --lease-ms`,
    );
  }
  return kv;
}

async function streamExists(jsm: JetStreamManager, name: string): Promise<boolean> {
  try {
    await jsm.streams.info(name);
    return true;
  } catch (e) {
    if (isNotFound(e, JetStreamApiCodes.StreamNotFound)) return false;
    throw e;
  }
}
