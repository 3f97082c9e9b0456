/**
 * The conditional head end to end in the engine (cpu): it learns a stream whose loc and
 * covariance depend on a mode feature (per-mode KL), catches values that are normal only under
 * another mode (where the unconditional head misses them), follows a daily cycle from time
 * features with about α flagged, resumes exactly from exported state, rejects non-finite steps and
 * refuses batches without their context.
 */
import assert from "node:assert/strict";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import type { HeadConfigInput } from "../src/config/head_config.ts";
import { createEngine } from "../src/engine/thread/compute_thread.ts";
import { ConditionalEngine } from "../src/engine/conditional/conditional_engine.ts";
import { hasEngineErrorCode } from "../src/engine/errors.ts";
import type { ObservationBatch, ScoreBatch } from "../src/engine/types.ts";
import type { ScoringEngine } from "../src/engine/engine.ts";
import { chi2Isf } from "../src/model/chi2.ts";
import { mulberry32 } from "../src/model/prng.ts";
import { klGaussian, MODES_3D, modeStream, normalSampler, sample } from "./helpers/conditional.ts";

const d = 3;
const K = MODES_3D.length;
/** Observations for the KL proof here (tools/conditional_proof.ts runs the 50,000). */
const N_TRAIN = 20_000;
const B = 64;

async function conditional(input: HeadConfigInput): Promise<ConditionalEngine> {
  return await createEngine(
    resolveHeadConfig({ backend: "cpu", head: "conditional", ...input }),
    { thread: false, log: () => {} },
  ) as ConditionalEngine;
}

function batchOf(
  values: Float64Array,
  features: Float64Array | undefined,
  from: number,
  n: number,
  extra: Partial<ObservationBatch> = {},
): ObservationBatch {
  return {
    dim: d,
    n,
    values: values.slice(from * d, (from + n) * d),
    keyIndex: new Uint32Array(n),
    keys: ["k"],
    ...(features === undefined
      ? {}
      : { features: features.slice(from * K, (from + n) * K), featureDim: K }),
    ...extra,
  };
}

async function feed(
  engine: ScoringEngine,
  values: Float64Array,
  features: Float64Array | undefined,
  n: number,
): Promise<void> {
  for (let i = 0; i < n; i += B) {
    await engine.process(batchOf(values, features, i, Math.min(B, n - i)));
  }
}

const train = modeStream(N_TRAIN, MODES_3D, 11);
const trained = await conditional({ dim: d, features: K });
await feed(trained, train.values, train.features, N_TRAIN);

Deno.test(`per-mode KL(true ‖ learned) ≤ 0.05 after ${N_TRAIN} observations`, async () => {
  for (let m = 0; m < K; m++) {
    const f = new Array(K).fill(0);
    f[m] = 1;
    const p = (await trained.paramsAt("k", f))!;
    const kl = klGaussian(MODES_3D[m], { loc: p.loc, tril: p.scale_tril });
    assert.ok(kl <= 0.05, `mode ${m}: KL ${kl}`);
  }
});

Deno.test("values normal under another mode are caught (recall ≥ 0.9, FPR ≤ 1%); the unconditional head misses most", async () => {
  // Test rows: for each mode, normal rows and "swapped" rows drawn from another mode, kept when
  // truly anomalous under their own mode (true m² beyond the χ²_3 quantile at 1 − 1e-4).
  const normal = normalSampler(99);
  const cut = chi2Isf(1e-4, d);
  const rows: number[][] = [];
  const feats: number[][] = [];
  const isAnomaly: boolean[] = [];
  const trueM2 = (m: number, x: number[]) => {
    const g = MODES_3D[m];
    const z: number[] = [];
    let s2 = 0;
    for (let a = 0; a < d; a++) {
      let s = x[a] - g.loc[a];
      for (let b = 0; b < a; b++) s -= g.tril[a][b] * z[b];
      z.push(s / g.tril[a][a]);
      s2 += z[a] * z[a];
    }
    return s2;
  };
  for (let m = 0; m < K; m++) {
    const f = new Array(K).fill(0);
    f[m] = 1;
    for (let r = 0; r < 1000; r++) {
      rows.push(sample(MODES_3D[m], normal));
      feats.push(f);
      isAnomaly.push(false);
    }
    for (let other = 0; other < K; other++) {
      if (other === m) continue;
      for (let r = 0; r < 300; r++) {
        const x = sample(MODES_3D[other], normal);
        if (trueM2(m, x) <= cut) continue;
        rows.push(x);
        feats.push(f);
        isAnomaly.push(true);
      }
    }
  }
  const n = rows.length;
  const values = Float64Array.from(rows.flat());
  const features = Float64Array.from(feats.flat());
  const rates = (s: ScoreBatch) => {
    let tp = 0, fp = 0, pos = 0, neg = 0;
    for (let i = 0; i < n; i++) {
      if (isAnomaly[i]) {
        pos++;
        tp += s.anomaly[i];
      } else {
        neg++;
        fp += s.anomaly[i];
      }
    }
    return { recall: tp / pos, fpr: fp / neg, pos };
  };
  const cond = rates(
    await trained.process({
      dim: d,
      n,
      values,
      keyIndex: new Uint32Array(n),
      keys: ["k"],
      features,
      featureDim: K,
      scoreOnly: true,
    }),
  );
  assert.ok(cond.pos > 500, `anomalies ${cond.pos}`);
  assert.ok(cond.recall >= 0.9 && cond.fpr <= 0.01, JSON.stringify(cond));
  // The unconditional head on the same stream (its default, the natural step).
  await using plain = await createEngine(resolveHeadConfig({ dim: d, backend: "cpu" }), {
    thread: false,
    log: () => {},
  });
  await feed(plain, train.values, undefined, N_TRAIN);
  const base = rates(
    await plain.process({
      dim: d,
      n,
      values,
      keyIndex: new Uint32Array(n),
      keys: ["k"],
      scoreOnly: true,
    }),
  );
  assert.ok(base.recall < 0.5, `unconditional recall ${base.recall}`);
  console.log(
    `conditional recall ${cond.recall.toFixed(3)} FPR ${cond.fpr.toFixed(4)}; ` +
      `unconditional recall ${base.recall.toFixed(3)} FPR ${
        base.fpr.toFixed(4)
      } (${cond.pos} anomalies)`,
  );
});

Deno.test("exported state resumes exactly (JSON round trip), snapshot carries the network", async () => {
  const states = JSON.parse(JSON.stringify(await trained.exportState()));
  assert.equal(states[0].head, "conditional");
  const twin = await conditional({ dim: d, features: K });
  await twin.importState(states);
  const next = modeStream(200, MODES_3D, 5);
  for (let i = 0; i < 200; i += 100) {
    const a = await trained.process(batchOf(next.values, next.features, i, 100));
    const b = await twin.process(batchOf(next.values, next.features, i, 100));
    assert.deepEqual(Array.from(b.logProb), Array.from(a.logProb));
    assert.deepEqual(Array.from(b.anomaly), Array.from(a.anomaly));
  }
  assert.deepEqual(await twin.exportState(), await trained.exportState());
  const [snap] = await twin.snapshot();
  assert.equal(snap.head, "conditional");
  assert.deepEqual(snap.architecture?.hidden, [32, 32]);
  assert.equal(snap.version, snap.steps);
  assert.equal(snap.context?.length, K);
  await assert.rejects(
    () => conditional({ dim: d, features: K, hidden: [8] }).then((e) => e.importState(states)),
    /expected a network/,
  );
});

Deno.test("a non-finite step is rejected and the state kept; batches without context are refused", async () => {
  const config = resolveHeadConfig({
    dim: d,
    head: "conditional",
    features: K,
    init_rows: 64,
    backend: "cpu",
  });
  // A gradient that turns non-finite on demand (float overflow deep in a step).
  let poison = false;
  class Faulty extends ConditionalEngine {
    override async gradient(...args: Parameters<ConditionalEngine["gradient"]>) {
      const g = await super.gradient(...args);
      if (poison) g.grad[3] = NaN;
      return g;
    }
  }
  const tf = await import("@tensorflow/tfjs");
  await tf.setBackend("cpu");
  const e = new Faulty(config, { tf, backend: "cpu", backendReason: "test", log: () => {} });
  const s = modeStream(400, MODES_3D, 3);
  await feed(e, s.values, s.features, 400);
  const before = (await e.exportState())[0];
  assert.ok(before.steps > 0);
  poison = true;
  const scores = await e.process(batchOf(s.values, s.features, 0, 64));
  assert.ok(scores.mahalanobis2.every(Number.isFinite));
  const after = (await e.exportState())[0];
  assert.equal(after.rejected_updates, 2, "both 32-row steps rejected");
  assert.deepEqual(after.theta, before.theta);
  assert.deepEqual(after.adam_m, before.adam_m);
  assert.equal(after.steps, before.steps);
  poison = false;
  // A wild value (1e30) is scored and learned with a negligible weight: the state stays finite.
  const wild = s.values.slice(0, 3 * d);
  wild[0] = 1e30;
  const f = s.features.slice(0, 3 * K);
  await e.process({
    dim: d,
    n: 3,
    values: wild,
    keyIndex: new Uint32Array(3),
    keys: ["k"],
    features: f,
    featureDim: K,
  });
  assert.ok((await e.exportState())[0].theta.every(Number.isFinite));
  for (
    const bad of [
      { features: undefined, featureDim: undefined },
      { features: f.slice(0, 6), featureDim: 2 },
    ]
  ) {
    await assert.rejects(
      () => e.process({ ...batchOf(s.values, s.features, 0, 3), ...bad }),
      (err: unknown) => hasEngineErrorCode(err, "bad_features"),
    );
  }
  const t = await conditional({ dim: d, time_features: ["daily"] });
  await assert.rejects(
    () =>
      t.process({ ...batchOf(s.values, undefined, 0, 3), timeMs: new Float64Array(3).fill(NaN) }),
    (err: unknown) => hasEngineErrorCode(err, "bad_features"),
  );
  assert.throws(() => resolveHeadConfig({ head: "conditional" }), /features/);
});

Deno.test("time features: a daily cycle with no anomalies is flagged at about α", async () => {
  // Every 5 minutes for 80 days; loc and scale follow the time of day.
  const step = 300_000;
  const n = 80 * 288;
  const t0 = Date.UTC(2024, 0, 1);
  const normal = normalSampler(21);
  const values = new Float64Array(n * 2);
  const timeMs = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = t0 + i * step;
    const ph = (2 * Math.PI * (t % 86_400_000)) / 86_400_000;
    const e1 = normal(), e2 = normal();
    const s = 1 + 0.6 * Math.sin(ph);
    values[2 * i] = 10 + 6 * Math.sin(ph) + s * e1;
    values[2 * i + 1] = 4 * Math.cos(ph) + 0.5 * s * e1 + 0.8 * e2;
    timeMs[i] = t;
  }
  const alpha = 1e-3;
  const e = await conditional({ dim: 2, time_features: ["daily"], alpha });
  let flagged = 0;
  let scored = 0;
  const warm = 2 * e.config.warmup;
  for (let i = 0; i < n; i += B) {
    const m = Math.min(B, n - i);
    const s = await e.process({
      dim: 2,
      n: m,
      values: values.slice(2 * i, 2 * (i + m)),
      keyIndex: new Uint32Array(m),
      keys: ["k"],
      timeMs: timeMs.slice(i, i + m),
    });
    for (let r = 0; r < m; r++) {
      if (i + r < warm) continue;
      scored++;
      flagged += s.anomaly[r];
    }
  }
  const rate = flagged / scored;
  console.log(
    `daily cycle: ${flagged} of ${scored} flagged (${rate.toExponential(2)}, α ${alpha})`,
  );
  assert.ok(rate <= 3 * alpha, `flag rate ${rate}`);
});

Deno.test("the engine's step gradient (closed-form NLL + autodiff MLP) equals full tfjs autodiff", async () => {
  for (const [dim, diag] of [[3, "softplus"], [5, "exp"], [2, "elu1p"]] as const) {
    const e = await conditional({ dim, features: 4, diag, hidden: [16, 8] });
    const m = 40;
    const rand = mulberry32(dim);
    const theta = Float64Array.from({ length: e.layout.size }, () => 0.4 * rand() - 0.2);
    const X = Float32Array.from({ length: m * 4 }, () => 2 * rand() - 1);
    const XW = Float32Array.from({ length: m * dim }, () => 3 * rand() - 1.5);
    const W = Float32Array.from({ length: m }, () => rand());
    const sumW = W.reduce((a, b) => a + b, 0);
    const full = await e.lossAndGradient(theta, X, XW, W, sumW, m);
    const fast = await e.gradient(theta, X, XW, W, sumW, m);
    assert.ok(Math.abs(full.loss - fast.loss) <= 1e-5 * Math.max(1, Math.abs(full.loss)));
    let scale = 0;
    for (const g of full.grad) scale = Math.max(scale, Math.abs(g));
    for (let p = 0; p < full.grad.length; p++) {
      assert.ok(
        Math.abs(full.grad[p] - fast.grad[p]) <= 1e-4 * scale,
        `d=${dim} ${diag} θ[${p}]: ${full.grad[p]} vs ${fast.grad[p]}`,
      );
    }
  }
});

Deno.test("keys are independent (interleaved = alone), and the compute thread runs the head too", async () => {
  const a = modeStream(1200, MODES_3D, 51);
  const b = modeStream(1200, MODES_3D, 52);
  const alone = await conditional({ dim: d, features: K, init_rows: 64 });
  const mixed = await createEngine(
    resolveHeadConfig({ dim: d, head: "conditional", features: K, init_rows: 64, backend: "cpu" }),
    { thread: true, log: () => {} },
  );
  try {
    for (let i = 0; i < 1200; i += 100) {
      const sa = await alone.process(batchOf(a.values, a.features, i, 100));
      // The same rows of key "k" interleaved with key "other".
      const n = 200;
      const values = new Float64Array(n * d);
      const features = new Float64Array(n * K);
      const keyIndex = new Uint32Array(n);
      for (let r = 0; r < 100; r++) {
        for (const [src, slot] of [[a, 2 * r], [b, 2 * r + 1]] as const) {
          values.set(src.values.subarray((i + r) * d, (i + r + 1) * d), slot * d);
          features.set(src.features.subarray((i + r) * K, (i + r + 1) * K), slot * K);
          keyIndex[slot] = slot % 2;
        }
      }
      const sm = await mixed.process({
        dim: d,
        n,
        values,
        keyIndex,
        keys: ["k", "other"],
        features,
        featureDim: K,
      });
      for (let r = 0; r < 100; r++) assert.equal(sm.logProb[2 * r], sa.logProb[r]);
    }
    assert.deepEqual((await mixed.keys()).sort(), ["k", "other"]);
    const [snap] = await mixed.snapshot(["k"]);
    assert.equal(snap.head, "conditional");
    assert.equal(snap.observations, 1200);
  } finally {
    await mixed.close();
  }
});
