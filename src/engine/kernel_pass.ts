/**
 * The engine's float32 kernel path (webgpu, tfjs): rows centred on their key's frame origin in
 * float64 go to the fused kernel, which returns m², contributions and each key's statistics; the
 * scores (log_prob, p-value, anomaly, seq) are then written from its m².
 *
 * @module
 */
import type { HeadConfig } from "../config/head_config.ts";
import type { Chi2Tail } from "../model/chi2_tail.ts";
import { predictiveSf } from "../model/f_tail.ts";
import type { Head } from "./head.ts";
import type { HeadBank } from "./head_bank.ts";
import type { FusedKernel } from "./kernels/fused_kernel.ts";
import type { ObservationBatch, ScoreBatch } from "./types.ts";

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

/** What the kernel path needs of the engine. */
export interface KernelContext {
  readonly config: HeadConfig;
  readonly bank: HeadBank;
  readonly kernel: FusedKernel;
  readonly tail: Chi2Tail;
  /** The χ² anomaly threshold on m² (the Adam step's keys). */
  readonly m2Alpha: number;
}

/** float32 kernels (webgpu): rows centred on their key's frame origin in float64 first. */
export async function runKernel(
  ctx: KernelContext,
  batch: ObservationBatch,
  heads: Head[],
  active: Int32Array,
  Ka: number,
  rowWeight: Float32Array | null,
  out: ScoreBatch,
): Promise<Float64Array> {
  const d = ctx.config.dim;
  const { n, values, keyIndex, keys } = batch;
  const locK = new Float32Array(Ka * d);
  const tril = new Float32Array(Ka * d * d);
  for (let j = 0; j < Ka; j++) {
    const h = heads[j];
    for (let a = 0; a < d; a++) locK[j * d + a] = h.locC[a];
    for (let e = 0; e < d * d; e++) tril[j * d * d + e] = h.tril[e];
  }
  const local = new Int32Array(keys.length);
  for (let j = 0; j < Ka; j++) local[active[j]] = j;
  const keyIdx = new Int32Array(n);
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const j = local[keyIndex[i]];
    keyIdx[i] = j;
    const f = heads[j].frameLoc;
    for (let a = 0; a < d; a++) x[i * d + a] = values[i * d + a] - f[a];
  }
  const res = await ctx.kernel.run({
    n,
    d,
    K: Ka,
    x,
    keyIdx,
    rowWeight: rowWeight ?? new Float32Array(n).fill(1),
    loc: locK,
    tril,
    robustC: ctx.bank.robustC,
    robustFloor: ctx.config.robust_floor,
  });
  out.mahalanobis2.set(res.m2);
  out.contrib.set(res.contrib);
  return res.stats;
}

/** Scores from the kernel's m², with each key's count from before this batch. */
export function scoreRows(
  ctx: KernelContext,
  batch: ObservationBatch,
  heads: Head[],
  active: Int32Array,
  Ka: number,
  start: Int32Array,
  order: Int32Array | null,
  out: ScoreBatch,
  obsAfter: Float64Array,
): void {
  // Score only: no row is counted.
  const counted = batch.scoreOnly === true ? new Uint8Array(batch.n) : batch.counted;
  const sf = batch.pValues !== false ? ctx.tail.sf : null;
  const { logProb, mahalanobis2, pValue, anomaly, seq } = out;
  const constTerm = ctx.config.dim * HALF_LOG_2PI;
  const natural = ctx.bank.natural;
  const d = ctx.config.dim;
  for (let j = 0; j < Ka; j++) {
    const h = heads[j];
    const k = active[j];
    const m2Alpha = natural ? ctx.bank.threshold(h) : ctx.m2Alpha;
    const nEff = ctx.bank.nEff(h);
    let obs = h.observations;
    const flagFrom = h.preset ? 0 : ctx.config.warmup + 1;
    const c = -h.logDet - constTerm;
    for (let r = start[k]; r < start[k + 1]; r++) {
      const i = order === null ? r : order[r];
      if (counted === undefined || counted[i] === 1) obs++;
      const m2 = mahalanobis2[i];
      logProb[i] = c - 0.5 * m2;
      pValue[i] = sf === null
        ? NaN
        : natural && nEff !== Infinity
        ? predictiveSf(m2, nEff, d)
        : sf(m2);
      seq[i] = obs > 0 ? obs : 1;
      // p_value < alpha ⟺ m² > the tail's quantile at 1 − alpha (the tail is monotone).
      anomaly[i] = m2 > m2Alpha && obs >= flagFrom ? 1 : 0;
    }
    obsAfter[j] = obs;
  }
}
