/**
 * Engine section: obs/s of one score+learn step through the real engine (compute thread and
 * same-thread), beside the op-by-op tfjs autodiff baseline, the tfjs `MvnFused` kernel alone and
 * the raw fused loop — all measured in the same run on the same data.
 *
 * @module
 */
import type * as tfNs from "@tensorflow/tfjs";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import type { EngineRow } from "./schema.ts";
import { createEngine } from "../src/engine/thread/compute_thread.ts";
import type { FusedInputs } from "../src/engine/kernels/fused_kernel.ts";
import { createTfjsFusedKernel } from "../src/engine/kernels/tfjs_kernel.ts";
import { mvnFusedCpu } from "../src/engine/kernels/cpu_fused.ts";
import { ReferenceTrainer } from "../src/engine/reference_head.ts";
import type { BackendName, ObservationBatch } from "../src/engine/types.ts";
import { copyBatch, SyntheticSource } from "./synthetic.ts";
import { rowsPerSecond, type TimingBudget } from "./timing.ts";

type Tf = typeof tfNs;

/** What to measure. */
export interface EngineBenchPlan {
  readonly backends: readonly BackendName[];
  readonly batches: readonly number[];
  readonly keys: readonly number[];
  readonly dim: number;
  readonly budget: TimingBudget;
  /** Largest keys count at which the op-by-op baseline runs (one minimize per key per step). */
  readonly baselineMaxKeys: number;
  readonly log: (line: string) => void;
}

/** Distinct source batches cycled through, so every step sees fresh arrays of realistic data. */
const DISTINCT = 3;

let _tf: Tf | undefined;
async function _tfOn(backend: BackendName): Promise<Tf> {
  _tf ??= await import("@tensorflow/tfjs");
  if (backend === "webgpu") await import("@tensorflow/tfjs-backend-webgpu");
  if (!(await _tf.setBackend(backend))) {
    throw new Error(`expected tfjs backend ${backend} to initialise, found it failed`);
  }
  await _tf.ready();
  return _tf;
}

/** Fused-op inputs for a batch: x centred per key, heads at identity scale (as after warm-up). */
function _fusedInputs(b: ObservationBatch, K: number, f32: boolean): FusedInputs {
  const d = b.dim;
  const n = b.n;
  const mean = new Float64Array(K * d);
  const count = new Float64Array(K);
  for (let i = 0; i < n; i++) {
    const k = b.keyIndex[i];
    count[k]++;
    for (let a = 0; a < d; a++) mean[k * d + a] += b.values[i * d + a];
  }
  for (let k = 0; k < K; k++) for (let a = 0; a < d; a++) mean[k * d + a] /= count[k] || 1;
  const x = f32 ? new Float32Array(n * d) : new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const k = b.keyIndex[i];
    for (let a = 0; a < d; a++) x[i * d + a] = b.values[i * d + a] - mean[k * d + a];
  }
  const tril = f32 ? new Float32Array(K * d * d) : new Float64Array(K * d * d);
  for (let k = 0; k < K; k++) {
    for (let a = 0; a < d; a++) {
      tril[k * d * d + a * d + a] = 1.2;
      if (a > 0) tril[k * d * d + a * d + a - 1] = 0.4;
    }
  }
  return {
    n,
    d,
    K,
    x,
    keyIdx: Int32Array.from(b.keyIndex),
    rowWeight: new Float32Array(n).fill(1),
    loc: f32 ? new Float32Array(K * d) : new Float64Array(K * d),
    tril,
    robustC: 16,
    robustFloor: 0.01,
  };
}

async function _engineRate(
  backend: BackendName,
  worker: boolean,
  sources: ObservationBatch[],
  plan: EngineBenchPlan,
  pValues: boolean,
): Promise<number> {
  const { dim } = plan;
  const config = resolveHeadConfig({ dim, backend });
  const engine = await createEngine(config, { thread: worker, log: () => {} });
  try {
    const n = sources[0].n;
    const K = sources[0].keys.length;
    // Warm up until every key is past its closed-form initialisation, so steps are Adam steps.
    const warmRows = Math.max(3 * n, Math.ceil(1.5 * K * config.init_rows));
    let i = 0;
    for (let rows = 0; rows < warmRows; rows += n) {
      engine.release(await engine.process(copyBatch(sources[i++ % sources.length])));
    }
    return await rowsPerSecond(
      plan.budget,
      n,
      () => ({
        ...(worker ? copyBatch(sources[i++ % sources.length]) : sources[i++ % sources.length]),
        pValues,
      }),
      async (b) => engine.release(await engine.process(b)),
    );
  } finally {
    await engine.close();
  }
}

async function _baselineRate(
  backend: BackendName,
  source: ObservationBatch,
  plan: EngineBenchPlan,
): Promise<number> {
  const tf = await _tfOn(backend);
  const trainer = new ReferenceTrainer(tf, {
    d: plan.dim,
    diag: "softplus",
    lr: 0.01,
    robustC: 16,
    robustFloor: 0.01,
  });
  try {
    const keyIdx = Int32Array.from(source.keyIndex);
    // The op-by-op path is slow at large batches: fewer iterations keep the run bounded.
    const budget = { ...plan.budget, minIters: Math.min(plan.budget.minIters, 3), warmIters: 1 };
    return await rowsPerSecond(
      budget,
      source.n,
      () => source,
      (b) => trainer.step(b.values, keyIdx, b.n),
    );
  } finally {
    trainer.dispose();
  }
}

async function _kernelRate(
  backend: BackendName,
  source: ObservationBatch,
  plan: EngineBenchPlan,
): Promise<number> {
  const tf = await _tfOn(backend);
  const kernel = createTfjsFusedKernel(tf, backend);
  const inputs = _fusedInputs(source, source.keys.length, backend === "webgpu");
  try {
    return await rowsPerSecond(plan.budget, source.n, () => inputs, (x) => kernel.run(x));
  } finally {
    kernel.dispose();
  }
}

/** The raw float64 loop bound for a batch. */
export async function boundRate(source: ObservationBatch, budget: TimingBudget): Promise<number> {
  const inputs = _fusedInputs(source, source.keys.length, false);
  const out = {
    m2: new Float64Array(source.n),
    contrib: new Float64Array(source.n * source.dim),
    stats: new Float64Array(source.keys.length * (2 + source.dim * (source.dim + 3) / 2)),
  };
  return await rowsPerSecond(budget, source.n, () => inputs, (x) => mvnFusedCpu(x, out));
}

/** Runs the engine section. */
export async function benchEngine(plan: EngineBenchPlan): Promise<EngineRow[]> {
  const rows: EngineRow[] = [];
  for (const K of plan.keys) {
    for (const batch of plan.batches) {
      const src = new SyntheticSource(plan.dim, K, 7 + K);
      const sources = Array.from({ length: DISTINCT }, () => src.batch(batch));
      const bound = await boundRate(sources[0], plan.budget);
      for (const backend of plan.backends) {
        const label = `${backend} batch=${batch} keys=${K}`;
        plan.log(`engine: ${label} …`);
        // The step as the floors define it: scores (log_prob, mahalanobis2, contrib, anomaly) and
        // learning; p-values, a per-row presentation of mahalanobis2, are measured beside it.
        const obs = await _engineRate(backend, true, sources, plan, false);
        const withP = await _engineRate(backend, true, sources, plan, true);
        const local = await _engineRate(backend, false, sources, plan, false);
        const kernel = await _kernelRate(backend, sources[0], plan);
        const baseline = K <= plan.baselineMaxKeys
          ? await _baselineRate(backend, sources[0], plan)
          : null;
        rows.push({
          backend,
          batch,
          keys: K,
          dim: plan.dim,
          obs_per_s: obs,
          with_p_value_obs_per_s: withP,
          local_obs_per_s: local,
          baseline_obs_per_s: baseline,
          bound_obs_per_s: bound,
          kernel_obs_per_s: kernel,
        });
      }
    }
  }
  return rows;
}
