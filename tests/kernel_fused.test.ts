/**
 * The registered tfjs kernel `MvnFused` (cpu and webgpu) against an independent float64
 * computation: z = L⁻¹ r through an explicitly inverted L (Gauss–Jordan), not forward substitution.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { type FusedInputs, statsWidth } from "../src/engine/kernels/fused_kernel.ts";
import { createTfjsFusedKernel } from "../src/engine/kernels/tfjs_kernel.ts";
import { mulberry32 as rng } from "../src/model/prng.ts";

/** Inverse of a d×d matrix (row-major number[][]) by Gauss–Jordan with partial pivoting. */
function inverse(m: number[][]): number[][] {
  const d = m.length;
  const a = m.map((row, i) => [...row, ...row.map((_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < d; c++) {
    let p = c;
    for (let r = c + 1; r < d; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    [a[c], a[p]] = [a[p], a[c]];
    const piv = a[c][c];
    for (let j = 0; j < 2 * d; j++) a[c][j] /= piv;
    for (let r = 0; r < d; r++) {
      if (r === c) continue;
      const f = a[r][c];
      for (let j = 0; j < 2 * d; j++) a[r][j] -= f * a[c][j];
    }
  }
  return a.map((row) => row.slice(d));
}

interface Expected {
  m2: number[];
  contrib: number[][];
  stats: number[][];
  beyond: number;
}

/** The contract of fused_kernel.ts in plain float64 matrix math. */
function expected(inp: FusedInputs): Expected {
  const { n, d, K } = inp;
  const Linv: number[][][] = [];
  for (let k = 0; k < K; k++) {
    const L = Array.from(
      { length: d },
      (_, a) => Array.from({ length: d }, (_, b) => inp.tril[k * d * d + a * d + b]),
    );
    Linv.push(inverse(L));
  }
  const S = statsWidth(d);
  const stats = Array.from({ length: K }, () => new Array<number>(S).fill(0));
  const m2: number[] = [];
  const contrib: number[][] = [];
  let beyond = 0;
  for (let i = 0; i < n; i++) {
    const k = inp.keyIdx[i];
    const r = Array.from({ length: d }, (_, a) => inp.x[i * d + a] - inp.loc[k * d + a]);
    const z = Linv[k].map((row) => row.reduce((s, v, b) => s + v * r[b], 0));
    const q = z.reduce((s, v) => s + v * v, 0);
    m2.push(q);
    contrib.push(z.map((v) => v * v));
    const rho = q <= inp.robustC
      ? 1
      : Math.max(inp.robustFloor * inp.robustC / q, Math.exp(-(q - inp.robustC) / 2));
    if (q > inp.robustC && inp.rowWeight[i] > 0) beyond++;
    const w = inp.rowWeight[i] * rho;
    const st = stats[k];
    st[0] += inp.rowWeight[i];
    st[1] += w;
    let p = 2;
    for (let a = 0; a < d; a++) st[p++] += w * z[a];
    for (let a = 0; a < d; a++) for (let b = 0; b <= a; b++) st[p++] += w * z[a] * z[b];
  }
  return { m2, contrib, stats, beyond };
}

/** Random heads and rows; a tenth of the rows are far outliers, a tenth have rowWeight 0. */
function makeInputs(n: number, d: number, K: number, seed: number): FusedInputs {
  const u = rng(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  const loc = new Float64Array(K * d).map(() => normal());
  const tril = new Float64Array(K * d * d);
  for (let k = 0; k < K; k++) {
    for (let a = 0; a < d; a++) {
      for (let b = 0; b < a; b++) tril[k * d * d + a * d + b] = 0.3 * normal();
      tril[k * d * d + a * d + a] = 0.7 + u();
    }
  }
  // Keys 0..K-2 only when K > 1, so one head sees no rows and must get zero statistics.
  const used = K > 1 ? K - 1 : 1;
  const keyIdx = new Int32Array(n).map(() => Math.floor(u() * used));
  const rowWeight = new Float32Array(n).map(() => (u() < 0.1 ? 0 : 1));
  const x = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const k = keyIdx[i];
    const far = u() < 0.1 ? 6 : 1;
    const e = Array.from({ length: d }, () => far * normal());
    for (let a = 0; a < d; a++) {
      let v = loc[k * d + a];
      for (let b = 0; b <= a; b++) v += tril[k * d * d + a * d + b] * e[b];
      x[i * d + a] = v;
    }
  }
  // robustC near the median of χ²_d, so the robust weight is active on many rows.
  return { n, d, K, x, keyIdx, rowWeight, loc, tril, robustC: d, robustFloor: 0.05 };
}

function close(found: number, want: number, rel: number, what: string): void {
  const tol = rel * (1 + Math.abs(want));
  if (!(Math.abs(found - want) <= tol)) {
    assert.fail(`${what}: expected ${want} ± ${tol.toExponential(1)}, found ${found}`);
  }
}

const hasWebGpu = "gpu" in navigator;

for (const backend of ["cpu", "webgpu"] as const) {
  Deno.test({
    name: `MvnFused on ${backend} matches float64 matrix math and leaks no tensors`,
    ignore: backend === "webgpu" && !hasWebGpu,
    async fn(t) {
      assert.ok(await tf.setBackend(backend), `backend ${backend} must initialise`);
      const kernel = createTfjsFusedKernel(tf, backend);
      // float32 on webgpu (and in the tensors' uploads); d = 32 sums 528 products per row.
      const rel = backend === "cpu" ? 1e-9 : 2e-4;
      for (const d of [1, 3, 5, 32]) {
        for (const K of [1, 7]) {
          await t.step(`d=${d} K=${K}`, async () => {
            const inp = makeInputs(600, d, K, 1000 * d + K);
            const want = expected(inp);
            assert.ok(want.beyond > 10, `some rows must be beyond robustC, found ${want.beyond}`);
            const before = tf.memory();
            const out = await kernel.run(inp);
            const after = tf.memory();
            assert.equal(after.numTensors, before.numTensors, "tensor count must not change");
            assert.equal(
              after.numDataBuffers,
              before.numDataBuffers,
              "data buffers must not change",
            );
            const S = statsWidth(d);
            assert.equal(out.m2.length, inp.n);
            assert.equal(out.contrib.length, inp.n * d);
            assert.equal(out.stats.length, K * S);
            for (let i = 0; i < inp.n; i++) {
              close(out.m2[i], want.m2[i], rel, `m2[${i}]`);
              for (let a = 0; a < d; a++) {
                close(out.contrib[i * d + a], want.contrib[i][a], rel, `contrib[${i}][${a}]`);
              }
            }
            for (let k = 0; k < K; k++) {
              for (let s = 0; s < S; s++) {
                close(out.stats[k * S + s], want.stats[k][s], rel, `stats[${k}][${s}]`);
              }
            }
            if (K > 1) assert.ok(out.stats.subarray((K - 1) * S).every((v) => v === 0));
          });
        }
      }
      await t.step("tensor and buffer counts stay constant over repeated calls", async () => {
        const inp = makeInputs(300, 3, 7, 5);
        await kernel.run(inp);
        const before = tf.memory();
        for (let r = 0; r < 5; r++) await kernel.run(inp);
        assert.equal(tf.memory().numTensors, before.numTensors);
        assert.equal(tf.memory().numDataBuffers, before.numDataBuffers);
      });
      await t.step("refuses a key index outside [0, K)", async () => {
        const inp = { ...makeInputs(10, 2, 3, 9), keyIdx: new Int32Array(10).fill(3) };
        await assert.rejects(kernel.run(inp), RangeError);
      });
      kernel.dispose();
    },
  });
}
