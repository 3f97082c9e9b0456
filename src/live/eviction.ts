/**
 * Idle-key eviction for the learning loop (`loop.ts`, whose header holds the exactly-once
 * argument): {@link IdleKeys} records when each key in memory was last used and by which batch,
 * and which keys are evicted; {@link KeyEviction} drops idle keys, reloads them from their
 * checkpoints, and sets keys restored at start-up aside.
 *
 * @module
 */
import type { ScoringEngine } from "../engine/engine.ts";
import type { HeadState } from "../engine/types.ts";
import type { Item } from "./batch_builder.ts";
import type { LoopKeys } from "./loop_keys.ts";
import type { LiveMetrics } from "./metrics.ts";
import type { ParamsPublisher } from "./params.ts";
import type { CheckpointStore } from "./ports.ts";

/** When a key was last used, and by which batch. */
interface KeyUse {
  readonly at: number;
  readonly batch: number;
}

/** Keys in memory by last use, and evicted keys (see `LoopSettings.evictIdleMs`). */
export class IdleKeys {
  readonly #idleMs: number | undefined;
  /**
   * Each key in memory → its last use, oldest first (a use re-inserts the key, so a sweep stops at
   * the first key used too recently instead of visiting every key). Empty when eviction is off.
   */
  readonly #lastUse = new Map<string, KeyUse>();
  /** Evicted keys → the number of their eviction (a reload that raced a later one is dropped). */
  readonly #evicted = new Map<string, number>();
  #evictions = 0;

  /** `idleMs` undefined: eviction off, nothing is recorded. */
  constructor(idleMs: number | undefined) {
    this.#idleMs = idleMs;
  }

  /** Records a use of `key` by batch `no`. */
  use(key: string, no: number): void {
    if (this.#idleMs === undefined) return;
    this.#lastUse.delete(key);
    this.#lastUse.set(key, { at: performance.now(), batch: no });
  }

  isEvicted(key: string): boolean {
    return this.#evicted.has(key);
  }

  /** The evicted keys among the items' (each once). */
  evictedIn(items: readonly Item[]): string[] {
    if (this.#evicted.size === 0) return [];
    const out = new Set<string>();
    for (const it of items) {
      if (it.decoded.ok && this.#evicted.has(it.decoded.key)) out.add(it.decoded.key);
    }
    return [...out];
  }

  /**
   * Evicts (marks evicted, forgets their use) the keys idle for `idleMs` whose last batch is
   * committed (`batch ≤ committedNo`) and that `keep` does not hold back; returns them.
   */
  evictIdle(committedNo: number, keep: (key: string) => boolean): string[] {
    const idle = this.#idleMs;
    if (idle === undefined) return [];
    const now = performance.now();
    const out: string[] = [];
    for (const [key, use] of this.#lastUse) {
      if (now - use.at < idle) break;
      if (use.batch > committedNo || keep(key)) continue;
      out.push(key);
    }
    this.evict(out);
    return out;
  }

  /** Evicts `keys` (in memory) now, whatever their last use. */
  evict(keys: readonly string[]): void {
    for (const key of keys) {
      this.#lastUse.delete(key);
      this.#evicted.set(key, ++this.#evictions);
    }
  }

  /** The eviction numbers of `keys` now (undefined: not evicted), taken before reading them. */
  marks(keys: readonly string[]): (number | undefined)[] {
    return keys.map((k) => this.#evicted.get(k));
  }

  /**
   * Takes `key` back into memory if it is still evicted under `mark` (not reloaded by another
   * caller, nor evicted again, since the mark: then what was read for it may be older).
   */
  claim(key: string, mark: number | undefined): boolean {
    if (mark === undefined || this.#evicted.get(key) !== mark) return false;
    this.#evicted.delete(key);
    return true;
  }
}

/** What {@link KeyEviction} works on: the loop's per-key state, engine order and store. */
export interface EvictionSettings {
  /** Idle time before a key may be dropped; undefined: never. */
  readonly idleMs: number | undefined;
  readonly engine: ScoringEngine;
  /** Runs `f` on the engine after everything submitted before it (the loop's engine chain). */
  readonly onEngine: <T>(f: () => Promise<T>) => Promise<T>;
  readonly store: CheckpointStore;
  /** The loop's per-key state: highest applied sequence, alarm (dropped and restored here). */
  readonly keys: LoopKeys;
  readonly params: ParamsPublisher;
  readonly metrics: LiveMetrics;
  /** A fatal error: the loop stops. */
  readonly fail: (e: unknown) => void;
}

/** Drops idle keys from the loop and the engine, and reloads them from their checkpoints. */
export class KeyEviction {
  readonly keys: IdleKeys;
  readonly #s: EvictionSettings;
  #importFailed: unknown;
  /** Restored keys waiting for their parameters' publication before being set aside. */
  #aside: { keys: readonly string[]; published: Promise<void> } | undefined;

  constructor(settings: EvictionSettings) {
    this.#s = settings;
    this.keys = new IdleKeys(settings.idleMs);
  }

  /**
   * A reloaded key's state the engine refused (undefined if none): the engine no longer holds
   * what the loop assumes, so every later engine call must fail with it.
   */
  get importFailed(): unknown {
    return this.#importFailed;
  }

  /**
   * Drops keys idle for `idleMs` whose last batch is committed (`≤ committedNo`: their checkpoint
   * holds their state) and whose parameters are published; the engine forgets them after
   * everything submitted before.
   */
  sweep(committedNo: number): void {
    const s = this.#s;
    this.#drop(this.keys.evictIdle(committedNo, (k) => s.params.pending(k)));
  }

  /**
   * Start-up (or takeover): marks a chunk of restored keys for the parameters' catch-up and, with
   * eviction on, sets the chunk aside once that publication is done (see {@link restored}). The
   * previous chunk is set aside first, so its publication overlaps this chunk's read and at most
   * two chunks are in memory.
   */
  async restoredChunk(keys: readonly string[]): Promise<void> {
    const params = this.#s.params;
    if (this.#s.idleMs === undefined) {
      params.markDirty(keys);
      return;
    }
    await this.restored();
    params.markDirty(keys);
    this.#aside = { keys, published: params.publishDue(true) };
  }

  /**
   * Sets the last restored chunk aside once its parameters are published: evicted now, idle or
   * not, except keys whose publication failed (still due: a later sweep drops them).
   */
  async restored(): Promise<void> {
    const aside = this.#aside;
    if (aside === undefined) return;
    this.#aside = undefined;
    await aside.published;
    const out = aside.keys.filter((k) => !this.#s.params.pending(k));
    this.keys.evict(out);
    this.#drop(out);
  }

  /** Forgets evicted keys in the loop and, after everything submitted before, in the engine. */
  #drop(out: readonly string[]): void {
    if (out.length === 0) return;
    const s = this.#s;
    for (const key of out) s.keys.forget(key);
    s.metrics.keysEvicted += out.length;
    s.onEngine(() => s.engine.forget(out)).catch((e) => s.fail(e));
  }

  /**
   * Reloads evicted keys from their checkpoints: `lastApplied` and alarm state at once, the
   * engine's state after everything submitted before (so before the batch `nextBatch` that needs
   * them). A key without a checkpoint (it never held a state: all its observations were refused)
   * comes back as a new key.
   */
  async reload(keys: readonly string[], nextBatch: number): Promise<void> {
    const s = this.#s;
    const marks = this.keys.marks(keys);
    const cps = new Map((await s.store.load(keys)).map((c) => [c.state.key, c]));
    const states: HeadState[] = [];
    keys.forEach((key, i) => {
      if (!this.keys.claim(key, marks[i])) return;
      const c = cps.get(key);
      if (c !== undefined) {
        s.keys.setApplied(key, c.last_seq);
        if (c.alarm !== undefined) s.keys.importAlarm(key, c.alarm);
        states.push(c.state);
      }
      this.keys.use(key, nextBatch);
    });
    if (states.length === 0) return;
    s.metrics.keysReloaded += states.length;
    s.onEngine(async () => {
      try {
        await s.engine.importState(states);
      } catch (e) {
        this.#importFailed ??= e;
        throw e;
      }
    }).catch((e) => s.fail(e));
  }
}
