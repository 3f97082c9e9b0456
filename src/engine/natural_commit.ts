/**
 * The natural step's side of a batch: p-values from each key's predictive (F) tail, and the
 * commit that runs each key's change detector (CUSUM) over its learned rows, then restarts the key,
 * absorbs its rows while it initialises, or takes one natural step.
 *
 * @module
 */
import type { HeadConfig } from "../config/head_config.ts";
import type { Chi2Tail } from "../model/chi2_tail.ts";
import { cusumRun } from "../model/change_detector.ts";
import { predictiveSf } from "../model/f_tail.ts";
import { hostStats, robustWeight } from "../model/natural_step.ts";
import type { Head } from "./head.ts";
import type { HeadBank } from "./head_bank.ts";
import { statsWidth } from "./kernels/fused_kernel.ts";
import type { ScoreBatch } from "./types.ts";

/** What the natural step's functions need of the engine. */
export interface NaturalContext {
  readonly config: HeadConfig;
  readonly bank: HeadBank;
  /** The χ² tail (keys with known parameters). */
  readonly tail: Chi2Tail;
  /** One-element output of the change detector's statistic, reused. */
  readonly cusumOut: Float64Array;
}

/**
 * An accepted batch's active keys as a commit reads them: their heads (`created`: 0 known, 1 new
 * and seeded from rows it learns from, 2 new from score-only rows), their counts after the batch,
 * their fused statistics (S per key) and their learned rows.
 */
export interface CommitKeys {
  heads: Head[];
  created: Uint8Array;
  Ka: number;
  obsAfter: Float64Array;
  stats: Float64Array;
  learnedRows: (j: number) => Int32Array;
  /** Natural step: each key's effective n before the batch (as {@link HeadBank.nEff}). */
  nEff: Float64Array;
}

/** What {@link commitNatural} reads of the batch's rows. */
export interface NaturalRows {
  readonly values: Float64Array;
  readonly m2: Float64Array;
  /**
   * Per-row weights and values of rows: temporaries (the same arrays again on the next call), read
   * and let go at once.
   */
  readonly weightsOf: (rows: Int32Array) => Float64Array | undefined;
  readonly gather: (rows: Int32Array) => Float64Array;
  readonly learned: (j: number) => number;
}

/**
 * Natural step: p-values from each key's predictive F tail (`nEffK`: each active key's effective n
 * from before the batch).
 */
export function predictivePValues(
  ctx: NaturalContext,
  nEffK: Float64Array,
  active: Int32Array,
  Ka: number,
  start: Int32Array,
  order: Int32Array | null,
  out: ScoreBatch,
): void {
  const d = ctx.config.dim;
  const { pValue, mahalanobis2 } = out;
  // Rows by index into `order` (null: rows in place), not a view per key (many keys, ~1 row each).
  for (let j = 0; j < Ka; j++) {
    const nEff = nEffK[j];
    const k = active[j];
    // Known parameters (a preset key): the fast χ² table.
    const sf = nEff === Infinity ? ctx.tail.sf : null;
    for (let r = start[k]; r < start[k + 1]; r++) {
      const i = order === null ? r : order[r];
      pValue[i] = sf !== null ? sf(mahalanobis2[i]) : predictiveSf(mahalanobis2[i], nEff, d);
    }
  }
}

/**
 * Natural step's commit: each key's change detector runs over its learned rows in order (m² from
 * the parameters before the batch); on an alarm the key restarts from the rows after it.
 * Otherwise a key still initialising absorbs its rows in closed form (weighted), else takes one
 * natural step from the fused statistics.
 */
export function commitNatural(
  ctx: NaturalContext,
  keys: CommitKeys,
  io: NaturalRows,
): void {
  const { heads, created, Ka, obsAfter, stats, learnedRows, nEff: nEffK } = keys;
  const bank = ctx.bank;
  const d = ctx.config.dim;
  const S = statsWidth(d);
  const h0 = ctx.config.change_threshold;
  const floor = ctx.config.robust_floor;
  // Robust weights of a key's rows with its own cut (m² from the parameters before the batch).
  const robustWeights = (h: Head, nEff: number, rows: Int32Array) => {
    const w = io.weightsOf(rows) ?? new Float64Array(rows.length).fill(1);
    const c = bank.robustCut(h, nEff);
    for (let r = 0; r < rows.length; r++) w[r] *= robustWeight(io.m2[rows[r]], c, floor);
    return w;
  };
  for (let j = 0; j < Ka; j++) {
    const h = heads[j];
    if (created[j] !== 0) bank.adopt(h);
    h.observations = obsAfter[j];
    if (created[j] === 1) {
      // Drafted from this batch unweighted: absorb it again with robust weights under the draft
      // (one reweighting step), so a first batch's outliers do not enter the key at full weight.
      const use = learnedRows(j);
      const w = robustWeights(h, nEffK[j], use);
      bank.clearInit(h);
      bank.absorbInit(h, io.gather(use), use.length, w);
      continue;
    }
    const use = learnedRows(j);
    if (use.length === 0) continue;
    if (h0 > 0 && !h.preset) {
      const alarm = cusumRun(io.m2, use, h.cusum, nEffK[j], d, h0, ctx.cusumOut);
      h.cusum = ctx.cusumOut[0];
      if (alarm >= 0) {
        const after = use.subarray(alarm + 1);
        bank.restart(h, io.gather(after), after.length, io.weightsOf(after));
        continue;
      }
    }
    if (h.init !== null) {
      const w = robustWeights(h, nEffK[j], use);
      bank.absorbInit(h, io.gather(use), use.length, w);
    } else if (
      anyAbove(io.m2, use, bank.robustC) && bank.robustCut(h, nEffK[j]) > bank.robustC * 1.005
    ) {
      // A young key with rows beyond the kernel's robust cut: its own (predictive, wider) cut
      // applies, so its statistics are computed on the host. (Rows within both cuts weigh the
      // same either way.)
      const loc = new Float64Array(d);
      for (let a = 0; a < d; a++) loc[a] = h.frameLoc[a] + h.locC[a];
      const own = new Float64Array(S);
      const rw = io.weightsOf(use) ?? new Float64Array(use.length).fill(1);
      const c = bank.robustCut(h, nEffK[j]);
      hostStats(io.gather(use), rw, use.length, loc, h.tril, d, c, floor, own);
      bank.stepNatural(h, own, 0, io.learned(j));
    } else {
      bank.stepNatural(h, stats, j * S, io.learned(j));
    }
  }
}

/** Whether any of `rows` has m² above c. */
function anyAbove(m2: Float64Array, rows: Int32Array, c: number): boolean {
  for (let r = 0; r < rows.length; r++) if (m2[rows[r]] > c) return true;
  return false;
}
