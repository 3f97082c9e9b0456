/**
 * Creating an engine: in the compute thread (a Web Worker) (`workers/compute_thread.ts`, the default, so
 * that I/O threads never wait on tensor work) or in the calling thread. Batches and scores cross
 * the worker boundary as transferred typed arrays, never copied or JSON-encoded.
 *
 * @module
 */
import type { HeadConfig } from "../../config/head_config.ts";
import { type BackendChoice, chooseBackend } from "../backend.ts";
import { createCpuLoopKernel } from "../kernels/cpu_loop_kernel.ts";
import type { ScoringEngine } from "../engine.ts";
import { EngineError, engineErrorFrom, type SerializedError } from "../errors.ts";
import { LocalEngine } from "../local_engine.ts";
import { threadEnded } from "./thread_exit.ts";
import type {
  BackendName,
  HeadParams,
  HeadSnapshot,
  HeadState,
  ObservationBatch,
  ScoreBatch,
} from "../types.ts";
import { type FreshKeys, SentKeys } from "./key_names.ts";

/** Options of {@link createEngine}. */
export interface EngineOptions {
  /**
   * Run in the compute thread (a Web Worker; true, the default), in the calling thread (false),
   * or `auto`: in the calling thread on the cpu backend, in the compute thread otherwise. On cpu
   * a batch of a few hundred rows takes microseconds, less than the thread hop (two messages, two
   * wake-ups) costs.
   */
  readonly thread?: boolean | "auto";
  /** Receives log lines (backend choice, rejected updates). Default: stderr. */
  readonly log?: (line: string) => void;
}

/** Creates an engine in the current thread, choosing and initialising the tfjs backend. */
export async function createLocalEngine(
  config: HeadConfig,
  log: (line: string) => void = (l) => console.error(l),
  chosen?: BackendChoice,
): Promise<LocalEngine> {
  const choice = chosen ?? await chooseBackend(config.backend);
  if (choice.backend === "cpu") {
    // The cpu backend runs the fused op as a float64 loop; the same loop is registered as the
    // tfjs cpu kernel (src/kernels/) for tfjs users.
    return new LocalEngine(config, {
      kernel: createCpuLoopKernel(),
      float64: true,
      backendReason: choice.reason,
      log,
    });
  }
  const tf = await import("@tensorflow/tfjs");
  await import("@tensorflow/tfjs-backend-webgpu");
  const { createTfjsFusedKernel } = await import("../kernels/tfjs_kernel.ts");
  if (!(await tf.setBackend("webgpu"))) {
    throw new Error(
      `expected tfjs to initialise the webgpu backend, found it failed (${choice.reason})`,
    );
  }
  await tf.ready();
  return new LocalEngine(config, {
    kernel: createTfjsFusedKernel(tf, "webgpu"),
    float64: false,
    backendReason: choice.reason,
    log,
  });
}

/** Creates an engine; see {@link EngineOptions}. */
export async function createEngine(
  config: HeadConfig,
  options: EngineOptions = {},
): Promise<ScoringEngine> {
  const log = options.log ?? ((l: string) => console.error(l));
  if (config.head === "conditional" && options.thread !== true) {
    // The conditional head runs its network in this thread unless a thread is asked for.
    const { createConditionalEngine } = await import("../conditional/conditional_engine.ts");
    return await createConditionalEngine(config, log, await chooseBackend(config.backend));
  }
  if (options.thread === false) return await createLocalEngine(config, log);
  // The backend is chosen here, in the calling thread: probing WebGPU inside the worker when the
  // worker ends up on cpu left a GPU instance behind that could crash the process at exit.
  const choice = await chooseBackend(config.backend);
  if (options.thread === "auto" && choice.backend === "cpu") {
    return await createLocalEngine(config, log, choice);
  }
  return await WorkerEngine.start(config, log, choice);
}

/** Requests to the compute thread. */
export type WorkerRequest =
  | { id: number; op: "init"; config: HeadConfig; choice: BackendChoice }
  | {
    id: number;
    op: "process";
    batch: ObservationBatch;
    /** With `batch.keyIds`: the names new to the thread (`batch.keys` is then sent empty). */
    fresh?: FreshKeys;
  }
  | { id: number; op: "release"; scores: ScoreBatch }
  | { id: number; op: "snapshot"; keys?: readonly string[] }
  | { id: number; op: "exportState"; keys?: readonly string[] }
  | { id: number; op: "importState"; states: readonly HeadState[] }
  | { id: number; op: "forget"; keys: readonly string[] }
  | { id: number; op: "setParams"; key: string; params: HeadParams }
  | { id: number; op: "keys" }
  | { id: number; op: "close" };

/** Replies from the compute thread (`log` lines are unsolicited). */
export type WorkerReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: SerializedError }
  | { log: string };

/** Buffers of a batch, moved (not copied) across the boundary. */
export function batchTransferables(b: ObservationBatch): ArrayBuffer[] {
  const arrays: ArrayBufferView[] = [b.values, b.keyIndex];
  if (b.keyIds) arrays.push(b.keyIds);
  if (b.learn) arrays.push(b.learn);
  if (b.counted) arrays.push(b.counted);
  return _unique(arrays);
}

/** Buffers of a score batch, moved across the boundary. */
export function scoreTransferables(s: ScoreBatch): ArrayBuffer[] {
  return _unique([s.logProb, s.mahalanobis2, s.pValue, s.anomaly, s.contrib, s.seq]);
}

function _unique(views: ArrayBufferView[]): ArrayBuffer[] {
  const set = new Set<ArrayBuffer>();
  for (const v of views) if (v.buffer instanceof ArrayBuffer) set.add(v.buffer);
  return [...set];
}

/** The {@link ScoringEngine} proxy to the compute thread. */
class WorkerEngine implements ScoringEngine {
  readonly config: HeadConfig;
  backend: BackendName = "cpu";
  backendReason = "";
  readonly #worker: Worker;
  readonly #pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  #next = 1;
  #closed = false;
  /** Which key ids' names the thread has (batches with `keyIds` send each name once). */
  readonly #sentKeys = new SentKeys();
  /** The worker's thread (reported at init; null where unknown): close() waits for its end. */
  #thread: number | null = null;

  private constructor(config: HeadConfig, log: (line: string) => void) {
    this.config = config;
    this.#worker = new Worker(new URL("../../../workers/compute_thread.ts", import.meta.url), {
      type: "module",
    });
    this.#worker.onmessage = (ev: MessageEvent<WorkerReply>) => {
      const msg = ev.data;
      if ("log" in msg) {
        log(msg.log);
        return;
      }
      const p = this.#pending.get(msg.id);
      if (p === undefined) return;
      this.#pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(engineErrorFrom(msg.error));
    };
    this.#worker.onerror = (ev: ErrorEvent) => {
      ev.preventDefault();
      const err = new EngineError("thread_failed", `compute thread failed: ${ev.message}`);
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
      this.#closed = true;
    };
  }

  static async start(
    config: HeadConfig,
    log: (line: string) => void,
    choice: BackendChoice,
  ): Promise<WorkerEngine> {
    const e = new WorkerEngine(config, log);
    try {
      const r = await e.#call({ id: 0, op: "init", config, choice }) as {
        backend: BackendName;
        reason: string;
        thread: number | null;
      };
      e.backend = r.backend;
      e.backendReason = r.reason;
      e.#thread = r.thread;
    } catch (err) {
      e.#worker.terminate();
      throw err;
    }
    return e;
  }

  #call(req: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.#closed) {
      return Promise.reject(new EngineError("closed", "expected an open engine, found it closed"));
    }
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...req, id }, transfer);
    });
  }

  /** Note: the batch's typed arrays are transferred, so they are detached (empty) afterwards. */
  async process(batch: ObservationBatch): Promise<ScoreBatch> {
    const transfer = batchTransferables(batch);
    if (batch.keyIds === undefined) {
      return await this.#call({ id: 0, op: "process", batch }, transfer) as ScoreBatch;
    }
    const fresh = this.#sentKeys.fresh({ ...batch, keyIds: batch.keyIds });
    return await this.#call(
      { id: 0, op: "process", batch: { ...batch, keys: [] }, fresh },
      transfer,
    ) as ScoreBatch;
  }
  /** Moves the score buffers back to the worker's pool (no reply: nothing to wait for). */
  release(scores: ScoreBatch): void {
    if (this.#closed) return;
    const transfer = scoreTransferables(scores).filter((b) => b.byteLength > 0);
    if (transfer.length === 0) return;
    this.#worker.postMessage({ id: 0, op: "release", scores }, transfer);
  }
  async snapshot(keys?: readonly string[]): Promise<HeadSnapshot[]> {
    return await this.#call({ id: 0, op: "snapshot", keys }) as HeadSnapshot[];
  }
  async exportState(keys?: readonly string[]): Promise<HeadState[]> {
    return await this.#call({ id: 0, op: "exportState", keys }) as HeadState[];
  }
  async importState(states: readonly HeadState[]): Promise<void> {
    await this.#call({ id: 0, op: "importState", states });
  }
  async forget(keys: readonly string[]): Promise<void> {
    await this.#call({ id: 0, op: "forget", keys });
  }
  async setParams(key: string, params: HeadParams): Promise<void> {
    await this.#call({ id: 0, op: "setParams", key, params });
  }
  async keys(): Promise<string[]> {
    return await this.#call({ id: 0, op: "keys" }) as string[];
  }
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#call({ id: 0, op: "close" });
    } finally {
      this.#closed = true;
      this.#worker.terminate();
      // terminate() does not wait for the thread's teardown, which must not race the exit of
      // the process (see thread_exit.ts).
      if (this.#thread !== null) await threadEnded(this.#thread);
    }
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
