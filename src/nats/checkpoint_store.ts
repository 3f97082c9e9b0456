/**
 * The checkpoint store: per-key checkpoints in a KV bucket, revision-checked
 * ({@link KvCheckpointStore}); another writer's change is a {@link CheckpointConflictError}.
 *
 * @module
 */
import { AckPolicy, DeliverPolicy, JetStreamApiError } from "@nats-io/jetstream";
import { nanos } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import { Checkpoint } from "../../schemas/messages.ts";
import type { CheckpointRevisions, CheckpointStore } from "../live/ports.ts";
import { kvReadTarget } from "./client_internals.ts";
import { encodeKvKey } from "./kv_key.ts";
import type { KvBatchWriter, KvWrite } from "./kv_writer.ts";

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Another writer changed a checkpoint under us: two workers on one consumer, or a stale state. */
export class CheckpointConflictError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CheckpointConflictError";
  }
}

/** A KV entry that is not a valid checkpoint (`code` for callers that branch on it). */
export class InvalidCheckpointError extends TypeError {
  readonly code = "invalid_checkpoint";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InvalidCheckpointError";
  }
}

function isWrongLastSequence(e: unknown): boolean {
  return (e instanceof JetStreamApiError && (e.code === 10071 || e.code === 10164)) ||
    (e instanceof Error && /wrong last sequence/i.test(e.message));
}

/** Options of {@link KvCheckpointStore}. */
export interface CheckpointStoreOptions {
  /**
   * Prefix of every KV key (one partition's checkpoints: `p<N>.`); `loadAll` reads only keys
   * under it. Default none (the unpartitioned layout: one KV key per model key).
   */
  readonly keyPrefix?: string;
  /**
   * Called before every write attempt; throws when this store may no longer write (its
   * partition's lease is no longer fresh).
   */
  readonly fence?: () => void;
  /**
   * Writes a barrier's checkpoints through this writer, their acknowledgements batched (one KV
   * request each otherwise: with many keys, a write per input message). A write it cannot
   * confirm (refused, unanswered) is then checked and retried one by one as before.
   */
  readonly writer?: KvBatchWriter;
}

/** Checkpoints read together at start-up or takeover (see `loadAll`). */
const LOAD_CHUNK = 512;

/** How long one pull of `loadAll` may wait for its chunk. */
const LOAD_WAIT_MS = 30_000;

/** Checkpoints per batched call: bounds one call's outbound bytes and what its timeout covers. */
const WRITE_CHUNK = 4096;

/** Checkpoints in a KV bucket, one entry per (encoded) model key, revision-checked. */
export class KvCheckpointStore implements CheckpointStore {
  #revisions: CheckpointRevisions = new Map<string, number>();
  readonly #prefix: string;
  readonly #fence: () => void;
  readonly #writer: KvBatchWriter | undefined;

  constructor(
    private readonly kv: KV,
    private readonly log: (line: string) => void,
    options: CheckpointStoreOptions = {},
  ) {
    this.#prefix = options.keyPrefix ?? "";
    this.#fence = options.fence ?? (() => {});
    this.#writer = options.writer;
  }

  keepRevisionsIn(revisions: CheckpointRevisions): void {
    const own = this.#revisions;
    this.#revisions = revisions;
    if (own instanceof Map) { for (const [key, rev] of own) revisions.set(key, rev); }
  }

  /**
   * Reads the last value of every key under the prefix through one ephemeral consumer of the
   * bucket's stream (deliver last per subject), a chunk per pull: a get per key cost a round
   * trip and a reply subscription each (1 M keys: ≈ 60 s), a listing of the keys first held
   * every key's name at once, and only one chunk's states are held at a time.
   */
  async loadAll(each: (cps: readonly Checkpoint[]) => Promise<void>): Promise<number> {
    const { js, stream, filterSubject } = kvReadTarget(
      this.kv,
      this.#prefix === "" ? ">" : `${this.#prefix}>`,
    );
    const jsm = await js.jetstreamManager();
    const ci = await jsm.consumers.add(stream, {
      filter_subject: filterSubject,
      deliver_policy: DeliverPolicy.LastPerSubject,
      ack_policy: AckPolicy.None,
      mem_storage: true,
      num_replicas: 1,
      // Removed by the server if this process dies while reading.
      inactive_threshold: nanos(60_000),
    });
    try {
      const consumer = await js.consumers.get(stream, ci.name);
      let remaining = ci.num_pending, delivered = 0, n = 0;
      while (remaining > 0) {
        const batch = await consumer.fetch({
          max_messages: Math.min(LOAD_CHUNK, remaining),
          expires: LOAD_WAIT_MS,
        });
        const cps: Checkpoint[] = [];
        let got = 0;
        for await (const m of batch) {
          got++;
          // Unacknowledged delivery: a message lost on the way would leave a key behind unseen.
          if (m.info.deliverySequence !== ++delivered) {
            throw new Error(
              `reading checkpoints of '${filterSubject}': expected delivery ${delivered}, found ${m.info.deliverySequence}`,
            );
          }
          remaining = m.info.pending;
          const op = m.headers?.get("KV-Operation");
          if (op === "DEL" || op === "PURGE") continue;
          cps.push(this.#accept(m.subject, m.seq, m.json()));
        }
        if (got === 0) {
          throw new Error(
            `reading checkpoints of '${filterSubject}': expected ${remaining} more, found none within ${LOAD_WAIT_MS} ms`,
          );
        }
        n += cps.length;
        if (cps.length > 0) await each(cps);
      }
      return n;
    } finally {
      await jsm.consumers.delete(stream, ci.name).catch(() => {});
    }
  }

  /** Retried until the server answers (as writes are): a blip must not end the worker. */
  async load(keys: readonly string[]): Promise<Checkpoint[]> {
    for (let attempt = 1;; attempt++) {
      try {
        const got = await Promise.all(keys.map((k) => this.#get(this.#prefix + encodeKvKey(k))));
        return got.filter((cp) => cp !== null);
      } catch (e) {
        if (e instanceof InvalidCheckpointError) throw e;
        if (attempt === 1 || attempt % 10 === 0) {
          this.log(`checkpoints of ${keys.length} key(s) not read (retrying): ${e}`);
        }
        await delay(Math.min(2000, 100 * attempt));
      }
    }
  }

  /** The checkpoint in KV key `k` (null when none), its revision remembered for the next write. */
  async #get(k: string): Promise<Checkpoint | null> {
    const e = await this.kv.get(k);
    if (e === null || e.operation !== "PUT") return null;
    return this.#accept(k, e.revision, e.json());
  }

  /** The checkpoint stored as `revision` in `where` (a KV key or subject), revision remembered. */
  #accept(where: string, revision: number, value: unknown): Checkpoint {
    const parsed = Checkpoint.safeParse(value);
    if (!parsed.success) {
      throw new InvalidCheckpointError(
        `expected a checkpoint in KV key '${where}', found an invalid one: ${
          parsed.error.issues[0]?.message
        }`,
      );
    }
    const key = parsed.data.state.key;
    // Never step back: a read racing our own write may return the revision before it.
    this.#revisions.set(key, Math.max(this.#revisions.get(key) ?? 0, revision));
    return parsed.data;
  }

  async save(items: readonly Checkpoint[]): Promise<void> {
    const writer = this.#writer;
    if (writer === undefined) {
      await Promise.all(items.map((cp) => this.#saveOne(cp)));
      return;
    }
    const unconfirmed: Checkpoint[] = [];
    for (let i = 0; i < items.length; i += WRITE_CHUNK) {
      const chunk = items.slice(i, i + WRITE_CHUNK);
      this.#fence();
      // The same writes `#saveOne`'s first attempt makes (create: expected revision 0).
      const writes: KvWrite[] = chunk.map((cp) => ({
        key: this.#prefix + encodeKvKey(cp.state.key),
        data: JSON.stringify(cp),
        expect: this.#revisions.get(cp.state.key) ?? 0,
      }));
      const results = await writer.writeAll(this.kv, writes, 5_000);
      for (let j = 0; j < chunk.length; j++) {
        const r = results[j];
        if (r.ok) this.#revisions.set(chunk[j].state.key, r.revision);
        else unconfirmed.push(chunk[j]);
      }
    }
    // A refused write may be our own that landed with its reply lost, a deleted entry to
    // create again, or another writer's (a conflict); an unanswered one may have landed or not:
    // the one-by-one path tells them apart (it reads the entry back on a wrong last sequence).
    await Promise.all(unconfirmed.map((cp) => this.#saveOne(cp)));
  }

  async #saveOne(cp: Checkpoint): Promise<void> {
    const key = cp.state.key;
    const k = this.#prefix + encodeKvKey(key);
    const data = JSON.stringify(cp);
    for (let attempt = 1;; attempt++) {
      this.#fence();
      const rev = this.#revisions.get(key);
      try {
        const next = rev === undefined
          ? await this.kv.create(k, data)
          : await this.kv.update(k, data, rev);
        this.#revisions.set(key, next);
        return;
      } catch (e) {
        if (isWrongLastSequence(e)) {
          // Our own earlier attempt may have landed with its reply lost.
          const cur = await this.kv.get(k).catch(() => undefined);
          if (cur === undefined) continue;
          if (cur !== null && cur.string() === data) {
            this.#revisions.set(key, cur.revision);
            return;
          }
          throw new CheckpointConflictError(
            `expected checkpoint '${key}' at revision ${rev ?? "none"}, found revision ${
              cur?.revision ?? "none"
            } written by someone else (is another worker using this consumer?)`,
            { cause: e },
          );
        }
        if (attempt === 1 || attempt % 10 === 0) {
          this.log(`checkpoint '${key}' not written (retrying): ${e}`);
        }
        await delay(Math.min(2000, 100 * attempt));
      }
    }
  }
}
