/**
 * The gradient the fused statistics give (model/gradient.ts `gradientFromStats`) against tfjs autodiff
 * of the op-by-op baseline (reference_head.ts), for each diagonal transform.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { statsWidth } from "../src/engine/kernels/fused_kernel.ts";
import { gradientFromStats } from "../src/model/gradient.ts";
import { thetaLength, trilFromTheta } from "../src/model/parameterisation.ts";
import { mvnFusedCpu } from "../src/engine/kernels/cpu_fused.ts";
import {
  createReferenceHead,
  referenceLossAndGrads,
  ReferenceTrainer,
  robustWeight,
} from "../src/engine/reference_head.ts";
import type { DiagTransform } from "../src/engine/types.ts";
import { mulberry32 as rng } from "../src/model/prng.ts";

Deno.test("gradient from fused statistics equals tfjs autodiff of the op-by-op head", async (t) => {
  await tf.setBackend("cpu");
  for (const diag of ["softplus", "elu1p", "exp"] as DiagTransform[]) {
    for (const d of [1, 3, 5]) {
      await t.step(`${diag} d=${d}`, () => {
        const u = rng(d * 7 + diag.length);
        const normal = () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
        const theta = Float64Array.from({ length: thetaLength(d) }, () => 0.4 * normal());
        const n = 500;
        const x = Float64Array.from({ length: n * d }, () => 1.5 * normal() + 0.3);
        x[0] = 40; // one far outlier, so a robust weight hits the floor
        const rowWeight = Float32Array.from({ length: n }, () => (u() < 0.2 ? 0 : 1));
        const tril = new Float64Array(d * d);
        trilFromTheta(theta, d, diag, tril);
        const robustC = d + 1;
        const robustFloor = 0.02;
        const fused = mvnFusedCpu({
          n,
          d,
          K: 1,
          x,
          keyIdx: new Int32Array(n),
          rowWeight,
          loc: theta.subarray(0, d),
          tril,
          robustC,
          robustFloor,
        });
        const gFused = gradientFromStats(theta, fused.stats.subarray(0, statsWidth(d)), d, diag);

        // Autodiff sees only the learned rows, with their robust weights as constants.
        const keep: number[] = [];
        for (let i = 0; i < n; i++) if (rowWeight[i] > 0) keep.push(i);
        const xs = keep.flatMap((i) => Array.from(x.subarray(i * d, (i + 1) * d)));
        const ws = keep.map((i) => robustWeight(fused.m2[i], robustC, robustFloor));
        assert.ok(ws.some((w) => w < 1), "some robust weights must be active");
        const head = createReferenceHead(tf, d, diag, theta);
        const { loss, grads } = referenceLossAndGrads(tf, head, xs, ws);
        head.dispose();

        let logDet = 0;
        for (let a = 0; a < d; a++) logDet += Math.log(tril[a * d + a]);
        const lossWant = keep.reduce(
          (s, i, r) => s + ws[r] * (0.5 * fused.m2[i] + logDet + (d / 2) * Math.log(2 * Math.PI)),
          0,
        ) / keep.length;
        assert.ok(Math.abs(loss - lossWant) <= 1e-5 * (1 + Math.abs(lossWant)), `loss ${loss}`);

        const scale = Math.max(...gFused.map(Math.abs));
        assert.equal(grads.length, gFused.length);
        for (let p = 0; p < grads.length; p++) {
          assert.ok(
            Math.abs(grads[p] - gFused[p]) <= 2e-5 * (1 + scale),
            `θ[${p}]: fused ${gFused[p]}, autodiff ${grads[p]}`,
          );
        }
      });
    }
  }
});

Deno.test("op-by-op keyed trainer scores, learns and leaks no tensors", async (t) => {
  await tf.setBackend("cpu");
  const d = 2;
  const trainer = new ReferenceTrainer(tf, {
    d,
    diag: "softplus",
    lr: 0.05,
    robustC: 100,
    robustFloor: 0.01,
  });
  const n = 64;
  const x = new Float64Array(n * d).map((_, j) => (j % 2 === 0 ? 0.5 : -0.5));
  const keyIdx = Int32Array.from({ length: n }, (_, i) => i % 2);
  await t.step("first log_prob is that of N(0, I)", async () => {
    const lp = await trainer.step(x, keyIdx, n);
    const want = -0.5 * 0.5 - Math.log(2 * Math.PI);
    for (const v of lp) assert.ok(Math.abs(v - want) < 1e-4, `log_prob ${v}, expected ${want}`);
  });
  await t.step("learning raises the log_prob of the repeated data", async () => {
    const first = (await trainer.step(x, keyIdx, n))[0];
    for (let s = 0; s < 20; s++) await trainer.step(x, keyIdx, n);
    const later = (await trainer.step(x, keyIdx, n))[0];
    assert.ok(later > first, `expected log_prob to rise, ${first} → ${later}`);
  });
  await t.step("tensor count is constant across steps", async () => {
    const before = tf.memory().numTensors;
    await trainer.step(x, keyIdx, n);
    assert.equal(tf.memory().numTensors, before);
  });
  trainer.dispose();
});
