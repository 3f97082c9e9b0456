/**
 * Parameter publication: {@link ParamsPublisher} publishes the parameters of keys learned since
 * their last publication, at most every `paramsEveryMs` per key, from engine snapshots taken in
 * the loop's engine order.
 *
 * @module
 */
import type { ParamsMessage } from "../../schemas/messages.ts";
import type { ScoringEngine } from "../engine/engine.ts";
import type { HeadSnapshot } from "../engine/types.ts";
import type { LoopKeys } from "./loop_keys.ts";
import type { LiveMetrics } from "./metrics.ts";
import type { OutputSink } from "./ports.ts";

/** What {@link ParamsPublisher} needs from the loop. */
export interface ParamsSettings {
  readonly engine: ScoringEngine;
  /** The loop's keys: each one's last publication is kept with it. */
  readonly keys: Pick<LoopKeys, "paramsAt" | "setParamsAt">;
  /** Runs `f` on the engine after everything submitted before it (the loop's engine chain). */
  readonly onEngine: <T>(f: () => Promise<T>) => Promise<T>;
  readonly sink: OutputSink;
  readonly paramsEveryMs: number;
  readonly metrics: LiveMetrics;
  readonly log: (line: string) => void;
}

/** Publishes parameters of keys marked dirty (see {@link ParamsPublisher.publishDue}). */
export class ParamsPublisher {
  readonly #s: ParamsSettings;
  readonly #dirty = new Set<string>();
  /** Keys of the publication in progress. */
  #publishing: ReadonlySet<string> = new Set();
  #busy: Promise<void> | undefined;

  constructor(settings: ParamsSettings) {
    this.#s = settings;
  }

  /** The publication in progress, if any. */
  get busy(): Promise<void> | undefined {
    return this.#busy;
  }

  /** Keys learned (committed) since their last publication. */
  markDirty(keys: Iterable<string>): void {
    for (const k of keys) this.#dirty.add(k);
  }

  /** Whether key's parameters are still to be published (dirty, or being published). */
  pending(key: string): boolean {
    return this.#dirty.has(key) || this.#publishing.has(key);
  }

  /**
   * Publishes parameters of dirty keys whose last publication is older than `paramsEveryMs`
   * (every dirty key with `force`); a failed publication leaves its keys dirty.
   */
  publishDue(force: boolean): Promise<void> {
    if (this.#busy !== undefined || this.#dirty.size === 0) {
      return this.#busy ?? Promise.resolve();
    }
    const now = performance.now();
    const keys = this.#s.keys;
    const due = [...this.#dirty].filter((k) =>
      force || now - keys.paramsAt(k) >= this.#s.paramsEveryMs
    );
    if (due.length === 0) return Promise.resolve();
    for (const k of due) {
      this.#dirty.delete(k);
      keys.setParamsAt(k, now);
    }
    this.#publishing = new Set(due);
    const job: Promise<HeadSnapshot[]> = this.#s.onEngine(() => this.#s.engine.snapshot(due));
    this.#busy = job
      .then(async (snaps) => {
        const updated_at = new Date().toISOString();
        const msgs: ParamsMessage[] = snaps.map((s) => ({
          key: s.key,
          dim: s.dim,
          loc: s.loc,
          scale_tril: s.scale_tril,
          covariance: s.covariance,
          observations: s.observations,
          steps: s.steps,
          updated_at,
          // Conditional head: the MVN above is at the key's latest context.
          ...(s.head === "conditional"
            ? { head: s.head, architecture: s.architecture, context: s.context, version: s.version }
            : {}),
        }));
        await this.#s.sink.publishParams(msgs);
        this.#s.metrics.paramsPublished += msgs.length;
      })
      .catch((e) => {
        for (const k of due) this.#dirty.add(k);
        this.#s.log(`publishing parameters failed (will retry): ${e}`);
      })
      .finally(() => {
        this.#busy = undefined;
        this.#publishing = new Set();
      });
    return this.#busy;
  }
}
