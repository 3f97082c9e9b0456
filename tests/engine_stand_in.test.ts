/** The model-free stand-in engine: zero scores for the relay, N(0, I) scores for replay's floor. */
import assert from "node:assert/strict";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import { StandInEngine } from "../src/engine/stand_in.ts";

const batch = {
  dim: 2,
  n: 3,
  values: Float64Array.of(3, 4, 0, 0, 1, 1),
  keyIndex: Uint32Array.of(0, 1, 0),
  keys: ["a", "b"],
  counted: Uint8Array.of(1, 1, 0),
};

Deno.test("the stand-in engine scores without a model and counts each key's new rows", async (t) => {
  await t.step("standard_normal: m² = |x|², log_prob of N(0, I), contrib = x²", async () => {
    const e = new StandInEngine(resolveHeadConfig({ dim: 2, alpha: 1e-3 }), "standard_normal");
    const s = await e.process(batch);
    assert.deepEqual(Array.from(s.mahalanobis2), [25, 0, 2]);
    assert.deepEqual(Array.from(s.contrib), [9, 16, 0, 0, 1, 1]);
    assert.ok(Math.abs(s.logProb[0] - (-12.5 - Math.log(2 * Math.PI))) < 1e-12);
    // exp(−25/2) = 3.7e−6 < alpha: the only anomaly.
    assert.deepEqual(Array.from(s.anomaly), [1, 0, 0]);
    // The third row is a redelivery (counted 0): its seq repeats the key's count.
    assert.deepEqual(Array.from(s.seq), [1, 1, 1]);
    assert.deepEqual((await e.keys()).sort(), ["a", "b"]);
  });
  await t.step("zero: every score 0, p_value 1, never an anomaly", async () => {
    const e = new StandInEngine(resolveHeadConfig({ dim: 2 }), "zero");
    const s = await e.process(batch);
    assert.deepEqual(Array.from(s.mahalanobis2), [0, 0, 0]);
    assert.deepEqual(Array.from(s.pValue), [1, 1, 1]);
    assert.deepEqual(Array.from(s.anomaly), [0, 0, 0]);
    assert.deepEqual(await e.snapshot(), []);
  });
});
