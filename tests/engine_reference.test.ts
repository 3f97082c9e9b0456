import assert from "node:assert/strict";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import { createEngine } from "../src/engine/thread/compute_thread.ts";
import { BACKENDS } from "./helpers/backends.ts";

interface Reference {
  dim: number;
  params: { loc: number[]; scale_tril: number[][] };
  points: number[][];
  log_prob: number[];
  mahalanobis2: number[];
  p_value: number[];
}

function load(name: string): Reference {
  return JSON.parse(Deno.readTextFileSync(new URL(`./fixtures/${name}`, import.meta.url)));
}

function maxRelError(got: ArrayLike<number>, want: number[]): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(Math.abs(want[i]), 1e-300));
  }
  return worst;
}

Deno.test("scores match the SciPy oracle on every backend", async (t) => {
  for (const backend of BACKENDS) {
    for (const file of ["logprob_d3.json", "logprob_d5.json"]) {
      await t.step(`${backend}: ${file}`, async () => {
        const ref = load(file);
        const d = ref.dim;
        await using engine = await createEngine(resolveHeadConfig({ dim: d, backend }), {
          log: () => {},
        });
        assert.equal(engine.backend, backend);
        await engine.setParams("ref", ref.params);
        const n = ref.points.length;
        const scores = await engine.process({
          dim: d,
          n,
          values: new Float64Array(ref.points.flat()),
          keyIndex: new Uint32Array(n),
          keys: ["ref"],
          learn: new Uint8Array(n),
        });
        assert.ok(
          maxRelError(scores.logProb, ref.log_prob) <= 1e-4,
          "log_prob within 1e-4 relative",
        );
        assert.ok(
          maxRelError(scores.mahalanobis2, ref.mahalanobis2) <= 1e-4,
          "mahalanobis2 within 1e-4",
        );
        // p-values inherit the float32 error of mahalanobis2 on webgpu, amplified by m2/2 in the tail.
        const pTol = backend === "cpu" ? 1e-9 : 1e-3;
        assert.ok(maxRelError(scores.pValue, ref.p_value) <= pTol, `p_value within ${pTol}`);
        for (let i = 0; i < n; i++) {
          let sum = 0;
          for (let a = 0; a < d; a++) sum += scores.contrib[i * d + a];
          assert.ok(Math.abs(sum - scores.mahalanobis2[i]) <= 1e-5 * scores.mahalanobis2[i]);
          // Parameters were preset, so anomalies are flagged without warm-up.
          assert.equal(scores.anomaly[i], ref.p_value[i] < 1e-3 ? 1 : 0);
          assert.equal(scores.seq[i], i + 1);
        }
      });
    }
  }
});

Deno.test("a frozen batch leaves the parameters untouched", async () => {
  const ref = load("logprob_d3.json");
  await using engine = await createEngine(resolveHeadConfig({ backend: "cpu" }), { log: () => {} });
  await engine.setParams("k", ref.params);
  const n = ref.points.length;
  await engine.process({
    dim: 3,
    n,
    values: new Float64Array(ref.points.flat()),
    keyIndex: new Uint32Array(n),
    keys: ["k"],
    learn: new Uint8Array(n),
  });
  const [snap] = await engine.snapshot(["k"]);
  assert.deepEqual(snap.loc, ref.params.loc);
  assert.equal(snap.steps, 0);
  assert.equal(snap.observations, n);
});

Deno.test("the worker boundary transfers batch buffers instead of copying them", async () => {
  await using engine = await createEngine(resolveHeadConfig({ backend: "cpu" }), { log: () => {} });
  const values = new Float64Array(3 * 8).map((_, i) => Math.sin(i));
  const scores = await engine.process({
    dim: 3,
    n: 8,
    values,
    keyIndex: new Uint32Array(8),
    keys: ["k"],
  });
  assert.equal(values.byteLength, 0, "the sent buffer is detached after transfer");
  assert.equal(scores.logProb.length, 8);
});
