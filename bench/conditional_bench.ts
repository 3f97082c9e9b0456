/**
 * Conditional section (`--sections conditional`): obs/s of the conditional head's score+learn step
 * (hidden 32,32, 4 context features, one key) at batch 256 and 4,096 for d = 3 and 8, beside the
 * unconditional head on the same rows, both in the calling thread.
 *
 * @module
 */
import { resolveHeadConfig } from "../src/config/head_config.ts";
import type { HeadConfigInput } from "../src/config/head_config.ts";
import { createEngine } from "../src/engine/thread/compute_thread.ts";
import type { BackendName, ObservationBatch } from "../src/engine/types.ts";
import { mulberry32 } from "../src/model/prng.ts";
import type { ConditionalRow } from "./schema.ts";
import { SyntheticSource } from "./synthetic.ts";
import { rowsPerSecond, type TimingBudget } from "./timing.ts";

/** What to measure. */
export interface ConditionalBenchPlan {
  readonly backends: readonly BackendName[];
  readonly batches: readonly number[];
  readonly dims: readonly number[];
  readonly hidden: readonly number[];
  readonly budget: TimingBudget;
  readonly log: (line: string) => void;
}

/** Context features per row in the benchmark. */
export const BENCH_FEATURES = 4;

function _withFeatures(b: ObservationBatch, seed: number): ObservationBatch {
  const r = mulberry32(seed);
  const features = Float64Array.from({ length: b.n * BENCH_FEATURES }, () => 2 * r() - 1);
  return { ...b, features, featureDim: BENCH_FEATURES };
}

async function _rate(
  input: HeadConfigInput,
  sources: ObservationBatch[],
  budget: TimingBudget,
): Promise<number> {
  const config = resolveHeadConfig(input);
  const engine = await createEngine(config, { thread: false, log: () => {} });
  try {
    const n = sources[0].n;
    // Past the initialisation, so every batch takes its learning steps.
    let i = 0;
    for (let rows = 0; rows < Math.max(2 * n, 2 * config.init_rows); rows += n) {
      await engine.process(sources[i++ % sources.length]);
    }
    return await rowsPerSecond(
      budget,
      n,
      () => sources[i++ % sources.length],
      async (b) => engine.release(await engine.process(b)),
    );
  } finally {
    await engine.close();
  }
}

/** Runs the conditional section. */
export async function benchConditional(plan: ConditionalBenchPlan): Promise<ConditionalRow[]> {
  const rows: ConditionalRow[] = [];
  for (const dim of plan.dims) {
    for (const batch of plan.batches) {
      const src = new SyntheticSource(dim, 1, 11 + dim);
      const sources = Array.from({ length: 3 }, (_, s) => _withFeatures(src.batch(batch), s + 1));
      for (const backend of plan.backends) {
        plan.log(`conditional: ${backend} d=${dim} batch=${batch} …`);
        const obs = await _rate(
          { dim, backend, head: "conditional", features: BENCH_FEATURES, hidden: [...plan.hidden] },
          sources,
          plan.budget,
        );
        const plain = await _rate({ dim, backend }, sources, plan.budget);
        rows.push({
          backend,
          batch,
          dim,
          hidden: plan.hidden.join(","),
          features: BENCH_FEATURES,
          obs_per_s: obs,
          unconditional_obs_per_s: plain,
        });
      }
    }
  }
  return rows;
}
