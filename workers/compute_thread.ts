/**
 * The compute thread: owns the engine (heads, tfjs backend, fused kernel) and answers
 * {@link WorkerRequest}s from `src/engine/thread/compute_thread.ts`, one at a time and in order;
 * errors go back with their `EngineError` code (`src/engine/errors.ts`).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import {
  createLocalEngine,
  scoreTransferables,
  type WorkerReply,
  type WorkerRequest,
} from "../src/engine/thread/compute_thread.ts";
import { serializeEngineError } from "../src/engine/errors.ts";
import type { ScoringEngine } from "../src/engine/engine.ts";
import { createConditionalEngine } from "../src/engine/conditional/conditional_engine.ts";
import { currentThreadId } from "../src/engine/thread/thread_exit.ts";
import { KeyNames } from "../src/engine/thread/key_names.ts";

let engine: ScoringEngine | null = null;
/** Names of the keys of batches sent with key ids (each sent once). */
const names = new KeyNames();
// Requests are chained so that batches are processed strictly in arrival order.
let chain: Promise<void> = Promise.resolve();

function reply(msg: WorkerReply, transfer: ArrayBuffer[] = []): void {
  self.postMessage(msg, transfer);
}

async function handle(req: WorkerRequest): Promise<void> {
  try {
    if (req.op === "init") {
      const log = (line: string) => reply({ log: line });
      engine = req.config.head === "conditional"
        ? await createConditionalEngine(req.config, log, req.choice)
        : await createLocalEngine(req.config, log, req.choice);
      reply({
        id: req.id,
        ok: true,
        result: {
          backend: engine.backend,
          reason: engine.backendReason,
          thread: currentThreadId(),
        },
      });
      return;
    }
    if (engine === null) throw new TypeError(`expected 'init' before '${req.op}', found no engine`);
    switch (req.op) {
      case "process": {
        const b = req.batch;
        const batch = req.fresh !== undefined && b.keyIds !== undefined
          ? { ...b, keys: names.keysOf(b.keyIds, req.fresh) }
          : b;
        const scores = await engine.process(batch);
        reply({ id: req.id, ok: true, result: scores }, scoreTransferables(scores));
        return;
      }
      case "release":
        return;
      case "snapshot":
        reply({ id: req.id, ok: true, result: await engine.snapshot(req.keys) });
        return;
      case "exportState":
        reply({ id: req.id, ok: true, result: await engine.exportState(req.keys) });
        return;
      case "importState":
        await engine.importState(req.states);
        reply({ id: req.id, ok: true, result: null });
        return;
      case "forget":
        await engine.forget(req.keys);
        reply({ id: req.id, ok: true, result: null });
        return;
      case "setParams":
        await engine.setParams(req.key, req.params);
        reply({ id: req.id, ok: true, result: null });
        return;
      case "keys":
        reply({ id: req.id, ok: true, result: await engine.keys() });
        return;
      case "close":
        await engine.close();
        engine = null;
        reply({ id: req.id, ok: true, result: null });
        return;
    }
  } catch (err) {
    // An EngineError keeps its code across the boundary: callers branch on it.
    reply({ id: req.id, ok: false, error: serializeEngineError(err) });
  }
}

self.onmessage = (ev: MessageEvent<WorkerRequest>) => {
  const req = ev.data;
  // Released buffers go straight to the pool: no reply, no need to wait for the chain.
  if (req.op === "release") {
    engine?.release(req.scores);
    return;
  }
  chain = chain.then(() => handle(req));
};
