import assert from "node:assert/strict";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import { diagDerivative, diagForward, diagInverse } from "../src/model/diag_transform.ts";
import { HeadBank } from "../src/engine/head_bank.ts";
import { gradientFromStats } from "../src/model/gradient.ts";
import { thetaLength } from "../src/model/parameterisation.ts";
import { LocalEngine } from "../src/engine/local_engine.ts";
import { createCpuLoopKernel } from "../src/engine/kernels/cpu_loop_kernel.ts";
import { mvnFusedCpu } from "../src/engine/kernels/cpu_fused.ts";
import type { DiagTransform } from "../src/engine/types.ts";
import { gaussian, mvnRows, rng } from "./helpers/synthetic.ts";

const TRANSFORMS: DiagTransform[] = ["softplus", "elu1p", "exp"];

/** The textbook transforms, written out independently of src/diag_transform.ts. */
function positive(kind: DiagTransform, r: number): number {
  if (kind === "softplus") return Math.log(1 + Math.exp(r)) + 1e-5;
  if (kind === "elu1p") return r > 0 ? 1 + r : Math.exp(r);
  return Math.exp(r);
}

/** Weighted mean NLL in the frame, from scratch: (1/n)·Σ w_i·(½|L⁻¹(x_i − loc)|² + Σ log L_aa). */
function loss(
  theta: number[],
  xs: number[][],
  ws: number[],
  d: number,
  kind: DiagTransform,
): number {
  const L: number[][] = Array.from({ length: d }, () => new Array<number>(d).fill(0));
  let p = d;
  for (let a = 1; a < d; a++) for (let b = 0; b < a; b++) L[a][b] = theta[p++];
  for (let a = 0; a < d; a++) L[a][a] = positive(kind, theta[p++]);
  let total = 0;
  for (let i = 0; i < xs.length; i++) {
    const z: number[] = [];
    let q = 0;
    for (let a = 0; a < d; a++) {
      let s = xs[i][a] - theta[a];
      for (let b = 0; b < a; b++) s -= L[a][b] * z[b];
      z.push(s / L[a][a]);
      q += z[a] * z[a];
    }
    let logdet = 0;
    for (let a = 0; a < d; a++) logdet += Math.log(L[a][a]);
    total += ws[i] * (0.5 * q + logdet);
  }
  return total / xs.length;
}

Deno.test("the gradient from fused statistics equals finite differences of the NLL", async (t) => {
  for (const kind of TRANSFORMS) {
    for (const d of [1, 3, 5]) {
      await t.step(`${kind}, d=${d}`, () => {
        const u = rng(11 * d);
        const P = thetaLength(d);
        const theta = Array.from({ length: P }, () => 0.6 * (u() - 0.5));
        const n = 40;
        const xs = Array.from(
          { length: n },
          () => Array.from({ length: d }, () => 2 * (u() - 0.5)),
        );
        const ws = xs.map((_, i) => (i % 5 === 0 ? 0 : 1));
        // Statistics from the fused loop with the head's effective (loc, L) and no robust down-weighting.
        const L = new Float64Array(d * d);
        let p = d;
        for (let a = 1; a < d; a++) for (let b = 0; b < a; b++) L[a * d + b] = theta[p++];
        for (let a = 0; a < d; a++) L[a * d + a] = diagForward(kind, theta[p++]);
        const out = mvnFusedCpu({
          n,
          d,
          K: 1,
          x: new Float64Array(xs.flat()),
          keyIdx: new Int32Array(n),
          rowWeight: new Float32Array(ws),
          loc: new Float64Array(theta.slice(0, d)),
          tril: L,
          robustC: Infinity,
          robustFloor: 0,
        });
        // The statistics normalise by the number of learn rows; the oracle by all rows.
        const scale = out.stats[0] / n;
        const g = gradientFromStats(theta, out.stats, d, kind);
        const h = 1e-6;
        for (let i = 0; i < P; i++) {
          const up = theta.slice();
          const dn = theta.slice();
          up[i] += h;
          dn[i] -= h;
          const fd = (loss(up, xs, ws, d, kind) - loss(dn, xs, ws, d, kind)) / (2 * h);
          assert.ok(
            Math.abs(g[i] * scale - fd) < 1e-6 * Math.max(1, Math.abs(fd)),
            `θ[${i}]: ${g[i] * scale} vs ${fd}`,
          );
        }
      });
    }
  }
});

Deno.test("every diag transform is positive and finite for any finite raw value", () => {
  for (const kind of TRANSFORMS) {
    for (const r of [-1e308, -1e6, -800, -60, -1, 0, 1, 60, 800, 1e6]) {
      const f = diagForward(kind, r);
      assert.ok(f > 0 && Number.isFinite(f), `${kind}(${r}) = ${f}`);
      assert.ok(Number.isFinite(diagDerivative(kind, r)));
    }
    for (const v of [1e-3, 0.5, 1, 7]) {
      assert.ok(Math.abs(diagForward(kind, diagInverse(kind, v)) - v) < 1e-12);
    }
  }
});

Deno.test("a non-finite update is rejected, counted and logged, and the state kept", () => {
  const lines: string[] = [];
  const bank = new HeadBank(resolveHeadConfig({ init_rows: 8 }), (l) => lines.push(l));
  bank.create("k", mvnRows(8, [0, 0, 0], [[1, 0, 0], [0, 1, 0], [0, 0, 1]], gaussian(rng(1))), 8);
  const before = bank.exportState("k");
  const S = 2 + 3 + 6;
  for (const bad of [NaN, Infinity, 1e300]) {
    const stats = new Float64Array(S).fill(1);
    stats[5] = bad;
    // As the engine steps a batch's key: on its working copy, kept by save().
    const h = bank.batchHead("k", -1, 0)!;
    assert.equal(bank.step(h, stats), false);
    bank.save([h], 1);
  }
  const after = bank.exportState("k");
  assert.deepEqual(after.theta, before.theta);
  assert.deepEqual(after.adam_v, before.adam_v);
  assert.equal(after.rejected_updates, 3);
  assert.equal(lines.length, 3);
  assert.match(lines[0], /rejected a non-finite update for key 'k'/);
});

Deno.test("given parameters are validated with messages naming the problem", () => {
  const bank = new HeadBank(resolveHeadConfig({ dim: 2 }));
  assert.throws(
    () => bank.setParams("k", { loc: [0], scale_tril: [[1, 0], [0, 1]] }),
    /expected loc of 2/,
  );
  assert.throws(
    () => bank.setParams("k", { loc: [0, 0], scale_tril: [[1, 1], [0, 1]] }),
    /lower-triangular/,
  );
  assert.throws(
    () => bank.setParams("k", { loc: [0, 0], scale_tril: [[1, 0], [0, -1]] }),
    /positive diagonal/,
  );
  assert.throws(
    () => bank.setParams("k", { loc: [NaN, 0], scale_tril: [[1, 0], [0, 1]] }),
    /finite loc/,
  );
});

function engine(): LocalEngine {
  return new LocalEngine(resolveHeadConfig({ backend: "cpu" }), {
    kernel: createCpuLoopKernel(),
    float64: true,
    backendReason: "test",
  });
}

Deno.test("exported state resumes learning exactly where it stopped", async () => {
  const g = gaussian(rng(5));
  const X = mvnRows(2000, [10, -3, 0.5], [[2, 0, 0], [1, 1, 0], [0, 0.5, 0.2]], g);
  const batch = (from: number, to: number) => ({
    dim: 3,
    n: to - from,
    values: X.slice(from * 3, to * 3),
    keyIndex: new Uint32Array(to - from),
    keys: ["k"],
  });
  const a = engine();
  for (let i = 0; i < 1500; i += 100) await a.process(batch(i, i + 100));
  const b = engine();
  await b.importState(JSON.parse(JSON.stringify(await a.exportState())));
  for (let i = 1500; i < 2000; i += 100) {
    const sa = await a.process(batch(i, i + 100));
    const sb = await b.process(batch(i, i + 100));
    assert.deepEqual(sb.logProb, sa.logProb);
  }
  assert.deepEqual(await b.snapshot(), await a.snapshot());
});

Deno.test("a key born from a single observation scores finitely and then learns", async () => {
  const e = engine();
  const g = gaussian(rng(9));
  const X = mvnRows(300, [5, 5, 5], [[1, 0, 0], [0, 1, 0], [0, 0, 1]], g);
  for (let i = 0; i < 300; i++) {
    const s = await e.process({
      dim: 3,
      n: 1,
      values: X.slice(i * 3, i * 3 + 3),
      keyIndex: new Uint32Array(1),
      keys: ["solo"],
    });
    assert.ok(Number.isFinite(s.logProb[0]) && s.pValue[0] >= 0 && s.pValue[0] <= 1);
    assert.equal(s.seq[0], i + 1);
  }
  const [snap] = await e.snapshot();
  assert.equal(snap.observations, 300);
  for (const v of snap.loc) assert.ok(Math.abs(v - 5) < 0.5);
});

Deno.test("re-delivered duplicates are scored but neither counted nor learned", async () => {
  const e = engine();
  const X = mvnRows(200, [0, 0, 0], [[1, 0, 0], [0, 1, 0], [0, 0, 1]], gaussian(rng(3)));
  await e.process({
    dim: 3,
    n: 100,
    values: X.slice(0, 300),
    keyIndex: new Uint32Array(100),
    keys: ["k"],
  });
  const before = await e.exportState();
  const s = await e.process({
    dim: 3,
    n: 100,
    values: X.slice(300, 600),
    keyIndex: new Uint32Array(100),
    keys: ["k"],
    counted: new Uint8Array(100),
  });
  assert.equal(s.logProb.length, 100);
  assert.deepEqual(await e.exportState(), before);
});

Deno.test("a batch with a non-finite value is refused whole, naming the row", async () => {
  const e = engine();
  const X = mvnRows(100, [0, 0, 0], [[1, 0, 0], [0, 1, 0], [0, 0, 1]], gaussian(rng(8)));
  await e.process({ dim: 3, n: 100, values: X, keyIndex: new Uint32Array(100), keys: ["k"] });
  const before = await e.exportState();
  const bad = new Float64Array(30).fill(0.5);
  bad[13] = Infinity;
  await assert.rejects(
    () => e.process({ dim: 3, n: 10, values: bad, keyIndex: new Uint32Array(10), keys: ["k"] }),
    /expected finite values, found \[0.5, Infinity, 0.5\] in row 4/,
  );
  assert.deepEqual(await e.exportState(), before);
});

Deno.test("a refused first batch leaves no half-made key behind", async () => {
  const e = engine();
  // Every row so large that the first statistics overflow: nothing to start the key from.
  const bad = new Float64Array([1e300, -1e300, 1e300, -1e300, 1e300, -1e300, 1e300, 1e300, -1e300]);
  await assert.rejects(
    () => e.process({ dim: 3, n: 3, values: bad, keyIndex: new Uint32Array(3), keys: ["new"] }),
    { name: "EngineError", code: "non_finite_input" },
  );
  assert.deepEqual(await e.keys(), []);
  const X = mvnRows(100, [1, 2, 3], [[1, 0, 0], [0, 1, 0], [0, 0, 1]], gaussian(rng(12)));
  const s = await e.process({
    dim: 3,
    n: 100,
    values: X,
    keyIndex: new Uint32Array(100),
    keys: ["new"],
  });
  assert.ok(s.logProb.every(Number.isFinite));
  assert.equal(s.seq[0], 1);
});

Deno.test("many keys in slab storage keep their own numbers", async (t) => {
  // 1,500 keys span two storage chunks (1,024 slots each at d = 3).
  const K = 1500;
  const bank = new HeadBank(resolveHeadConfig({ init_rows: 30 }));
  // Key i: rows (i, −i, 2i) + (±1, 0, 0): mean (i, −i, 2i), exact by construction.
  const rowsOf = (i: number) => new Float64Array([i + 1, -i, 2 * i, i - 1, -i, 2 * i]);
  for (let i = 0; i < K; i++) bank.create(`k${i}`, rowsOf(i), 2);
  await t.step("each key's loc is its own rows' mean", () => {
    assert.equal(bank.size, K);
    for (const i of [0, 1, 1023, 1024, 1025, K - 1]) {
      const s = bank.snapshot(`k${i}`);
      assert.deepEqual(s.loc, [i, 0 - i, 2 * i]);
      assert.equal(bank.head(`k${i}`)!.init!.count, 2);
    }
  });
  await t.step("replacing a key's parameters leaves the others alone; slots are reused", () => {
    bank.setParams("k5", { loc: [7, 8, 9], scale_tril: [[2, 0, 0], [0, 3, 0], [0, 0, 4]] });
    // A draft frees the replaced slot; the new key takes it and must not disturb k5 or k6.
    bank.create("fresh", new Float64Array([1, 2, 3]), 1);
    const s5 = bank.snapshot("k5");
    assert.deepEqual(s5.loc, [7, 8, 9]);
    assert.deepEqual(s5.covariance, [[4, 0, 0], [0, 9, 0], [0, 0, 16]]);
    assert.deepEqual(bank.snapshot("k6").loc, [6, -6, 12]);
    assert.deepEqual(bank.snapshot("fresh").loc, [1, 2, 3]);
    assert.equal(bank.size, K + 1);
  });
  await t.step("a draft never adopted is drafted again cleanly", () => {
    bank.draft("late", new Float64Array([5, 5, 5, 7, 7, 7]), 2);
    const again = bank.draft("late", new Float64Array([1, 1, 1]), 1);
    assert.equal(again.init!.count, 1);
    bank.adopt(again);
    assert.deepEqual(bank.snapshot("late").loc, [1, 1, 1]);
  });
});
