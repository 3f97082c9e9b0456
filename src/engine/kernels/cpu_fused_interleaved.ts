/**
 * The fused d = 3 loop for batches of interleaved keys (short runs of each): rows in their own
 * order with each key's parameters from a small table, the counterpart of the per-segment loops
 * in cpu_fused.ts, whose second-loop helpers it shares. Its own file because it is a loop of its
 * own (its own data layout and accumulation), chosen by the engine's cpu pass per batch.
 *
 * @module
 */
import { addWeighted3, EMPTY_F64, EMPTY_U8, type FusedPass, oddRow, pValues } from "./cpu_fused.ts";

/** Per-key parameters for rows of interleaved keys (d = 3), indexed by the local key j. */
export interface InterleavedKeys {
  readonly K: number;
  /** K×3, same origin as the rows. */
  readonly loc: Float64Array;
  /** K×9 full row-major lower-triangular factors. */
  readonly tril: Float64Array;
  /** K: −log det L − d/2·log 2π. */
  readonly logNorm: Float64Array;
  /** K: anomalies are flagged from this observation count on. */
  readonly flagFrom: Float64Array;
  /** K: observations before the batch on entry, after it on return. */
  readonly observations: Float64Array;
  /** K: per-key anomaly thresholds on m2; absent: the pass's `scoring.m2Alpha`. */
  readonly m2Alpha?: Float64Array;
}

/**
 * d = 3 for batches whose keys are interleaved (short runs): rows in their own order, so memory
 * is read and written sequentially, with each key's parameters from a small table and its
 * statistics accumulated at stats[j·11]. Gathering rows key by key instead costs several cache
 * misses per row (3× slower at 1,000 keys). Same two-loop structure as the segment loop.
 */
export function fusedInterleaved3(pass: FusedPass, keyIdx: Int32Array, t: InterleavedKeys): void {
  const { x, rowWeight, robustC, m2: m2Out, contrib, scoring, stats } = pass;
  const n = keyIdx.length, K = t.K;
  // Per key: loc (3), 1/L_aa (3), L10, L20, L21: one cache line's worth, together.
  const P = new Float64Array(K * 9);
  for (let j = 0; j < K; j++) {
    const q = j * 9, l = j * 3;
    P[q] = t.loc[l];
    P[q + 1] = t.loc[l + 1];
    P[q + 2] = t.loc[l + 2];
    P[q + 3] = 1 / t.tril[q];
    P[q + 4] = 1 / t.tril[q + 4];
    P[q + 5] = 1 / t.tril[q + 8];
    P[q + 6] = t.tril[q + 3];
    P[q + 7] = t.tril[q + 6];
    P[q + 8] = t.tril[q + 7];
  }
  stats.fill(0, 0, K * 11);
  const obs = t.observations, logNorm = t.logNorm, flagFrom = t.flagFrom;
  const scored = scoring !== null;
  const logProb = scoring?.logProb ?? EMPTY_F64, seq = scoring?.seq ?? EMPTY_F64;
  const anomaly = scoring?.anomaly ?? EMPTY_U8, counted = scoring?.counted ?? null;
  const m2Alpha = scoring?.m2Alpha ?? Infinity;
  const thrK = t.m2Alpha ?? null;
  let odd = 0;
  for (let i = 0; i < n; i++) {
    const j = keyIdx[i];
    const q = j * 9, xb = i * 3;
    const z0 = (x[xb] - P[q]) * P[q + 3];
    const z1 = (x[xb + 1] - P[q + 1] - P[q + 6] * z0) * P[q + 4];
    const z2 = (x[xb + 2] - P[q + 2] - P[q + 7] * z0 - P[q + 8] * z1) * P[q + 5];
    const c0 = z0 * z0, c1 = z1 * z1, c2 = z2 * z2;
    contrib[xb] = c0;
    contrib[xb + 1] = c1;
    contrib[xb + 2] = c2;
    const m2 = c0 + c1 + c2;
    m2Out[i] = m2;
    if (scored) {
      let o = obs[j];
      if (counted === null || counted[i] === 1) obs[j] = ++o;
      logProb[i] = logNorm[j] - 0.5 * m2;
      seq[i] = o > 0 ? o : 1;
      anomaly[i] = m2 > (thrK === null ? m2Alpha : thrK[j]) && o >= flagFrom[j] ? 1 : 0;
    }
    const rw = rowWeight === null ? 1 : rowWeight[i];
    if (m2 <= robustC && rw > 0) {
      const sb = j * 11;
      const w0 = rw * z0, w1 = rw * z1, w2 = rw * z2;
      stats[sb] += rw;
      stats[sb + 1] += rw;
      stats[sb + 2] += w0;
      stats[sb + 3] += w1;
      stats[sb + 4] += w2;
      stats[sb + 5] += w0 * z0;
      stats[sb + 6] += w1 * z0;
      stats[sb + 7] += w1 * z1;
      stats[sb + 8] += w2 * z0;
      stats[sb + 9] += w2 * z1;
      stats[sb + 10] += w2 * z2;
    } else odd++;
  }
  for (let i = 0; odd > 0 && i < n; i++) {
    const j = keyIdx[i];
    const w = oddRow(pass, i, stats, j * 11);
    if (w === 0) continue;
    odd--;
    if (w < 0) continue;
    const q = j * 9, xb = i * 3;
    const z0 = (x[xb] - P[q]) * P[q + 3];
    const z1 = (x[xb + 1] - P[q + 1] - P[q + 6] * z0) * P[q + 4];
    const z2 = (x[xb + 2] - P[q + 2] - P[q + 7] * z0 - P[q + 8] * z1) * P[q + 5];
    addWeighted3(stats, j * 11, w, z0, z1, z2);
  }
  if (scoring !== null) pValues(scoring, m2Out, null, 0, n);
}
