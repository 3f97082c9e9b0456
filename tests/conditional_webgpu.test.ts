/**
 * The conditional head on webgpu (when an adapter exists; here the slow software one): the same
 * state scores the same batch as on cpu (float32 tfjs on both), and steps are taken.
 */
import assert from "node:assert/strict";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import { createEngine } from "../src/engine/thread/compute_thread.ts";
import type { ObservationBatch } from "../src/engine/types.ts";
import { BACKENDS } from "./helpers/backends.ts";
import { MODES_3D, modeStream } from "./helpers/conditional.ts";

Deno.test({
  name: "conditional head on webgpu: same scores as cpu from the same state, and it learns",
  ignore: !BACKENDS.includes("webgpu"),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const make = (backend: "cpu" | "webgpu") =>
      createEngine(
        resolveHeadConfig({ dim: 3, head: "conditional", features: 3, backend, init_rows: 64 }),
        { thread: false, log: () => {} },
      );
    const s = modeStream(448, MODES_3D, 2);
    const batch = (i: number): ObservationBatch => ({
      dim: 3,
      n: 64,
      values: s.values.slice(i * 3, (i + 64) * 3),
      keyIndex: new Uint32Array(64),
      keys: ["k"],
      features: s.features.slice(i * 3, (i + 64) * 3),
      featureDim: 3,
    });
    const cpu = await make("cpu");
    for (let i = 0; i < 320; i += 64) await cpu.process(batch(i));
    const gpu = await make("webgpu");
    assert.equal(gpu.backend, "webgpu");
    await gpu.importState(await cpu.exportState());
    for (let i = 320; i < 448; i += 64) {
      const a = await cpu.process(batch(i));
      const b = await gpu.process(batch(i));
      for (let r = 0; r < 64; r++) {
        const x = a.mahalanobis2[r], y = b.mahalanobis2[r];
        assert.ok(Math.abs(x - y) <= 1e-3 * Math.max(1, x), `row ${r}: ${x} vs ${y}`);
      }
    }
    const [sc, sg] = [(await cpu.snapshot())[0], (await gpu.snapshot())[0]];
    assert.equal(sg.steps, sc.steps);
    assert.ok(sg.steps > 0);
    await cpu.close();
    await gpu.close();
  },
});
