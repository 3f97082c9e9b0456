/**
 * Closing an engine that runs in the compute worker returns only once the worker's thread has
 * ended, so that a process exiting right after close() never races the thread's teardown (with
 * webgpu on Mesa that race aborted about one exit in 25).
 * An engine error keeps its code across the worker boundary; `forget` and `importState` cross it.
 */
import assert from "node:assert/strict";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import { EngineError } from "../src/engine/errors.ts";
import { createEngine } from "../src/engine/thread/compute_thread.ts";
import { BACKENDS } from "./helpers/backends.ts";

let hasProc = true;
try {
  Deno.statSync("/proc/thread-self");
} catch {
  hasProc = false;
}

/**
 * Run by a child process: the `worker-` threads before open, while open, and after close. Counted
 * in a process of its own because `deno test --parallel` runs the other test modules on threads of
 * this one, whose Web Workers (and the threads their webgpu driver starts, which inherit the worker
 * thread's name) come and go meanwhile.
 */
const CHILD = `
import { resolveHeadConfig } from "./src/config/head_config.ts";
import { createEngine } from "./src/engine/thread/compute_thread.ts";
function workerThreads() {
  const out = [];
  for (const e of Deno.readDirSync("/proc/self/task")) {
    try {
      const comm = Deno.readTextFileSync("/proc/self/task/" + e.name + "/comm");
      if (comm.startsWith("worker-")) out.push(e.name);
    } catch {
      // the thread ended while being listed
    }
  }
  return out.sort();
}
const backend = Deno.env.get("MVN_THREAD_TEST_BACKEND");
const before = workerThreads();
const engine = await createEngine(resolveHeadConfig({ dim: 3, backend }), {
  thread: true,
  log: () => {},
});
const during = workerThreads();
await engine.process({
  dim: 3,
  n: 2,
  values: Float64Array.of(0, 1, 2, 1, 0, -1),
  keyIndex: Uint32Array.of(0, 0),
  keys: ["k"],
});
await engine.close();
console.log(JSON.stringify({ before, during, after: workerThreads() }));
`;

Deno.test({
  name: "closing an engine in the compute thread returns after the thread has ended",
  ignore: !hasProc,
  fn: async (t) => {
    const root = new URL("..", import.meta.url).pathname;
    for (const backend of BACKENDS) {
      await t.step(backend, async () => {
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["eval", "--ext=ts", CHILD],
          cwd: root,
          env: { MVN_THREAD_TEST_BACKEND: backend, NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const stderr = new TextDecoder().decode(out.stderr);
        assert.equal(
          out.code,
          0,
          `the child exited with ${out.code} (signal ${out.signal}): ${stderr}`,
        );
        const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
        const { before, during, after } = JSON.parse(lines.at(-1)!) as Record<string, string[]>;
        // The compute thread, and on webgpu the threads its driver started from it.
        assert.ok(during.length > before.length, "expected more worker threads while open");
        assert.deepEqual(after, before, "expected every worker thread to have ended after close()");
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
        // The third row holds a NaN: the engine refuses the batch before any state change.
        const values = Float64Array.of(0.1, 0.2, 0.3, -0.2, 0.1, 0.0, 0.5, NaN, 0.5);
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

Deno.test("forget drops keys and importState brings them back, in the compute thread and in-process", async (t) => {
  for (const thread of [true, false]) {
    await t.step(thread ? "compute thread" : "in-process", async () => {
      await using engine = await createEngine(resolveHeadConfig({ dim: 2, backend: "cpu" }), {
        thread,
        log: () => {},
      });
      const values = Float64Array.of(0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8);
      await engine.process({
        dim: 2,
        n: 4,
        values,
        keyIndex: Uint32Array.of(0, 1, 0, 1),
        keys: ["a", "b"],
      });
      const [a] = await engine.exportState(["a"]);
      await engine.forget(["a", "never-seen"]);
      assert.deepEqual(await engine.keys(), ["b"]);
      await engine.importState([a]);
      assert.deepEqual(await engine.exportState(["a"]), [a]);
      assert.equal(a.observations, 2);
    });
  }
});

Deno.test("batches with key ids score alike in the compute thread, in-process by id and by name", async (t) => {
  // Five batches over four keys whose ids first appear out of order (3 before 1), with the
  // same key at different positions, and one key dropped and restored between batches;
  // in-process by name (no ids) is the reference.
  const keys = ["w", "x", "y", "z"];
  const plan = [[3, 0], [0, 3, 2], [2, 1], [1, 3, 0, 2], [2, 0]];
  const batches = plan.map((ids, b) => {
    const n = 2 * ids.length;
    const values = new Float64Array(n * 2);
    for (let i = 0; i < values.length; i++) values[i] = Math.sin(7 * b + 3 * i) * (1 + (i % 3));
    const keyIndex = new Uint32Array(n);
    for (let i = 0; i < n; i++) keyIndex[i] = i % ids.length;
    return { ids, values, keyIndex };
  });
  const run = async (thread: boolean, withIds: boolean) => {
    await using engine = await createEngine(resolveHeadConfig({ dim: 2, backend: "cpu" }), {
      thread,
      log: () => {},
    });
    const out: number[][] = [];
    for (const { ids, values, keyIndex } of batches) {
      const s = await engine.process({
        dim: 2,
        n: keyIndex.length,
        values: values.slice(),
        keyIndex: keyIndex.slice(),
        keys: ids.map((id) => keys[id]),
        ...(withIds ? { keyIds: Uint32Array.from(ids) } : {}),
      });
      out.push([...s.logProb, ...s.seq]);
      if (out.length === 2) {
        // A key dropped and restored between batches is found again (a new slot).
        const [w] = await engine.exportState(["w"]);
        await engine.forget(["w"]);
        await engine.importState([w]);
      }
    }
    return { scores: out, state: await engine.exportState(keys) };
  };
  const reference = await run(false, false);
  for (const [thread, withIds] of [[true, true], [false, true], [true, false]]) {
    await t.step(
      `${thread ? "compute thread" : "in-process"}, ${withIds ? "ids" : "names"}`,
      async () => {
        assert.deepEqual(await run(thread, withIds), reference);
      },
    );
  }
});
