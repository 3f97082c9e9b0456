/**
 * The fused hot path as one TypeScript loop: the cpu implementation of the contract in
 * `fused_kernel.ts` (and the "fused-loop bound" of the benchmark). Accumulates in float64.
 *
 * @module
 */
import { type FusedInputs, type FusedOutputs, statsWidth } from "./fused_kernel.ts";

/** Runs the fused op; `out` may be given to reuse output buffers (they are zeroed as needed). */
export function mvnFusedCpu(inp: FusedInputs, out?: FusedOutputs): FusedOutputs {
  const { n, d, K, x, keyIdx, rowWeight, loc, tril, robustC, robustFloor } = inp;
  const S = statsWidth(d);
  const m2Out = out?.m2 ?? new Float64Array(n);
  const contrib = out?.contrib ?? new Float64Array(n * d);
  const stats = out?.stats ?? new Float64Array(K * S);
  stats.fill(0, 0, K * S);
  // 1/L_aa per head, so the row loop multiplies instead of divides.
  const inv = new Float64Array(K * d);
  for (let k = 0; k < K; k++) {
    for (let a = 0; a < d; a++) inv[k * d + a] = 1 / tril[k * d * d + a * d + a];
  }
  if (d === 3) {
    _fused3(inp, inv, m2Out, contrib, stats);
    return { m2: m2Out, contrib, stats };
  }
  const z = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const k = keyIdx[i];
    const xb = i * d;
    const lb = k * d;
    const tb = k * d * d;
    let m2 = 0;
    for (let a = 0; a < d; a++) {
      let s = x[xb + a] - loc[lb + a];
      const row = tb + a * d;
      for (let b = 0; b < a; b++) s -= tril[row + b] * z[b];
      const za = s * inv[lb + a];
      z[a] = za;
      const c = za * za;
      contrib[xb + a] = c;
      m2 += c;
    }
    m2Out[i] = m2;
    const rw = rowWeight[i];
    const sb = k * S;
    stats[sb] += rw;
    if (rw === 0) continue;
    const w = rw * (m2 <= robustC ? 1 : Math.max(robustFloor, Math.exp(-0.5 * (m2 - robustC))));
    stats[sb + 1] += w;
    let p = sb + 2;
    for (let a = 0; a < d; a++) stats[p++] += w * z[a];
    for (let a = 0; a < d; a++) {
      const wa = w * z[a];
      for (let b = 0; b <= a; b++) stats[p++] += wa * z[b];
    }
  }
  return { m2: m2Out, contrib, stats };
}

/** d = 3 unrolled: the default telemetry case, where loop overhead would dominate. */
function _fused3(
  inp: FusedInputs,
  inv: Float64Array,
  m2Out: FusedOutputs["m2"],
  contrib: FusedOutputs["contrib"],
  stats: Float64Array,
): void {
  const { n, x, keyIdx, rowWeight, loc, tril, robustC, robustFloor } = inp;
  for (let i = 0; i < n; i++) {
    const k = keyIdx[i];
    const xb = i * 3;
    const lb = k * 3;
    const tb = k * 9;
    const z0 = (x[xb] - loc[lb]) * inv[lb];
    const z1 = (x[xb + 1] - loc[lb + 1] - tril[tb + 3] * z0) * inv[lb + 1];
    const z2 = (x[xb + 2] - loc[lb + 2] - tril[tb + 6] * z0 - tril[tb + 7] * z1) * inv[lb + 2];
    const c0 = z0 * z0, c1 = z1 * z1, c2 = z2 * z2;
    contrib[xb] = c0;
    contrib[xb + 1] = c1;
    contrib[xb + 2] = c2;
    const m2 = c0 + c1 + c2;
    m2Out[i] = m2;
    const rw = rowWeight[i];
    const sb = k * 11;
    stats[sb] += rw;
    if (rw === 0) continue;
    const w = rw * (m2 <= robustC ? 1 : Math.max(robustFloor, Math.exp(-0.5 * (m2 - robustC))));
    const w0 = w * z0, w1 = w * z1, w2 = w * z2;
    stats[sb + 1] += w;
    stats[sb + 2] += w0;
    stats[sb + 3] += w1;
    stats[sb + 4] += w2;
    stats[sb + 5] += w0 * z0;
    stats[sb + 6] += w1 * z0;
    stats[sb + 7] += w1 * z1;
    stats[sb + 8] += w2 * z0;
    stats[sb + 9] += w2 * z1;
    stats[sb + 10] += w2 * z2;
  }
}
