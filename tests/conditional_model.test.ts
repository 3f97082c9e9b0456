/**
 * The conditional head's pure parts: time features, the tfjs diag transforms against the host
 * ones, the network's starting point, and the NLL gradient by tfjs autodiff against finite
 * differences and against the unconditional head's closed form (gradientFromStats).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { diagForward } from "../src/model/diag_transform.ts";
import { timeFeatures, timeMs } from "../src/model/time_features.ts";
import {
  diagTf,
  forwardTf,
  initTheta,
  netLayout,
  nllRowsTf,
  outputsFor,
  paramTensors,
} from "../src/engine/conditional/network.ts";
import { gradientFromStats } from "../src/model/gradient.ts";
import { trilFromTheta } from "../src/model/parameterisation.ts";
import { mulberry32 } from "../src/model/prng.ts";
import type { DiagTransform } from "../src/engine/types.ts";

const assertAlmostEquals = (a: number, b: number, tol: number) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);
const assertEquals = (a: unknown, b: unknown): void => assert.deepStrictEqual(a, b);

await tf.setBackend("cpu");
tf.env().set("PROD", true);

Deno.test("time features: sin/cos of the UTC time of day and week, epoch ms, s or ISO", () => {
  // 1970-01-05 was a Monday; 06:00 UTC is a quarter of the day.
  const t = Date.UTC(2024, 0, 1, 6, 0, 0); // Monday 2024-01-01 06:00Z
  const f = timeFeatures(t, ["daily"]);
  assertAlmostEquals(f[0], 1, 1e-12);
  assertAlmostEquals(f[1], 0, 1e-12);
  assertEquals(Array.from(timeFeatures("2024-01-01T06:00:00Z", ["daily"])), Array.from(f));
  assertEquals(Array.from(timeFeatures(t / 1000, ["daily"])), Array.from(f));
  const w = timeFeatures(t, ["daily", "weekly"]);
  assertEquals(w.length, 4);
  // Same time a week later: same features; 12 h later: daily phase flipped.
  const later = timeFeatures(t + 7 * 86_400_000, ["daily", "weekly"]);
  for (let i = 0; i < 4; i++) assertAlmostEquals(later[i], w[i], 1e-9);
  const half = timeFeatures(t + 43_200_000, ["daily"]);
  assertAlmostEquals(half[0], -1, 1e-12);
  assert(Number.isNaN(timeMs(undefined)) && Number.isNaN(timeMs("not a time")));
  assert.throws(() => timeFeatures("soon", ["daily"]), /soon/);
});

Deno.test("tfjs diag transforms match src/model/diag_transform.ts", () => {
  const raw = [-70, -5, -0.3, 0, 0.7, 4, 70];
  for (const kind of ["softplus", "elu1p", "exp"] as DiagTransform[]) {
    const got = tf.tidy(() => diagTf(tf, kind, tf.tensor1d(raw)).dataSync());
    raw.forEach((r, i) => {
      const want = diagForward(kind, r);
      assert(
        Math.abs(got[i] - want) <= 1e-6 * Math.max(1, want),
        `${kind}(${r}) ${got[i]} ${want}`,
      );
    });
  }
});

Deno.test("a new network starts at loc' = 0, scale_tril' = I at every context", async () => {
  const d = 3;
  const layout = netLayout(4, [32, 32], outputsFor(d));
  const theta = initTheta(layout, d, "softplus");
  const x = tf.randomNormal([5, 4], 0, 1, "float32", 3) as tf.Tensor2D;
  const out = tf.tidy(() => forwardTf(tf, paramTensors(tf, layout, theta), x, "tanh"));
  const o = await out.data();
  out.dispose();
  const P = outputsFor(d);
  const lp = new Float64Array(d * d);
  for (let r = 0; r < 5; r++) {
    const row = o.subarray(r * P, r * P + P);
    trilFromTheta(row, d, "softplus", lp);
    for (let a = 0; a < d; a++) {
      // Small output weights: within a few 0.1 of the bias.
      assert(Math.abs(row[a]) < 0.5, `loc' ${row[a]}`);
      assert(Math.abs(lp[a * d + a] - 1) < 0.5, `diag ${lp[a * d + a]}`);
    }
  }
});

/** Host float64 NLL of one row from raw outputs (½|z|² + Σ log L′_aa). */
function hostNll(o: ArrayLike<number>, x: ArrayLike<number>, d: number, diag: DiagTransform) {
  const lp = new Float64Array(d * d);
  trilFromTheta(o, d, diag, lp);
  const z = new Float64Array(d);
  let s2 = 0;
  let ld = 0;
  for (let a = 0; a < d; a++) {
    let s = x[a] - o[a];
    for (let b = 0; b < a; b++) s -= lp[a * d + b] * z[b];
    z[a] = s / lp[a * d + a];
    s2 += z[a] * z[a];
    ld += Math.log(lp[a * d + a]);
  }
  return { nll: 0.5 * s2 + ld, z };
}

for (const diag of ["softplus", "elu1p", "exp"] as DiagTransform[]) {
  for (const d of [1, 3, 5]) {
    Deno.test(`NLL gradient w.r.t. the outputs (${diag}, d=${d}): autodiff = finite differences = closed form`, () => {
      const P = outputsFor(d);
      const rand = mulberry32(17 + d);
      const o = Float64Array.from({ length: P }, () => 1.4 * rand() - 0.7);
      const x = Float64Array.from({ length: d }, () => 3 * rand() - 1.5);
      const g = tf.tidy(() => {
        const xt = tf.tensor2d(Float32Array.from(x), [1, d]);
        const f = (out: tf.Tensor) => tf.sum(nllRowsTf(tf, out as tf.Tensor2D, xt, d, diag));
        return tf.grad(f)(tf.tensor2d(Float32Array.from(o), [1, P])).dataSync();
      });
      // Central finite differences in float64.
      const h = 1e-6;
      const fd = new Float64Array(P);
      for (let p = 0; p < P; p++) {
        const up = o.slice();
        const dn = o.slice();
        up[p] += h;
        dn[p] -= h;
        fd[p] = (hostNll(up, x, d, diag).nll - hostNll(dn, x, d, diag).nll) / (2 * h);
      }
      // Closed form of the unconditional head for a single row of weight 1: stats
      // [n, Σw, Σw·z, Σw·z·zᵀ (packed lower)] with θ = the outputs, the row as its data.
      const { z } = hostNll(o, x, d, diag);
      const stats: number[] = [1, 1, ...z];
      for (let a = 0; a < d; a++) for (let b = 0; b <= a; b++) stats.push(z[a] * z[b]);
      const closed = gradientFromStats(o, stats, d, diag);
      for (let p = 0; p < P; p++) {
        const tol = 1e-4 * Math.max(1, Math.abs(fd[p]));
        assert(Math.abs(closed[p] - fd[p]) <= tol, `closed[${p}] ${closed[p]} vs fd ${fd[p]}`);
        // tfjs computes in float32.
        const tol32 = 2e-3 * Math.max(1, Math.abs(fd[p]));
        assert(Math.abs(g[p] - fd[p]) <= tol32, `autodiff[${p}] ${g[p]} vs fd ${fd[p]}`);
      }
    });
  }
}

Deno.test("NLL gradient w.r.t. the network's weights: autodiff = finite differences", () => {
  const d = 2;
  const F = 3;
  const layout = netLayout(F, [5, 4], outputsFor(d));
  const theta = initTheta(layout, d, "softplus", 5);
  // Larger output weights than at the start, so every layer matters.
  const last = layout.layers[layout.layers.length - 1];
  const rand = mulberry32(9);
  for (let i = last.w; i < last.b; i++) theta[i] = rand() - 0.5;
  const m = 6;
  const X = Float64Array.from({ length: m * F }, () => 2 * rand() - 1);
  const XW = Float64Array.from({ length: m * d }, () => 2 * rand() - 1);
  // Host float64 MLP (tanh) and mean NLL.
  const host = (th: Float64Array) => {
    let total = 0;
    for (let r = 0; r < m; r++) {
      let h = Array.from(X.subarray(r * F, r * F + F));
      layout.layers.forEach((L, l) => {
        const next = new Array<number>(L.outputs).fill(0);
        for (let o = 0; o < L.outputs; o++) {
          let s = th[L.b + o];
          for (let i = 0; i < L.inputs; i++) s += h[i] * th[L.w + i * L.outputs + o];
          next[o] = l + 1 < layout.layers.length ? Math.tanh(s) : s;
        }
        h = next;
      });
      total += hostNll(h, XW.subarray(r * d, r * d + d), d, "softplus").nll;
    }
    return total / m;
  };
  const grads = tf.tidy(() => {
    const x = tf.tensor2d(Float32Array.from(X), [m, F]);
    const xw = tf.tensor2d(Float32Array.from(XW), [m, d]);
    const f = (...ps: tf.Tensor[]) =>
      tf.mean(nllRowsTf(tf, forwardTf(tf, ps, x, "tanh"), xw, d, "softplus")) as tf.Scalar;
    return tf.grads(f)(paramTensors(tf, layout, theta)).map((g) => Array.from(g.dataSync()));
  }).flat();
  assertEquals(grads.length, layout.size);
  const h = 1e-6;
  for (let p = 0; p < layout.size; p += 3) {
    const up = theta.slice();
    const dn = theta.slice();
    up[p] += h;
    dn[p] -= h;
    const fd = (host(up) - host(dn)) / (2 * h);
    assert(
      Math.abs(grads[p] - fd) <= 2e-3 * Math.max(1, Math.abs(fd)),
      `θ[${p}] ${grads[p]} vs ${fd}`,
    );
  }
});
