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
 * @module
 */
import type { HeadConfig } from "../config/head_config.ts";
import { chi2Isf } from "../model/chi2.ts";
import { Chi2Tail } from "../model/chi2_tail.ts";
import { cusumRun } from "../model/change_detector.ts";
import { predictiveSf } from "../model/f_tail.ts";
import { hostStats, robustWeight } from "../model/natural_step.ts";
import type { ScoringEngine } from "./engine.ts";
import { EngineError } from "./errors.ts";
import { type FusedKernel, statsWidth } from "./kernels/fused_kernel.ts";
import { type Head, HeadBank } from "./head_bank.ts";
import { fusedInterleaved3, type FusedPass, fusedSegment } from "./kernels/cpu_fused.ts";
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
  readonly #scratch = new _Scratch();
  readonly #cusumOut = new Float64Array(1);
  readonly #pool: ArrayBuffer[] = [];
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
    const buf = scores.logProb.buffer;
    if (!(buf instanceof ArrayBuffer) || buf.byteLength === 0) return;
    const pool = this.#pool;
    if (pool.includes(buf)) return;
    if (pool.length < _POOL_SIZE) pool.push(buf);
    else {
      // Keep the largest buffers: they fit every batch size the smaller ones fit.
      let min = 0;
      for (let p = 1; p < pool.length; p++) if (pool[p].byteLength < pool[min].byteLength) min = p;
      if (pool[min].byteLength < buf.byteLength) pool[min] = buf;
    }
  }

  async #process(batch: ObservationBatch): Promise<ScoreBatch> {
    const d = this.config.dim;
    const { n, values, keyIndex, keys } = batch;
    if (batch.dim !== d) throw new RangeError(`expected batch dimension ${d}, found ${batch.dim}`);
    if (values.length !== n * d || keyIndex.length !== n) {
      throw new RangeError(
        `expected ${
          n * d
        } values and ${n} key indices, found ${values.length} and ${keyIndex.length}`,
      );
    }
    const K = keys.length;
    const sc = this.#scratch;
    const scoreOnly = batch.scoreOnly === true;
    if (scoreOnly) this.#requireKnown(keys, keyIndex);
    // Score only: every row is a not-counted, not-learned one, and nothing is committed below.
    const learn = scoreOnly ? undefined : batch.learn;
    const counted = scoreOnly ? new Uint8Array(n) : batch.counted;
    // Per-row loops live in small module functions: in this long method they would run in the
    // interpreter until on-stack replacement, and deoptimise on every path not yet seen.
    const { start, active, local, Ka, runs } = _groupRows(keyIndex, n, K, sc);
    let ordered: Int32Array | null = null;
    const order = () => (ordered ??= _orderRows(keyIndex, start, K, sc));
    const bank = this.bank;
    const natural = bank.natural;
    // 1 = learn from the row (new and not frozen), 0 = score only; null: every row.
    const learnMask = learn !== undefined || counted !== undefined
      ? _learnMask(learn, counted, n, sc.uint8("learnMask", n))
      : null;
    // Per row: the weight it enters the statistics with (forgetting weights under the natural step).
    const learnedK = sc.float64("learnedK", K);
    let rowWeight: Float32Array | null = null;
    if (natural) {
      rowWeight = _forgettingWeights(
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
        ? (range ??= _rangeInto(sc.int("range", n), start[k]))
        : order().subarray(start[k], start[k + 1]);
    const learnedOf = (rows: Int32Array) =>
      learnMask === null ? rows : rows.filter((i) => learnMask[i] === 1);
    const weightsOf = (rows: Int32Array) =>
      natural && rowWeight !== null ? Float64Array.from(rows, (i) => rowWeight[i]) : undefined;
    const { heads, created } = this.#resolveHeads(batch, active, Ka, rowsOf, learnedOf, weightsOf);
    // Natural step: per-key anomaly thresholds on m² from the predictive tail.
    let thr: Float64Array | null = null;
    if (natural) {
      thr = sc.float64("thr", Ka);
      for (let j = 0; j < Ka; j++) thr[j] = bank.threshold(heads[j]);
    }
    const out = this.#outputs(n, d);
    const S = statsWidth(d);
    const withP = batch.pValues !== false;
    const constTerm = d * HALF_LOG_2PI;
    const obsAfter = sc.float64("obsAfter", Ka);
    let stats: Float64Array;
    let bad = -1;
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
      _runCpuPass(
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
      if (bad < 0 && natural && withP) {
        this.#predictivePValues(heads, active, Ka, rowsOf, out);
      }
    } else {
      stats = await this.#runKernel(batch, heads, active, Ka, rowWeight, out);
      bad = _firstNonFinite(out.mahalanobis2);
      if (bad < 0) {
        this.#scoreRows(batch, heads, active, Ka, start, K === 1 ? null : order(), out, obsAfter);
      }
    }
    // Non-finite input (or parameters) show as a non-finite m²: refuse before any state changes.
    if (bad >= 0) {
      this.release(out);
      _nonFinite(values, bad, d);
    }
    if (scoreOnly) return out;
    if (natural) {
      this.#commitNatural(
        heads,
        created,
        Ka,
        obsAfter,
        stats,
        (j) => learnedOf(rowsOf(active[j])),
        {
          values,
          m2: out.mahalanobis2,
          weightsOf,
          learned: (j) => learnedK[active[j]],
        },
      );
    } else {
      this.#commit(
        heads,
        created,
        Ka,
        obsAfter,
        stats,
        (j) => learnedOf(rowsOf(active[j])),
        values,
      );
    }
    return out;
  }

  /** Natural step: p-values from each key's predictive F tail (effective n from before the batch). */
  #predictivePValues(
    heads: Head[],
    active: Int32Array,
    Ka: number,
    rowsOf: (k: number) => Int32Array,
    out: ScoreBatch,
  ): void {
    const d = this.config.dim;
    const { pValue, mahalanobis2 } = out;
    for (let j = 0; j < Ka; j++) {
      const nEff = this.bank.nEff(heads[j]);
      const rows = rowsOf(active[j]);
      // Known parameters (a preset key): the fast χ² table.
      const sf = nEff === Infinity ? this.#tail.sf : null;
      for (let r = 0; r < rows.length; r++) {
        const i = rows[r];
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
  #commitNatural(
    heads: Head[],
    created: Uint8Array,
    Ka: number,
    obsAfter: Float64Array,
    stats: Float64Array,
    learnedRows: (j: number) => Int32Array,
    io: {
      values: Float64Array;
      m2: Float64Array;
      weightsOf: (rows: Int32Array) => Float64Array | undefined;
      learned: (j: number) => number;
    },
  ): void {
    const bank = this.bank;
    const d = this.config.dim;
    const S = statsWidth(d);
    const h0 = this.config.change_threshold;
    const floor = this.config.robust_floor;
    // Robust weights of a key's rows with its own cut (m² from the parameters before the batch).
    const robustWeights = (h: Head, rows: Int32Array) => {
      const w = io.weightsOf(rows) ?? new Float64Array(rows.length).fill(1);
      const c = bank.robustCut(h);
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
        const w = robustWeights(h, use);
        bank.clearInit(h);
        bank.absorbInit(h, _gatherRows(io.values, use, d), use.length, w);
        continue;
      }
      const use = learnedRows(j);
      if (use.length === 0) continue;
      if (h0 > 0 && !h.preset) {
        const nEff = bank.nEff(h);
        const alarm = cusumRun(io.m2, use, h.cusum, nEff, d, h0, this.#cusumOut);
        h.cusum = this.#cusumOut[0];
        if (alarm >= 0) {
          const after = use.subarray(alarm + 1);
          bank.restart(h, _gatherRows(io.values, after, d), after.length, io.weightsOf(after));
          continue;
        }
      }
      if (h.init !== null) {
        const w = robustWeights(h, use);
        bank.absorbInit(h, _gatherRows(io.values, use, d), use.length, w);
      } else if (_anyAbove(io.m2, use, bank.robustC) && bank.robustCut(h) > bank.robustC * 1.005) {
        // A young key with rows beyond the kernel's robust cut: its own (predictive, wider) cut
        // applies, so its statistics are computed on the host. (Rows within both cuts weigh the
        // same either way.)
        const loc = new Float64Array(d);
        for (let a = 0; a < d; a++) loc[a] = h.frameLoc[a] + h.locC[a];
        const own = new Float64Array(S);
        const rw = io.weightsOf(use) ?? new Float64Array(use.length).fill(1);
        const c = bank.robustCut(h);
        hostStats(_gatherRows(io.values, use, d), rw, use.length, loc, h.tril, d, c, floor, own);
        bank.stepNatural(h, own, 0, io.learned(j));
      } else {
        bank.stepNatural(h, stats, j * S, io.learned(j));
      }
    }
  }

  /** Throws `unknown_key` unless the bank holds every key that has rows. */
  #requireKnown(keys: readonly string[], keyIndex: Uint32Array): void {
    const seen = new Uint8Array(keys.length);
    for (let i = 0; i < keyIndex.length; i++) {
      const k = keyIndex[i];
      if (k >= keys.length || seen[k] === 1) continue;
      seen[k] = 1;
      if (!this.bank.has(keys[k])) {
        throw new EngineError("unknown_key", `expected a known model key, found '${keys[k]}'`);
      }
    }
  }

  /**
   * Heads of the active keys; a new key is drafted from its first batch (the one batch not scored
   * prequentially; warm-up keeps it from flagging anomalies). Rows to learn from seed it, else all
   * rows. created[j]: 1 = new, seeded from rows it learns from; 2 = new, from score-only rows.
   */
  #resolveHeads(
    batch: ObservationBatch,
    active: Int32Array,
    Ka: number,
    rowsOf: (k: number) => Int32Array,
    learnedOf: (rows: Int32Array) => Int32Array,
    weightsOf: (rows: Int32Array) => Float64Array | undefined,
  ): { heads: Head[]; created: Uint8Array } {
    const d = this.config.dim;
    const heads: Head[] = new Array(Ka);
    const created = new Uint8Array(Ka);
    for (let j = 0; j < Ka; j++) {
      const k = active[j];
      let h = this.bank.head(batch.keys[k]);
      if (h === undefined) {
        const rows = rowsOf(k);
        const use = learnedOf(rows);
        const seed = use.length > 0 ? use : rows;
        _checkFinite(batch.values, seed, d);
        h = this.bank.draft(
          batch.keys[k],
          _gatherRows(batch.values, seed, d),
          seed.length,
          use.length > 0 ? weightsOf(seed) : undefined,
        );
        created[j] = use.length > 0 ? 1 : 2;
      }
      heads[j] = h;
    }
    return { heads, created };
  }

  /**
   * The batch is accepted: new heads join the bank, counts advance, and each key learns —
   * in closed form while initialising, else one Adam step from the fused statistics.
   */
  #commit(
    heads: Head[],
    created: Uint8Array,
    Ka: number,
    obsAfter: Float64Array,
    stats: Float64Array,
    learnedRows: (j: number) => Int32Array,
    values: Float64Array,
  ): void {
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
        if (use.length > 0) bank.absorbInit(h, _gatherRows(values, use, d), use.length);
      } else {
        bank.step(h, stats, j * S);
      }
    }
  }

  /** Score arrays for n rows, all views of one (pooled when possible) buffer. */
  #outputs(n: number, d: number): ScoreBatch {
    const bytes = n * (33 + 8 * d);
    const pool = this.#pool;
    let best = -1;
    for (let p = 0; p < pool.length; p++) {
      const len = pool[p].byteLength;
      if (len >= bytes && (best < 0 || len < pool[best].byteLength)) best = p;
    }
    const buf = best >= 0 ? pool.splice(best, 1)[0] : new ArrayBuffer(bytes);
    return {
      n,
      dim: d,
      logProb: new Float64Array(buf, 0, n),
      mahalanobis2: new Float64Array(buf, 8 * n, n),
      pValue: new Float64Array(buf, 16 * n, n),
      seq: new Float64Array(buf, 24 * n, n),
      contrib: new Float64Array(buf, 32 * n, n * d),
      anomaly: new Uint8Array(buf, (32 + 8 * d) * n, n),
    };
  }

  /** float32 kernels (webgpu): rows centred on their key's frame origin in float64 first. */
  async #runKernel(
    batch: ObservationBatch,
    heads: Head[],
    active: Int32Array,
    Ka: number,
    rowWeight: Float32Array | null,
    out: ScoreBatch,
  ): Promise<Float64Array> {
    const d = this.config.dim;
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
    const res = await this.#kernel.run({
      n,
      d,
      K: Ka,
      x,
      keyIdx,
      rowWeight: rowWeight ?? new Float32Array(n).fill(1),
      loc: locK,
      tril,
      robustC: this.bank.robustC,
      robustFloor: this.config.robust_floor,
    });
    out.mahalanobis2.set(res.m2);
    out.contrib.set(res.contrib);
    return res.stats;
  }

  /** Scores from the kernel's m², with each key's count from before this batch. */
  #scoreRows(
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
    const sf = batch.pValues !== false ? this.#tail.sf : null;
    const { logProb, mahalanobis2, pValue, anomaly, seq } = out;
    const constTerm = this.config.dim * HALF_LOG_2PI;
    const natural = this.bank.natural;
    const d = this.config.dim;
    for (let j = 0; j < Ka; j++) {
      const h = heads[j];
      const k = active[j];
      const m2Alpha = natural ? this.bank.threshold(h) : this.#m2Alpha;
      const nEff = this.bank.nEff(h);
      let obs = h.observations;
      const flagFrom = h.preset ? 0 : this.config.warmup + 1;
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

/**
 * Rows per key (start offsets over keys, as for a counting sort), the keys that have rows (in key
 * order) with their local index, and the number of runs of consecutive rows of one key.
 */
function _groupRows(keyIndex: Uint32Array, n: number, K: number, sc: _Scratch) {
  const start = sc.int("start", K + 1);
  start.fill(0);
  let runs = n > 0 ? 1 : 0;
  for (let i = 0; i < n; i++) {
    const k = keyIndex[i];
    if (k >= K) throw new RangeError(`expected key indices below ${K}, found ${k} in row ${i}`);
    start[k + 1]++;
    if (i > 0 && k !== keyIndex[i - 1]) runs++;
  }
  for (let k = 0; k < K; k++) start[k + 1] += start[k];
  const active = sc.int("active", K);
  const local = sc.int("local", K);
  let Ka = 0;
  for (let k = 0; k < K; k++) {
    if (start[k] !== start[k + 1]) {
      local[k] = Ka;
      active[Ka++] = k;
    }
  }
  return { start, active, local, Ka, runs };
}

/** Row indices grouped by key, in order within a key (the counting sort's second half). */
function _orderRows(keyIndex: Uint32Array, start: Int32Array, K: number, sc: _Scratch): Int32Array {
  const n = keyIndex.length;
  const order = sc.int("order", n);
  const fill = sc.int("fill", K);
  fill.set(start.subarray(0, K));
  for (let i = 0; i < n; i++) order[fill[keyIndex[i]]++] = i;
  return order;
}

/** Per row: the local index of its key. */
function _localKeys(keyIndex: Uint32Array, local: Int32Array, out: Int32Array): Int32Array {
  for (let i = 0; i < out.length; i++) out[i] = local[keyIndex[i]];
  return out;
}

/** 1 = learn from the row (new and not frozen), 0 = score only. */
function _learnMask(
  learn: Uint8Array | undefined,
  counted: Uint8Array | undefined,
  n: number,
  out: Uint8Array,
): Uint8Array {
  for (let i = 0; i < n; i++) {
    const isNew = counted === undefined || counted[i] === 1;
    out[i] = isNew && (learn === undefined || learn[i] === 1) ? 1 : 0;
  }
  return out;
}

/**
 * Forgetting weights: a learned row weighs λ^(learned rows of its key after it in the batch),
 * a score-only row 0; learnedK[k] counts each key's learned rows. Rows are walked backwards with
 * one running power per key.
 */
function _forgettingWeights(
  keyIndex: Uint32Array,
  mask: Uint8Array | null,
  lambda: number,
  out: Float32Array,
  learnedK: Float64Array,
  powK: Float64Array,
): Float32Array {
  learnedK.fill(0);
  powK.fill(1);
  for (let i = out.length - 1; i >= 0; i--) {
    if (mask !== null && mask[i] === 0) {
      out[i] = 0;
      continue;
    }
    const k = keyIndex[i];
    out[i] = powK[k];
    powK[k] *= lambda;
    learnedK[k]++;
  }
  return out;
}

/** What the cpu pass needs of the batch's grouping and heads. */
interface _CpuPlan {
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
function _runCpuPass(pass: FusedPass, plan: _CpuPlan, sc: _Scratch, obsAfter: Float64Array): void {
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
      tril.set(heads[j].tril, j * 9);
      logNorm[j] = -heads[j].logDet - plan.logConst;
      flagFrom[j] = heads[j].preset ? 0 : plan.flagFrom;
    }
    const keyIdx = _localKeys(plan.keyIndex, plan.local, sc.int("keyIdx", n));
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

/** Buffers {@link LocalEngine.release} keeps for reuse. */
const _POOL_SIZE = 4;

/** Grow-only per-engine scratch arrays, reused batch after batch (contents are not cleared). */
class _Scratch {
  readonly #arrays = new Map<string, Int32Array | Uint8Array | Float32Array | Float64Array>();

  int(name: string, n: number): Int32Array {
    return this.#get(name, n, (m) => new Int32Array(m)) as Int32Array;
  }
  uint8(name: string, n: number): Uint8Array {
    return this.#get(name, n, (m) => new Uint8Array(m)) as Uint8Array;
  }
  float32(name: string, n: number): Float32Array {
    return this.#get(name, n, (m) => new Float32Array(m)) as Float32Array;
  }
  float64(name: string, n: number): Float64Array {
    return this.#get(name, n, (m) => new Float64Array(m)) as Float64Array;
  }

  #get(
    name: string,
    n: number,
    make: (m: number) => Int32Array | Uint8Array | Float32Array | Float64Array,
  ): Int32Array | Uint8Array | Float32Array | Float64Array {
    let a = this.#arrays.get(name);
    if (a === undefined || a.length < n) {
      a = make(Math.max(n, 2 * (a?.length ?? 0)));
      this.#arrays.set(name, a);
    }
    return a.subarray(0, n);
  }
}

function _anyAbove(m2: Float64Array, rows: Int32Array, c: number): boolean {
  for (let r = 0; r < rows.length; r++) if (m2[rows[r]] > c) return true;
  return false;
}

function _firstNonFinite(m2: Float64Array): number {
  for (let i = 0; i < m2.length; i++) if (!(m2[i] < Infinity)) return i;
  return -1;
}

/** from, from + 1, … into `out` (its whole length). */
function _rangeInto(out: Int32Array, from: number): Int32Array {
  for (let i = 0; i < out.length; i++) out[i] = from + i;
  return out;
}

function _gatherRows(values: Float64Array, rows: Int32Array, d: number): Float64Array {
  const out = new Float64Array(rows.length * d);
  for (let r = 0; r < rows.length; r++) {
    out.set(values.subarray(rows[r] * d, rows[r] * d + d), r * d);
  }
  return out;
}

function _nonFinite(values: Float64Array, i: number, d: number): never {
  const row = Array.from(values.subarray(i * d, i * d + d));
  throw new EngineError(
    "non_finite_input",
    `expected finite values, found [${row.join(", ")}] in row ${i}`,
  );
}

function _checkFinite(values: Float64Array, rows: Int32Array, d: number): void {
  for (const i of rows) {
    for (let a = 0; a < d; a++) {
      const v = values[i * d + a];
      if (!Number.isFinite(v)) {
        throw new EngineError("non_finite_input", `expected finite values, found ${v} in row ${i}`);
      }
    }
  }
}
