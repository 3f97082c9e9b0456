/**
 * `ObservationBatch.scoreOnly`: scores against the current parameters and changes nothing — no
 * key created (an unknown key refuses the batch with `unknown_key`), nothing learned or counted —
 * in the calling thread and across the compute-thread boundary.
 */
import assert from "node:assert/strict";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import { hasEngineErrorCode } from "../src/engine/errors.ts";
import { createEngine } from "../src/engine/thread/compute_thread.ts";
import type { ObservationBatch } from "../src/engine/types.ts";

function batch(rows: number[][], key: string, scoreOnly?: boolean): ObservationBatch {
  return {
    dim: 3,
    n: rows.length,
    values: new Float64Array(rows.flat()),
    keyIndex: new Uint32Array(rows.length),
    keys: [key],
    ...(scoreOnly === undefined ? {} : { scoreOnly }),
  };
}

const rows = Array.from({ length: 120 }, (_, i) => [Math.sin(i), Math.cos(i * 1.3), (i % 7) / 3]);

for (const thread of [false, true]) {
  Deno.test({
    name: `scoreOnly changes no state and creates no key (thread: ${thread})`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async (t) => {
      await using engine = await createEngine(resolveHeadConfig({ dim: 3, backend: "cpu" }), {
        thread,
        log: () => {},
      });
      await engine.process(batch(rows, "k"));
      const before = await engine.exportState();
      const probe = [[0.5, 0.5, 0.5], [3, -3, 3]];

      await t.step("scores equal a learning batch's scores, state unchanged", async () => {
        const s = await engine.process(batch(probe, "k", true));
        const lp = Array.from(s.logProb);
        assert.deepEqual(Array.from(s.seq), [120, 120]);
        assert.deepEqual(await engine.exportState(), before);
        // The same rows processed for real score identically (scored before learning).
        const real = await engine.process(batch(probe, "k"));
        assert.deepEqual(Array.from(real.logProb), lp);
        assert.deepEqual(Array.from(real.seq), [121, 122]);
      });

      await t.step("an unknown key is refused with unknown_key and not created", async () => {
        await assert.rejects(
          engine.process(batch(probe, "other", true)),
          (e) => hasEngineErrorCode(e, "unknown_key"),
        );
        assert.deepEqual(await engine.keys(), ["k"]);
      });
    },
  });
}
