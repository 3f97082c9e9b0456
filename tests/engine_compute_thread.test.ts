/**
 * Closing an engine that runs in the compute worker returns only once the worker's thread has
 * ended, so that a process exiting right after close() never races the thread's teardown (with
 * webgpu on Mesa that race aborted about one exit in 25).
 * An engine error keeps its code across the worker boundary.
 */
import assert from "node:assert/strict";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import { EngineError } from "../src/engine/errors.ts";
import { createEngine } from "../src/engine/thread/compute_thread.ts";
import { BACKENDS } from "./helpers/backends.ts";

/** Ids of this process's threads whose name starts with `worker-` (Deno's Web Workers). */
function workerThreads(): Set<string> {
  const out = new Set<string>();
  for (const e of Deno.readDirSync("/proc/self/task")) {
    try {
      const comm = Deno.readTextFileSync(`/proc/self/task/${e.name}/comm`);
      if (comm.startsWith("worker-")) out.add(e.name);
    } catch {
      // the thread ended while being listed
    }
  }
  return out;
}

let hasProc = true;
try {
  Deno.statSync("/proc/thread-self");
} catch {
  hasProc = false;
}

Deno.test({
  name: "closing a worker engine returns after the worker's thread has ended",
  ignore: !hasProc,
  fn: async (t) => {
    for (const backend of BACKENDS) {
      await t.step(backend, async () => {
        const before = workerThreads();
        const engine = await createEngine(resolveHeadConfig({ dim: 3, backend }), {
          thread: true,
          log: () => {},
        });
        const during = workerThreads();
        // At least the compute thread; a GPU driver may start threads of its own from it, which
        // inherit its name (Mesa's lavapipe does).
        assert.ok(
          during.size >= before.size + 1,
          `expected at least one more worker thread while open, found ${during.size - before.size}`,
        );
        await engine.process({
          dim: 3,
          n: 2,
          values: Float64Array.of(0, 1, 2, 1, 0, -1),
          keyIndex: Uint32Array.of(0, 0),
          keys: ["k"],
        });
        await engine.close();
        assert.deepEqual(workerThreads(), before);
      });
    }
  },
});

Deno.test("a refused batch rejects with its error code, in the compute thread and in-process", async (t) => {
  for (const thread of [true, false]) {
    await t.step(thread ? "compute thread" : "in-process", async () => {
      const engine = await createEngine(resolveHeadConfig({ dim: 3, backend: "cpu" }), {
        thread,
        log: () => {},
      });
      try {
        // m² of the third row overflows: the engine refuses the batch before any state change.
        const values = Float64Array.of(0.1, 0.2, 0.3, -0.2, 0.1, 0.0, 1e300, -1e300, 1e300);
        await assert.rejects(
          engine.process({ dim: 3, n: 3, values, keyIndex: new Uint32Array(3), keys: ["k"] }),
          (e: unknown) => {
            assert.ok(e instanceof EngineError, `expected an EngineError, found ${e}`);
            assert.equal(e.code, "non_finite_input");
            assert.match(e.message, /^expected finite values/);
            return true;
          },
        );
        assert.deepEqual(await engine.keys(), []);
      } finally {
        await engine.close();
      }
    });
  }
});
