/**
 * The engine proper, running in the calling thread: groups a batch by key, runs the fused kernel
 * with the parameters from before the batch, turns its outputs into scores (log_prob, p-value,
 * anomaly) and its statistics into one Adam step per key. `compute_client.ts` runs it inside the
 * compute Web Worker.
 *
 * @module
 */
import type { HeadConfig } from "../schemas/head_config.ts";
import { chi2Isf } from "./chi2.ts";
import { Chi2Tail } from "./chi2_tail.ts";
import type { ScoringEngine } from "./engine.ts";
import { type FusedKernel, statsWidth } from "./fused_kernel.ts";
import { type Head, HeadBank } from "./head_bank.ts";
import { type FusedPass, fusedSegment } from "./mvn_fused.ts";
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
    const { learn, counted } = batch;
    // Rows grouped by key, in order (a counting sort over typed arrays: no per-row allocation).
    const start = sc.int("start", K + 1);
    start.fill(0);
    for (let i = 0; i < n; i++) {
      const k = keyIndex[i];
      if (k >= K) throw new RangeError(`expected key indices below ${K}, found ${k} in row ${i}`);
      start[k + 1]++;
    }
    for (let k = 0; k < K; k++) start[k + 1] += start[k];
    // One key: rows are already in key order (order stays null, row r is row r).
    let order: Int32Array | null = null;
    if (K > 1) {
      order = sc.int("order", n);
      const fill = sc.int("fill", K);
      fill.set(start.subarray(0, K));
      for (let i = 0; i < n; i++) order[fill[keyIndex[i]]++] = i;
    }
    // 1 = learn from the row; null = every row (the common case: no per-row array at all).
    let rowWeight: Float32Array | null = null;
    if (learn !== undefined || counted !== undefined) {
      rowWeight = sc.float32("rowWeight", n);
      for (let i = 0; i < n; i++) {
        const isNew = counted === undefined || counted[i] === 1;
        rowWeight[i] = isNew && (learn === undefined || learn[i] === 1) ? 1 : 0;
      }
    }
    // Keys with rows in this batch, in key order; the kernel sees only these (Ka ≤ n).
    const active = sc.int("active", K);
    let Ka = 0;
    for (let k = 0; k < K; k++) if (start[k] !== start[k + 1]) active[Ka++] = k;
    const bank = this.bank;
    const heads: Head[] = new Array(Ka);
    const created = new Uint8Array(Ka);
    const rowsOf = (k: number) =>
      order === null ? _range(start[k], start[k + 1]) : order.subarray(start[k], start[k + 1]);
    for (let j = 0; j < Ka; j++) {
      const k = active[j];
      let h = bank.head(keys[k]);
      if (h === undefined) {
        // A new key is initialised from its first batch (the one batch not scored prequentially;
        // warm-up keeps it from flagging anomalies). Rows to learn from seed it, else all rows.
        const rows = rowsOf(k);
        const use = rowWeight === null ? rows : rows.filter((i) => rowWeight[i] === 1);
        const seed = use.length > 0 ? use : rows;
        _checkFinite(values, seed, d);
        h = bank.draft(keys[k], _gatherRows(values, seed, d), seed.length);
        // 1: new, seeded from rows it learns from; 2: new, seeded from score-only rows.
        created[j] = use.length > 0 ? 1 : 2;
      }
      heads[j] = h;
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
      const locAbs = sc.float64("locAbs", Ka * d);
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
          sf: withP ? this.#tail.sf : null,
          m2Alpha: this.#m2Alpha,
        },
        bad: -1,
      };
      for (let j = 0; j < Ka; j++) {
        const h = heads[j], k = active[j];
        for (let a = 0; a < d; a++) locAbs[j * d + a] = h.frameLoc[a] + h.locC[a];
        obsAfter[j] = fusedSegment(pass, order, start[k], start[k + 1], {
          loc: locAbs,
          locAt: j * d,
          tril: h.tril,
          trilAt: 0,
          statsAt: j * S,
          logNorm: -h.logDet - constTerm,
          observations: h.observations,
          flagFrom: h.preset ? 0 : this.config.warmup + 1,
        });
      }
      bad = pass.bad;
    } else {
      stats = await this.#runKernel(batch, heads, active, Ka, rowWeight, out);
      for (let i = 0; i < n; i++) if (!(out.mahalanobis2[i] < Infinity)) bad = i;
      if (bad < 0) this.#scoreRows(batch, heads, active, Ka, start, order, out, obsAfter);
    }
    // Non-finite input (or parameters) show as a non-finite m²: refuse before any state changes.
    if (bad >= 0) {
      this.release(out);
      _nonFinite(values, bad, d);
    }
    for (let j = 0; j < Ka; j++) {
      if (created[j] !== 0) bank.adopt(heads[j]);
      heads[j].observations = obsAfter[j];
    }
    // Learning: closed-form while initialising, else one Adam step from the fused statistics.
    for (let j = 0; j < Ka; j++) {
      const h = heads[j];
      if (h.init !== null) {
        if (created[j] === 1) continue;
        const rows = rowsOf(active[j]);
        const use = rowWeight === null ? rows : rows.filter((i) => rowWeight[i] === 1);
        if (use.length > 0) bank.absorbInit(h, _gatherRows(values, use, d), use.length);
      } else {
        bank.step(h, stats, j * S);
      }
    }
    return out;
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
    const counted = batch.counted;
    const sf = batch.pValues !== false ? this.#tail.sf : null;
    const { logProb, mahalanobis2, pValue, anomaly, seq } = out;
    const constTerm = this.config.dim * HALF_LOG_2PI;
    const m2Alpha = this.#m2Alpha;
    for (let j = 0; j < Ka; j++) {
      const h = heads[j];
      const k = active[j];
      let obs = h.observations;
      const flagFrom = h.preset ? 0 : this.config.warmup + 1;
      const c = -h.logDet - constTerm;
      for (let r = start[k]; r < start[k + 1]; r++) {
        const i = order === null ? r : order[r];
        if (counted === undefined || counted[i] === 1) obs++;
        const m2 = mahalanobis2[i];
        logProb[i] = c - 0.5 * m2;
        pValue[i] = sf === null ? NaN : sf(m2);
        seq[i] = obs > 0 ? obs : 1;
        // p_value < alpha ⟺ m² > χ²_d quantile at 1 − alpha (the tail is monotone).
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

/** Buffers {@link LocalEngine.release} keeps for reuse. */
const _POOL_SIZE = 4;

/** Grow-only per-engine scratch arrays, reused batch after batch (contents are not cleared). */
class _Scratch {
  readonly #arrays = new Map<string, Int32Array | Float32Array | Float64Array>();

  int(name: string, n: number): Int32Array {
    return this.#get(name, n, (m) => new Int32Array(m)) as Int32Array;
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
    make: (m: number) => Int32Array | Float32Array | Float64Array,
  ): Int32Array | Float32Array | Float64Array {
    let a = this.#arrays.get(name);
    if (a === undefined || a.length < n) {
      a = make(Math.max(n, 2 * (a?.length ?? 0)));
      this.#arrays.set(name, a);
    }
    return a.subarray(0, n);
  }
}

function _range(from: number, to: number): Int32Array {
  const r = new Int32Array(to - from);
  for (let i = 0; i < r.length; i++) r[i] = from + i;
  return r;
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
  throw new RangeError(`expected finite values, found [${row.join(", ")}] in row ${i}`);
}

function _checkFinite(values: Float64Array, rows: Int32Array, d: number): void {
  for (const i of rows) {
    for (let a = 0; a < d; a++) {
      const v = values[i * d + a];
      if (!Number.isFinite(v)) {
        throw new RangeError(`expected finite values, found ${v} in row ${i}`);
      }
    }
  }
}
