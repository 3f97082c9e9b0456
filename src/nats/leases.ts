/**
 * Partition leases in a KV bucket (`<prefix>_leases`, entries expire `leaseMs` after their last
 * write): key `p.<N>` is held by the worker that created it and renews it with a revision-checked
 * update every `renewMs`; key `w.<worker>` is each worker's heartbeat. Every live worker targets
 * ceil(P / live workers) partitions: it releases the surplus gracefully (stop, commit, then delete
 * the lease with its revision) and takes free ones with `kv.create`.
 *
 * Fencing: a worker treats a partition as its own only while its last successful renewal (timed
 * from before the request) is younger than {@link FRESH_FRACTION} of the lifetime; past that the
 * {@link LeaseManager.fence} throws and the watchdog abandons the partition, well before the
 * server can expire the entry and another worker can create it. The checkpoints' revision checks
 * fence whatever is still in flight.
 *
 * @module
 */
import { JetStreamApiError } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";

/** A lease older than this fraction of its lifetime (without renewal) no longer counts. */
export const FRESH_FRACTION = 0.6;

/** The partition's lease is no longer fresh: nothing more may be committed for it. */
export class LeaseLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LeaseLostError";
  }
}

/** What the lease manager asks of the worker. */
export interface LeaseHooks {
  /** Starts the partition (its lease is held); rejects if it could not. */
  acquired(partition: number): Promise<void>;
  /**
   * Stops the partition: `graceful` finishes, commits and acks what is in flight; otherwise
   * (lease lost) abandons it without committing anything more. Resolves once stopped.
   */
  release(partition: number, graceful: boolean): Promise<void>;
}

/** Options of {@link LeaseManager}. */
export interface LeaseOptions {
  readonly kv: KV;
  readonly workerId: string;
  readonly partitions: number;
  /** Lease lifetime: the bucket's max age. */
  readonly leaseMs: number;
  /** Renewal interval; default leaseMs / 5 (2 s of a 10 s lease). */
  readonly renewMs?: number;
  readonly hooks: LeaseHooks;
  readonly log: (line: string) => void;
}

interface Held {
  rev: number;
  /** performance.now() before the request of the last successful write. */
  renewedAt: number;
  state: "starting" | "running" | "releasing";
  /** The renewal in progress. */
  renewing?: Promise<void>;
}

function isWrongLastSequence(e: unknown): boolean {
  return (e instanceof JetStreamApiError && (e.code === 10071 || e.code === 10164)) ||
    (e instanceof Error && /wrong last sequence/i.test(e.message));
}

/** A KV key of this bucket from a worker id (keeps `[-_A-Za-z0-9]`). */
export function workerKey(workerId: string): string {
  return `w.${workerId.replace(/[^-_A-Za-z0-9]/g, "_")}`;
}

/** Holds, renews, balances and releases this worker's partition leases. */
export class LeaseManager {
  readonly #o: LeaseOptions;
  readonly #held = new Map<number, Held>();
  readonly #background = new Set<Promise<void>>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #renewTimer: ReturnType<typeof setInterval> | undefined;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #ticking: Promise<void> | undefined;
  #stopping = false;
  #heartbeat: Promise<void> | undefined;
  /** Live workers seen at the last tick (this one included). */
  liveWorkers = 1;

  constructor(options: LeaseOptions) {
    this.#o = options;
  }

  get #renewMs(): number {
    return this.#o.renewMs ?? Math.max(100, Math.floor(this.#o.leaseMs / 5));
  }

  /** Partitions held (starting, running or being released), ascending. */
  get owned(): number[] {
    return [...this.#held.keys()].sort((a, b) => a - b);
  }

  /** True while this worker holds `partition` and renewed it recently enough to act on it. */
  fresh(partition: number): boolean {
    const h = this.#held.get(partition);
    return h !== undefined &&
      performance.now() - h.renewedAt < FRESH_FRACTION * this.#o.leaseMs;
  }

  /** Throws {@link LeaseLostError} unless `partition` is {@link fresh}. */
  fence(partition: number): void {
    if (!this.fresh(partition)) {
      throw new LeaseLostError(
        `partition ${partition}: lease not renewed within ${
          FRESH_FRACTION * this.#o.leaseMs
        } ms (or lost); abandoning it`,
      );
    }
  }

  /** First balancing round (heartbeat, acquisitions), then one every `renewMs`. */
  async start(): Promise<void> {
    // Renewals run on their own timer: a slow balancing round never holds them up.
    this.#renewTimer = setInterval(() => this.#renewAll(), this.#renewMs);
    await this.#tickOnce();
    this.#timer = setInterval(() => void this.#tickOnce(), this.#renewMs);
    this.#watchdog = setInterval(
      () => this.#checkFresh(),
      Math.max(50, Math.min(250, this.#o.leaseMs / 20)),
    );
  }

  /**
   * The worker gives up `partition` after its loop failed (a checkpoint conflict, a lost lease):
   * the lease is deleted (if still fresh) so that a worker (maybe this one) takes it afresh.
   */
  async drop(partition: number): Promise<void> {
    const h = this.#held.get(partition);
    if (h === undefined) return;
    const wasFresh = this.fresh(partition);
    this.#held.delete(partition);
    await h.renewing;
    if (wasFresh) await this.#deleteLease(partition, h.rev);
  }

  /** Releases every partition gracefully, deletes the heartbeat, stops renewing. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#ticking;
    const releases = [...this.#held.keys()].map((n) => this.#releaseGraceful(n));
    await Promise.all(releases);
    while (this.#background.size > 0) await Promise.all([...this.#background]);
    clearInterval(this.#timer);
    clearInterval(this.#renewTimer);
    clearInterval(this.#watchdog);
    await this.#ticking;
    await this.#heartbeat;
    await Promise.all([...this.#held.values()].map((h) => h.renewing));
    await this.#o.kv.delete(workerKey(this.#o.workerId)).catch(() => {});
  }

  #bg(p: Promise<void>): void {
    const q = p.catch((e) => this.#o.log(`lease task failed: ${e}`)).finally(() =>
      this.#background.delete(q)
    );
    this.#background.add(q);
  }

  #checkFresh(): void {
    for (const [n, h] of this.#held) {
      if (h.state === "releasing" && this.#stopping) continue;
      if (!this.fresh(n)) {
        this.#o.log(
          `partition ${n}: lease not renewed for ${
            Math.round(performance.now() - h.renewedAt)
          } ms; abandoning it (another worker takes it once it expires)`,
        );
        this.#held.delete(n);
        this.#bg(this.#o.hooks.release(n, false));
      }
    }
  }

  #tickOnce(): Promise<void> {
    if (this.#ticking !== undefined) return this.#ticking;
    this.#ticking = this.#tick()
      .catch((e) => this.#o.log(`lease round failed (retrying): ${e}`))
      .finally(() => (this.#ticking = undefined));
    return this.#ticking;
  }

  #value(): string {
    return JSON.stringify({ worker: this.#o.workerId, at: new Date().toISOString() });
  }

  async #tick(): Promise<void> {
    const kv = this.#o.kv;
    if (this.#stopping) return;
    await kv.put(workerKey(this.#o.workerId), this.#value());
    // One listing of the (small) bucket: heartbeats and leases.
    // (A key written again during the listing can be listed twice: count distinct ones.)
    const workers = new Set<string>();
    const taken = new Set<number>();
    for await (const k of await kv.keys()) {
      if (k.startsWith("w.")) workers.add(k);
      else if (k.startsWith("p.")) taken.add(Number(k.slice(2)));
    }
    const live = Math.max(1, workers.size);
    if (live !== this.liveWorkers) {
      this.#o.log(`live workers: ${this.liveWorkers} → ${live} (holding ${this.#held.size})`);
    }
    this.liveWorkers = live;
    const target = Math.ceil(this.#o.partitions / this.liveWorkers);
    const active = [...this.#held].filter(([, h]) => h.state !== "releasing").map(([n]) => n);
    if (active.length > target) {
      const surplus = active.sort((a, b) => b - a).slice(0, active.length - target);
      this.#o.log(
        `${this.liveWorkers} live workers: holding ${active.length} partitions, target ` +
          `${target}; handing over ${surplus.join(", ")}`,
      );
      for (const n of surplus) this.#bg(this.#releaseGraceful(n));
      return;
    }
    if (active.length === target) return;
    // Start the scan at a worker-specific offset so that workers do not all race for partition 0.
    let offset = 0;
    for (const ch of this.#o.workerId) offset = (offset * 31 + ch.charCodeAt(0)) >>> 0;
    let want = target - active.length;
    for (let i = 0; i < this.#o.partitions && want > 0 && !this.#stopping; i++) {
      const n = (offset + i) % this.#o.partitions;
      if (taken.has(n) || this.#held.has(n)) continue;
      const sent = performance.now();
      let rev: number;
      try {
        rev = await kv.create(`p.${n}`, this.#value());
      } catch (e) {
        if (isWrongLastSequence(e)) continue; // someone else was faster
        throw e;
      }
      want--;
      const h: Held = { rev, renewedAt: sent, state: "starting" };
      this.#held.set(n, h);
      this.#bg(this.#start(n, h));
    }
  }

  async #start(n: number, h: Held): Promise<void> {
    try {
      await this.#o.hooks.acquired(n);
      if (h.state === "starting") h.state = "running";
    } catch (e) {
      this.#o.log(`partition ${n}: start failed, handing it back: ${e}`);
      await this.drop(n);
    }
  }

  #renewAll(): void {
    for (const [n, h] of this.#held) {
      if (h.renewing === undefined) void this.#renew(n, h);
    }
    // The heartbeat too: a slow balancing round must not make this worker look dead.
    if (this.#heartbeat === undefined && !this.#stopping) {
      this.#heartbeat = this.#o.kv.put(workerKey(this.#o.workerId), this.#value())
        .then(() => {}, () => {})
        .finally(() => (this.#heartbeat = undefined));
    }
  }

  #renew(n: number, h: Held): Promise<void> {
    const sent = performance.now();
    h.renewing = (async () => {
      try {
        const rev = await this.#o.kv.update(`p.${n}`, this.#value(), h.rev);
        h.rev = rev;
        h.renewedAt = sent;
      } catch (e) {
        if (this.#held.get(n) !== h) return;
        if (isWrongLastSequence(e)) {
          this.#o.log(`partition ${n}: lease taken by another worker; abandoning it`);
          this.#held.delete(n);
          this.#bg(this.#o.hooks.release(n, false));
        } else {
          this.#o.log(`partition ${n}: lease renewal failed (retrying): ${e}`);
        }
      } finally {
        h.renewing = undefined;
      }
    })();
    return h.renewing;
  }

  async #releaseGraceful(n: number): Promise<void> {
    const h = this.#held.get(n);
    if (h === undefined || h.state === "releasing") return;
    h.state = "releasing";
    await this.#o.hooks.release(n, true);
    // Renewals went on while the partition finished; stop them, then delete with the revision.
    if (this.#held.get(n) !== h) return; // lost meanwhile
    const wasFresh = this.fresh(n);
    this.#held.delete(n);
    await h.renewing;
    if (wasFresh) await this.#deleteLease(n, h.rev);
  }

  async #deleteLease(n: number, rev: number): Promise<void> {
    try {
      await this.#o.kv.delete(`p.${n}`, { previousSeq: rev });
    } catch (e) {
      this.#o.log(`partition ${n}: releasing the lease failed (it expires by itself): ${e}`);
    }
  }
}
