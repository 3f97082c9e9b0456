/**
 * Idle-key eviction's bookkeeping for the learning loop (`loop.ts`, which holds the argument):
 * when each key in memory was last used and by which batch, and which keys are evicted.
 *
 * @module
 */
import type { Item } from "./batch_builder.ts";

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
    for (const key of out) {
      this.#lastUse.delete(key);
      this.#evicted.set(key, ++this.#evictions);
    }
    return out;
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
