/**
 * The engine proper, running in the calling thread: groups a batch by key, runs the fused kernel
 * with the parameters from before the batch, turns its outputs into scores (log_prob, p-value,
 * anomaly) and its statistics into one learning step per key (the natural step by default, Adam as
 * an option). `src/engine/thread/compute_thread.ts` runs it in the compute thread.
 *
 * Natural step: every learned row carries a forgetting weight λ^(learned rows of its key after it
 * in the batch), p-values come from each key's predictive (F) tail with its effective n, anomalies
 * from the matching per-key threshold on m², and a CUSUM per key watches for sustained change.
 *
 * Its parts: `row_groups.ts` (grouping by key), `batch_heads.ts` (heads, new keys drafted),
 * `cpu_pass.ts` (the cpu path), `kernel_pass.ts` (the float32 kernel path), `overflow.ts`
 * (non-finite input, m² overflow), `natural_commit.ts` (the natural step's p-values and commit),
 * `score_pool.ts` (reused score buffers).
 *
 * @module
 */
import type { HeadConfig } from "../config/head_config.ts";
import { chi2Isf } from "../model/chi2.ts";
import { Chi2Tail } from "../model/chi2_tail.ts";
import { checkBatchShape, requireKnown, resolveHeads } from "./batch_heads.ts";
import { runCpuPass } from "./cpu_pass.ts";
import type { ScoringEngine } from "./engine.ts";
import { type FusedKernel, statsWidth } from "./kernels/fused_kernel.ts";
import { HeadBank } from "./head_bank.ts";
import type { Head } from "./head.ts";
import type { FusedPass } from "./kernels/cpu_fused.ts";
import { type KernelContext, runKernel, scoreRows } from "./kernel_pass.ts";
import {
  type CommitKeys,
  commitNatural,
  type NaturalContext,
  predictivePValues,
} from "./natural_commit.ts";
import { firstNonFinite, hostM2, overflowRows, parkRows, saturate } from "./overflow.ts";
import {
  forgettingWeights,
  gatherRows,
  groupRows,
  learnMaskOf,
  maskedRows,
  orderRows,
  rangeInto,
  Scratch,
  weightsAt,
} from "./row_groups.ts";
import { ScorePool } from "./score_pool.ts";
import type {
  BackendName,
  HeadParams,
  HeadSnapshot,
  HeadState,
  ObservationBatch,
  ScoreBatch,
} from "./types.ts";

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

/** Options of {@link LocalEngine}. */
export interface LocalEngineOptions {
  readonly kernel: FusedKernel;
  /** Whether the kernel takes float64 inputs (the cpu loop) or float32 (tfjs tensors). */
  readonly float64: boolean;
  readonly backendReason: string;
  readonly log?: (line: string) => void;
}

/** {@link ScoringEngine} in the current thread. */
export class LocalEngine implements ScoringEngine {
  readonly config: HeadConfig;
  readonly backend: BackendName;
  readonly backendReason: string;
  readonly bank: HeadBank;
  readonly #kernel: FusedKernel;
  readonly #f64: boolean;
  readonly #tail: Chi2Tail;
  readonly #m2Alpha: number;
  readonly #scratch = new Scratch();
  readonly #pool = new ScorePool();
  /** A batch's heads by position (working copies; see `HeadBank.batchHead`). */
  readonly #heads: Head[] = [];
  /** What the natural step's functions and the kernel path read of this engine. */
  readonly #ctx: NaturalContext & KernelContext;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(config: HeadConfig, options: LocalEngineOptions) {
    this.config = config;
    this.#kernel = options.kernel;
    this.backend = options.kernel.backend;
    this.backendReason = options.backendReason;
    this.#f64 = options.float64;
    this.bank = new HeadBank(config, options.log);
    this.#tail = new Chi2Tail(config.dim);
    this.#m2Alpha = chi2Isf(config.alpha, config.dim);
    this.#ctx = {
      config,
      bank: this.bank,
      kernel: this.#kernel,
      tail: this.#tail,
      m2Alpha: this.#m2Alpha,
      cusumOut: new Float64Array(1),
    };
  }

  process(batch: ObservationBatch): Promise<ScoreBatch> {
    // Strictly in call order, also for callers in this thread that do not await each batch: a
    // batch must see the parameters its predecessor left, and the scratch arrays are shared.
    const result = this.#chain.then(() => this.#process(batch));
    this.#chain = result.then(() => {}, () => {});
    return result;
  }

  /**
   * Hands a {@link ScoreBatch} this engine produced back for reuse: its arrays share one buffer,
   * which the next batch may overwrite, so the caller must not read them afterwards. Optional:
   * unreleased batches are simply garbage-collected, but fresh multi-megabyte buffers cost more
   * than the scoring itself at large batches (page faults on zeroed memory).
   */
  release(scores: ScoreBatch): void {
    this.#pool.release(scores);
  }

  async #process(batch: ObservationBatch): Promise<ScoreBatch> {
    const d = this.config.dim;
    const { n, values, keyIndex, keys } = batch;
    checkBatchShape(batch, d);
    const K = keys.length;
    const sc = this.#scratch;
    const scoreOnly = batch.scoreOnly === true;
    if (scoreOnly) requireKnown(this.bank, keys, keyIndex);
    // Score only: every row is a not-counted, not-learned one, and nothing is committed below.
    const learn = scoreOnly ? undefined : batch.learn;
    const counted = scoreOnly ? new Uint8Array(n) : batch.counted;
    // Per-row loops live in small module functions: in this long method they would run in the
    // interpreter until on-stack replacement, and deoptimise on every path not yet seen.
    const { start, active, local, Ka, runs } = groupRows(keyIndex, n, K, sc);
    let ordered: Int32Array | null = null;
    const order = () => (ordered ??= orderRows(keyIndex, start, K, sc));
    const bank = this.bank;
    const natural = bank.natural;
    // 1 = learn from the row (new and not frozen), 0 = score only; null: every row.
    const learnMask = learn !== undefined || counted !== undefined
      ? learnMaskOf(learn, counted, n, sc.uint8("learnMask", n))
      : null;
    // Per row: the weight it enters the statistics with (forgetting weights under the natural step).
    const learnedK = sc.float64("learnedK", K);
    let rowWeight: Float32Array | null = null;
    if (natural) {
      rowWeight = forgettingWeights(
        keyIndex,
        learnMask,
        bank.lambda,
        sc.float32("rowWeight", n),
        learnedK,
        sc.float64("powK", K),
      );
    } else if (learnMask !== null) {
      rowWeight = sc.float32("rowWeight", n);
      for (let i = 0; i < n; i++) rowWeight[i] = learnMask[i];
    }
    let range: Int32Array | null = null;
    const rowsOf = (k: number) =>
      K === 1
        ? (range ??= rangeInto(sc.int("range", n), start[k]))
        : sc.rowsInto(order(), start[k], start[k + 1]);
    const learnedOf = (rows: Int32Array) => learnMask === null ? rows : maskedRows(rows, learnMask);
    const weightsOf = (rows: Int32Array) =>
      natural && rowWeight !== null
        ? weightsAt(rows, rowWeight, sc.exact(0, rows.length))
        : undefined;
    // Reused across batches: arrays per batch that outlive a scavenge grow V8's young generation.
    const heads = this.#heads, created = sc.uint8("created", Ka);
    const gather = (rows: Int32Array) => gatherRows(values, rows, d, sc.exact(1, rows.length * d));
    resolveHeads(bank, d, batch, active, Ka, rowsOf, learnedOf, weightsOf, gather, heads, created);
    // Natural step: per-key anomaly thresholds on m² from the predictive tail.
    // Each key's effective n from before the batch, once: thresholds, p-values and the commit read it.
    const nEffK = sc.float64("nEff", Ka);
    let thr: Float64Array | null = null;
    if (natural) {
      thr = sc.float64("thr", Ka);
      for (let j = 0; j < Ka; j++) {
        const h = heads[j];
        const nEff = bank.nEff(h);
        nEffK[j] = nEff;
        thr[j] = bank.threshold(h, nEff);
      }
    }
    const out = this.#pool.outputs(n, d);
    const S = statsWidth(d);
    const withP = batch.pValues !== false;
    const constTerm = d * HALF_LOG_2PI;
    const obsAfter = sc.float64("obsAfter", Ka);
    let stats: Float64Array;
    let bad = -1;
    let overflow: Int32Array | null = null;
    if (this.#f64) {
      // cpu: one pass writes every score and each key's statistics (mvn_fused.ts).
      stats = sc.float64("stats", Ka * S);
      const pass: FusedPass = {
        d,
        x: values,
        rowWeight,
        robustC: bank.robustC,
        robustFloor: this.config.robust_floor,
        m2: out.mahalanobis2,
        contrib: out.contrib,
        stats,
        scoring: {
          logProb: out.logProb,
          pValue: out.pValue,
          anomaly: out.anomaly,
          seq: out.seq,
          counted: counted ?? null,
          sf: withP && !natural ? this.#tail.sf : null,
          m2Alpha: this.#m2Alpha,
        },
        bad: -1,
      };
      runCpuPass(
        pass,
        {
          keyIndex,
          heads,
          Ka,
          active,
          local,
          start,
          runs,
          order,
          logConst: constTerm,
          flagFrom: this.config.warmup + 1,
          thr,
        },
        sc,
        obsAfter,
      );
      bad = pass.bad;
      if (bad >= 0) overflow = overflowRows(values, out.mahalanobis2, d, () => this.release(out));
      if (natural && withP) {
        predictivePValues(this.#ctx, nEffK, active, Ka, start, K === 1 ? null : order(), out);
      }
    } else {
      stats = await runKernel(this.#ctx, batch, heads, active, Ka, rowWeight, out);
      bad = firstNonFinite(out.mahalanobis2);
      if (bad >= 0) {
        // float32 overflow of finite readings: rerun with them at their key's loc, unlearned.
        overflow = overflowRows(values, out.mahalanobis2, d, () => this.release(out));
        const fixed = parkRows(batch, overflow, heads, local, rowWeight, n);
        stats = await runKernel(this.#ctx, fixed.batch, heads, active, Ka, fixed.rowWeight, out);
        for (const i of overflow) {
          const h = heads[local[keyIndex[i]]];
          out.mahalanobis2[i] = hostM2(values, i, d, h, out.contrib);
        }
      }
      scoreRows(
        this.#ctx,
        batch,
        heads,
        active,
        Ka,
        start,
        K === 1 ? null : order(),
        out,
        obsAfter,
      );
    }
    // Non-finite input (or parameters) show as a non-finite m²: refuse before any state changes.
    // A finite reading whose m² overflows is scored with saturated values and not learned from.
    if (bad >= 0) {
      overflow ??= overflowRows(values, out.mahalanobis2, d, () => this.release(out));
      saturate(out, overflow, withP);
    }
    if (scoreOnly) return out;
    // Rows whose m² overflowed are scored but not learned from (weight 0).
    const learnedRows = (rows: Int32Array) => {
      const use = learnedOf(rows);
      return overflow === null ? use : use.filter((i) => !overflow!.includes(i));
    };
    const commitKeys: CommitKeys = {
      heads,
      created,
      Ka,
      obsAfter,
      stats,
      learnedRows: (j) => learnedRows(rowsOf(active[j])),
      nEff: nEffK,
    };
    if (natural) {
      commitNatural(this.#ctx, commitKeys, {
        values,
        m2: out.mahalanobis2,
        weightsOf,
        gather,
        learned: (j) => learnedK[active[j]],
      });
    } else {
      this.#commit(commitKeys, values);
    }
    bank.save(heads, Ka);
    return out;
  }

  /**
   * The batch is accepted: new heads join the bank, counts advance, and each key learns —
   * in closed form while initialising, else one Adam step from the fused statistics.
   */
  #commit(keys: CommitKeys, values: Float64Array): void {
    const { heads, created, Ka, obsAfter, stats, learnedRows } = keys;
    const bank = this.bank;
    const d = this.config.dim;
    const S = statsWidth(d);
    for (let j = 0; j < Ka; j++) {
      const h = heads[j];
      if (created[j] !== 0) bank.adopt(h);
      h.observations = obsAfter[j];
      if (h.init !== null) {
        if (created[j] === 1) continue;
        const use = learnedRows(j);
        if (use.length > 0) bank.absorbInit(h, gatherRows(values, use, d), use.length);
      } else {
        bank.step(h, stats, j * S);
      }
    }
  }

  snapshot(keys?: readonly string[]): Promise<HeadSnapshot[]> {
    return Promise.resolve(this.#select(keys).map((k) => this.bank.snapshot(k)));
  }

  exportState(keys?: readonly string[]): Promise<HeadState[]> {
    return Promise.resolve(this.#select(keys).map((k) => this.bank.exportState(k)));
  }

  importState(states: readonly HeadState[]): Promise<void> {
    for (const s of states) this.bank.importState(s);
    return Promise.resolve();
  }

  forget(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.bank.delete(k);
    return Promise.resolve();
  }

  setParams(key: string, params: HeadParams): Promise<void> {
    this.bank.setParams(key, params);
    return Promise.resolve();
  }

  keys(): Promise<string[]> {
    return Promise.resolve(this.bank.keys());
  }

  close(): Promise<void> {
    this.#kernel.dispose();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #select(keys?: readonly string[]): string[] {
    return keys === undefined ? this.bank.keys() : keys.filter((k) => this.bank.has(k));
  }
}
