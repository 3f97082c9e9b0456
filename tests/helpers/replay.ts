/**
 * Test helpers for replay: an in-memory byte sink and a recording stand-in engine that keeps every
 * row replay sends it.
 */
import type { ReplayOptionsInput, ReplaySummary } from "../../schemas/replay.ts";
import { replay, type ReplayEngine } from "../../src/replay/replay.ts";
import { resolveHeadConfig } from "../../src/config/head_config.ts";
import { StandInEngine } from "../../src/engine/stand_in.ts";
import type { HeadParams, ObservationBatch, ScoreBatch } from "../../src/engine/types.ts";

/** Collects written bytes; `text()` decodes them. */
export class MemorySink {
  #parts: Uint8Array[] = [];
  write(p: Uint8Array): Promise<number> {
    this.#parts.push(p.slice());
    return Promise.resolve(p.length);
  }
  bytes(): Uint8Array {
    const n = this.#parts.reduce((s, p) => s + p.length, 0);
    const out = new Uint8Array(n);
    let off = 0;
    for (const p of this.#parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
  text(): string {
    return new TextDecoder().decode(this.bytes());
  }
  /** The NDJSON records written. */
  records(): Record<string, unknown>[] {
    return this.text().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
  }
}

/** One row as the engine received it. */
export interface SeenRow {
  readonly key: string;
  readonly values: number[];
  readonly learn: number;
}

/** A stand-in engine (standard-normal scores) that records rows, batch sizes and setParams calls. */
export class RecordingEngine implements ReplayEngine {
  readonly backend = "recording";
  readonly backendReason = "recording test engine";
  readonly rows: SeenRow[] = [];
  readonly batchSizes: number[] = [];
  readonly params = new Map<string, HeadParams>();
  closed = false;
  readonly #inner = new StandInEngine(resolveHeadConfig({ alpha: 1e-3 }), "standard_normal");

  process(batch: ObservationBatch): Promise<ScoreBatch> {
    this.batchSizes.push(batch.n);
    for (let i = 0; i < batch.n; i++) {
      this.rows.push({
        key: batch.keys[batch.keyIndex[i]],
        values: Array.from(batch.values.subarray(i * batch.dim, (i + 1) * batch.dim)),
        learn: batch.learn === undefined ? 1 : batch.learn[i],
      });
    }
    return this.#inner.process(batch);
  }
  setParams(key: string, params: HeadParams): Promise<void> {
    this.params.set(key, params);
    return Promise.resolve();
  }
  snapshot() {
    return this.#inner.snapshot();
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** Result of {@link replayWith}. */
export interface ReplayRun {
  readonly summary: ReplaySummary;
  readonly records: Record<string, unknown>[];
  readonly stderr: string[];
  readonly engine: RecordingEngine;
  readonly output: string;
}

/** Replays with a {@link RecordingEngine}, output and stderr kept in memory. */
export async function replayWith(options: ReplayOptionsInput): Promise<ReplayRun> {
  const sink = new MemorySink();
  const stderr: string[] = [];
  const engine = new RecordingEngine();
  const summary = await replay(options, {
    stdout: sink,
    stderr: (l) => stderr.push(l),
    progress: false,
    createEngine: () => Promise.resolve(engine),
  });
  return { summary, records: sink.records(), stderr, engine, output: sink.text() };
}
