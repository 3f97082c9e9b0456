/**
 * In-memory I/O for the learning loop (`src/live/loop.ts`): a fake engine, a message source, an
 * output sink and a checkpoint store that record what happens, in order, in one `events` list.
 */
import { resolveHeadConfig } from "../../src/config/head_config.ts";
import type { Checkpoint, ParamsMessage } from "../../schemas/messages.ts";
import type { ScoringEngine } from "../../src/engine/engine.ts";
import { EngineError } from "../../src/engine/errors.ts";
import { LiveLoop } from "../../src/live/loop.ts";
import type {
  AlarmOut,
  CheckpointStore,
  DeadLetterOut,
  InputMessage,
  MessageSource,
  OutputSink,
  RecordOut,
  ScoreOut,
} from "../../src/live/ports.ts";
import { LiveMetrics } from "../../src/live/metrics.ts";
import type {
  HeadSnapshot,
  HeadState,
  ObservationBatch,
  ScoreBatch,
} from "../../src/engine/types.ts";

/** Counts observations per key (only `counted` rows) and scores every row with m2 = Σ x². */
/** The state of a d = 2 head that learned nothing but counts `observations`. */
export function fakeHeadState(key: string, observations: number): HeadState {
  return {
    key,
    dim: 2,
    diag: "softplus",
    frame_loc: [0, 0],
    frame_tril: [1, 0, 1],
    theta: [0, 0, 0, 0, 0],
    adam_m: [0, 0, 0, 0, 0],
    adam_v: [0, 0, 0, 0, 0],
    steps: 0,
    observations,
    rejected_updates: 0,
    init: null,
  };
}

/** A checkpoint of {@link fakeHeadState}: key applied up to `last_seq`, `observations` counted. */
export function fakeCheckpoint(key: string, last_seq: number, observations: number): Checkpoint {
  return { last_seq, written_at: "2026-01-01T00:00:00Z", state: fakeHeadState(key, observations) };
}

export class CountingEngine implements ScoringEngine {
  readonly backend = "cpu" as const;
  readonly backendReason = "fake";
  readonly config = resolveHeadConfig({ dim: 2, backend: "cpu" });
  readonly obs = new Map<string, number>();
  readonly learnedRows: string[] = [];
  /** Fails with an error of another kind (its message that of a refusal) instead of refusing. */
  untypedRefusal = false;
  release(_scores: ScoreBatch): void {}
  process(b: ObservationBatch): Promise<ScoreBatch> {
    // Like the real engine: a row it cannot score refuses the whole batch before any change.
    for (let i = 0; i < b.n; i++) {
      if (b.values[i * b.dim] === 666) {
        const message = `expected finite values, found 666 in row ${i}`;
        return Promise.reject(
          this.untypedRefusal
            ? new RangeError(message)
            : new EngineError("non_finite_input", message),
        );
      }
    }
    const m2 = new Float64Array(b.n);
    const seq = new Float64Array(b.n);
    const contrib = new Float64Array(b.n * b.dim);
    for (let i = 0; i < b.n; i++) {
      const key = b.keys[b.keyIndex[i]];
      const counted = b.counted === undefined || b.counted[i] === 1;
      if (counted) {
        this.obs.set(key, (this.obs.get(key) ?? 0) + 1);
        this.learnedRows.push(`${key}:${b.values[i * b.dim]}`);
      }
      seq[i] = this.obs.get(key) ?? 1;
      for (let j = 0; j < b.dim; j++) {
        const v = b.values[i * b.dim + j];
        contrib[i * b.dim + j] = v * v;
        m2[i] += v * v;
      }
    }
    return Promise.resolve({
      n: b.n,
      dim: b.dim,
      logProb: m2.map((v) => -v / 2),
      mahalanobis2: m2,
      // P(χ²_2 ≥ m²) = exp(−m²/2): d = 2 in these tests.
      pValue: m2.map((v) => Math.exp(-v / 2)),
      anomaly: new Uint8Array(b.n).map((_, i) => (m2[i] > 1000 ? 1 : 0)),
      contrib,
      seq,
    });
  }
  snapshot(keys?: readonly string[]): Promise<HeadSnapshot[]> {
    return Promise.resolve((keys ?? [...this.obs.keys()]).map((key) => ({
      key,
      dim: 2,
      loc: [0, 0],
      scale_tril: [[1, 0], [0, 1]],
      covariance: [[1, 0], [0, 1]],
      observations: this.obs.get(key) ?? 0,
      steps: 0,
      rejected_updates: 0,
    })));
  }
  exportState(keys?: readonly string[]): Promise<HeadState[]> {
    return Promise.resolve(
      (keys ?? [...this.obs.keys()]).map((key) => fakeHeadState(key, this.obs.get(key) ?? 0)),
    );
  }
  importState(states: readonly HeadState[]): Promise<void> {
    for (const s of states) this.obs.set(s.key, s.observations);
    return Promise.resolve();
  }
  forget(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.obs.delete(k);
    return Promise.resolve();
  }
  setParams(): Promise<void> {
    return Promise.resolve();
  }
  keys(): Promise<string[]> {
    return Promise.resolve([...this.obs.keys()]);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Hands out queued messages, then `null` once closed. */
export class ArraySource implements MessageSource {
  cumulativeAck = false;
  #queue: InputMessage[] = [];
  #closed = false;
  readonly events: string[];
  constructor(events: string[]) {
    this.events = events;
  }
  add(seq: number, key: string, body: string) {
    const data = new TextEncoder().encode(body);
    this.#queue.push({
      subject: `telemetry.obs.${key}`,
      seq,
      data,
      ack: () => this.events.push(`ack ${seq}`),
    });
  }
  next(timeoutMs: number): Promise<InputMessage | undefined | null> {
    const m = this.#queue.shift();
    if (m !== undefined) return Promise.resolve(m);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((r) => setTimeout(() => r(undefined), Math.min(timeoutMs, 5)));
  }
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}

export class MemorySink implements OutputSink {
  /** Every score message, as published. */
  readonly messages: ScoreOut[] = [];
  /** The one-record ones. */
  readonly scores: RecordOut[] = [];
  readonly anomalies: RecordOut[] = [];
  readonly dead: DeadLetterOut[] = [];
  readonly params: ParamsMessage[] = [];
  constructor(readonly events: string[]) {}
  publishScores(items: readonly ScoreOut[]): Promise<void> {
    for (const it of items) {
      this.events.push(`score ${it.msgId}`);
      this.messages.push(it);
      if ("record" in it) this.scores.push(it);
    }
    return Promise.resolve();
  }
  publishDeadLetters(items: readonly DeadLetterOut[]): Promise<void> {
    for (const it of items) this.events.push(`dead ${it.msgId}`);
    this.dead.push(...items);
    return Promise.resolve();
  }
  publishAnomalies(items: readonly RecordOut[]): void {
    this.anomalies.push(...items);
  }
  publishParams(items: readonly ParamsMessage[]): Promise<void> {
    this.params.push(...items);
    return Promise.resolve();
  }
  readonly alarms: AlarmOut[] = [];
  publishAlarms(items: readonly AlarmOut[]): Promise<void> {
    for (const it of items) this.events.push(`alarm ${it.msgId}`);
    this.alarms.push(...items);
    return Promise.resolve();
  }
}

export class MemoryStore implements CheckpointStore {
  readonly saved = new Map<string, Checkpoint>();
  failOn: string | undefined;
  constructor(readonly events: string[], initial: Checkpoint[] = []) {
    for (const c of initial) this.saved.set(c.state.key, c);
  }
  async loadAll(each: (cps: readonly Checkpoint[]) => Promise<void>): Promise<number> {
    // Two chunks (when there are two checkpoints or more), as the KV store hands them over.
    const all = [...this.saved.values()], half = Math.ceil(all.length / 2);
    for (const chunk of [all.slice(0, half), all.slice(half)]) {
      if (chunk.length > 0) await each(chunk);
    }
    return all.length;
  }
  load(keys: readonly string[]): Promise<Checkpoint[]> {
    this.events.push(`load ${keys.join(",")}`);
    const out: Checkpoint[] = [];
    for (const k of keys) {
      const c = this.saved.get(k);
      if (c !== undefined) out.push(c);
    }
    return Promise.resolve(out);
  }
  save(items: readonly Checkpoint[]): Promise<void> {
    for (const c of items) {
      if (c.state.key === this.failOn) return Promise.reject(new Error("conflict"));
    }
    for (const c of items) {
      this.events.push(`checkpoint ${c.state.key}@${c.last_seq}`);
      this.saved.set(c.state.key, c);
    }
    return Promise.resolve();
  }
}

// Checkpoint after every batch unless a test says otherwise: the loop's tests
// (`tests/live_loop.test.ts`) check the order of publications, checkpoints and acks batch by batch.
export function setup(
  initial: Checkpoint[] = [],
  batch = 4,
  checkpointEveryMs = 0,
  scoreMessages: "row" | "message" = "row",
  fence?: () => void,
  evictIdleMs?: number,
) {
  const events: string[] = [];
  const engine = new CountingEngine();
  const source = new ArraySource(events);
  const sink = new MemorySink(events);
  const store = new MemoryStore(events, initial);
  const loop = new LiveLoop(engine, source, sink, store, {
    dim: 2,
    batch,
    maxWaitMs: 5,
    paramsEveryMs: 0,
    checkpointEveryMs,
    obsPrefix: "telemetry.obs.",
    maxMessageBytes: 10_000,
    inputStream: "TELEMETRY",
    scoreMessages,
    // The loop's alarm tests are hand-worked with k = 1 (p < 0.1 adds evidence).
    alarmReference: 1,
    metrics: new LiveMetrics(),
    log: () => {},
    fence,
    evictIdleMs,
  });
  return { events, engine, source, sink, store, loop };
}

/** Adds messages 1..n (`[s,1]` to key `keyOf(s)`), one every ~2 ms (or slower, on a busy machine). */
export async function trickle(
  source: ArraySource,
  n: number,
  keyOf: (s: number) => string,
): Promise<void> {
  for (let s = 1; s <= n; s++) {
    source.add(s, keyOf(s), `[${s},1]`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export async function runUntilDrained(loop: LiveLoop, source: ArraySource): Promise<void> {
  await loop.init();
  const done = loop.run();
  await new Promise((r) => setTimeout(r, 60));
  await source.close();
  loop.stop();
  await done;
}
