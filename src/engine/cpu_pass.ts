/**
 * The engine's one-pass cpu path: plans which fused loop runs a batch (a segment per run of one
 * key, the interleaved d = 3 loop, or a segment per key over its gathered rows) and runs it,
 * writing every score and each key's statistics.
 *
 * @module
 */
import type { Head } from "./head.ts";
import { statsWidth } from "./kernels/fused_kernel.ts";
import { type FusedPass, fusedSegment } from "./kernels/cpu_fused.ts";
import { fusedInterleaved3 } from "./kernels/cpu_fused_interleaved.ts";
import { localKeys, type Scratch } from "./row_groups.ts";

/** What the cpu pass needs of the batch's grouping and heads. */
export interface CpuPlan {
  readonly keyIndex: Uint32Array;
  readonly heads: Head[];
  readonly Ka: number;
  readonly active: Int32Array;
  readonly local: Int32Array;
  readonly start: Int32Array;
  readonly runs: number;
  /** Rows grouped by key, built on demand. */
  readonly order: () => Int32Array;
  readonly logConst: number;
  readonly flagFrom: number;
  /** Per local key: anomaly threshold on m² (natural step); null: the pass's χ² threshold. */
  readonly thr: Float64Array | null;
}

/**
 * The cpu pass. Long runs of one key (one key, or input sorted by key): a segment per run, rows
 * in place. Interleaved keys at d = 3: one row-order loop over a per-key table. Otherwise: a
 * segment per key over its gathered rows. Each key's count after the batch goes to obsAfter and
 * its statistics to pass.stats at j·statsWidth(d).
 */
export function runCpuPass(
  pass: FusedPass,
  plan: CpuPlan,
  sc: Scratch,
  obsAfter: Float64Array,
): void {
  const { heads, Ka, start } = plan;
  const d = pass.d;
  const S = statsWidth(d);
  const n = plan.keyIndex.length;
  const locAbs = sc.float64("locAbs", Ka * d);
  for (let j = 0; j < Ka; j++) {
    const h = heads[j];
    for (let a = 0; a < d; a++) locAbs[j * d + a] = h.frameLoc[a] + h.locC[a];
    obsAfter[j] = h.observations;
  }
  const head = (j: number, statsAt: number) => ({
    loc: locAbs,
    locAt: j * d,
    tril: heads[j].tril,
    trilAt: 0,
    statsAt,
    logNorm: -heads[j].logDet - plan.logConst,
    observations: obsAfter[j],
    flagFrom: heads[j].preset ? 0 : plan.flagFrom,
    m2Alpha: plan.thr === null ? undefined : plan.thr[j],
  });
  if (plan.runs * 8 <= n || Ka === 1) {
    const stats = pass.stats;
    stats.fill(0, 0, Ka * S);
    const part: FusedPass = { ...pass, stats: sc.float64("part", S) };
    const { keyIndex, local } = plan;
    for (let r0 = 0; r0 < n;) {
      const k = keyIndex[r0];
      let r1 = r0 + 1;
      while (r1 < n && keyIndex[r1] === k) r1++;
      const j = local[k];
      obsAfter[j] = fusedSegment(part, null, r0, r1, head(j, 0));
      for (let s = 0; s < S; s++) stats[j * S + s] += part.stats[s];
      r0 = r1;
    }
    pass.bad = part.bad;
  } else if (d === 3) {
    const tril = sc.float64("trilK", Ka * 9);
    const logNorm = sc.float64("logNorm", Ka);
    const flagFrom = sc.float64("flagFrom", Ka);
    for (let j = 0; j < Ka; j++) {
      // Element by element: set() of a 9-element view costs more than the copy (per key, many keys).
      const t = heads[j].tril;
      for (let e = 0; e < 9; e++) tril[j * 9 + e] = t[e];
      logNorm[j] = -heads[j].logDet - plan.logConst;
      flagFrom[j] = heads[j].preset ? 0 : plan.flagFrom;
    }
    const keyIdx = localKeys(plan.keyIndex, plan.local, sc.int("keyIdx", n));
    fusedInterleaved3(pass, keyIdx, {
      K: Ka,
      loc: locAbs,
      tril,
      logNorm,
      flagFrom,
      observations: obsAfter,
      m2Alpha: plan.thr ?? undefined,
    });
  } else {
    const order = plan.order();
    for (let j = 0; j < Ka; j++) {
      const k = plan.active[j];
      obsAfter[j] = fusedSegment(pass, order, start[k], start[k + 1], head(j, j * S));
    }
  }
}
