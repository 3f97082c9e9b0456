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
import { type FloatArray, type FusedKernel, statsWidth } from "./fused_kernel.ts";
import { type Head, HeadBank } from "./head_bank.ts";
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
    return this.#process(batch);
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
    const learn = batch.learn;
    const counted = batch.counted;
    // Rows grouped by key, in order (a counting sort over typed arrays: no per-row allocation).
    const start = new Int32Array(K + 1);
    for (let i = 0; i < n; i++) {
      const k = keyIndex[i];
      if (k >= K) throw new RangeError(`expected key indices below ${K}, found ${k} in row ${i}`);
      start[k + 1]++;
    }
    for (let k = 0; k < K; k++) start[k + 1] += start[k];
    const order = new Int32Array(n);
    if (K === 1) {
      for (let i = 0; i < n; i++) order[i] = i;
    } else {
      const fill = start.slice(0, K);
      for (let i = 0; i < n; i++) order[fill[keyIndex[i]]++] = i;
    }
    const rowWeight = new Float32Array(n);
    if (learn === undefined && counted === undefined) rowWeight.fill(1);
    else {
      for (let i = 0; i < n; i++) {
        const isNew = counted === undefined || counted[i] === 1;
        rowWeight[i] = isNew && (learn === undefined || learn[i] === 1) ? 1 : 0;
      }
    }
    // Keys with rows in this batch, in key order; the kernel sees only these (Ka ≤ n).
    const local = new Int32Array(K).fill(-1);
    const activeList: number[] = [];
    for (let k = 0; k < K; k++) {
      if (start[k] !== start[k + 1]) {
        local[k] = activeList.length;
        activeList.push(k);
      }
    }
    const Ka = activeList.length;
    const bank = this.bank;
    const heads: Head[] = new Array(Ka);
    const created = new Uint8Array(Ka);
    for (let j = 0; j < Ka; j++) {
      const k = activeList[j];
      let h = bank.head(keys[k]);
      if (h === undefined) {
        // A new key is initialised from its first batch (the one batch not scored prequentially;
        // warm-up keeps it from flagging anomalies). Rows to learn from seed it, else all rows.
        const rows = order.subarray(start[k], start[k + 1]);
        const use = rows.filter((i) => rowWeight[i] === 1);
        const seed = use.length > 0 ? use : rows;
        _checkFinite(values, seed, d);
        h = bank.draft(keys[k], _gatherRows(values, seed, d), seed.length);
        // 1: new, seeded from rows it learns from; 2: new, seeded from score-only rows.
        created[j] = use.length > 0 ? 1 : 2;
      }
      heads[j] = h;
    }
    // Kernel inputs. float64 kernels take the rows as they are and absolute locs; float32 kernels
    // get rows centred on their key's frame origin in float64 first, so awkward units lose nothing.
    const f64 = this.#f64;
    const locK: FloatArray = f64 ? new Float64Array(Ka * d) : new Float32Array(Ka * d);
    const tril: FloatArray = f64 ? new Float64Array(Ka * d * d) : new Float32Array(Ka * d * d);
    for (let j = 0; j < Ka; j++) {
      const h = heads[j];
      for (let a = 0; a < d; a++) locK[j * d + a] = f64 ? h.frameLoc[a] + h.locC[a] : h.locC[a];
      // Element loop: TypedArray.prototype.set costs more than the copy at these sizes.
      const o = j * d * d;
      for (let e = 0; e < d * d; e++) tril[o + e] = h.tril[e];
    }
    let keyIdx: Int32Array;
    if (Ka === K) keyIdx = new Int32Array(keyIndex.buffer, keyIndex.byteOffset, keyIndex.length);
    else {
      keyIdx = new Int32Array(n);
      for (let i = 0; i < n; i++) keyIdx[i] = local[keyIndex[i]];
    }
    let x: FloatArray = values;
    if (!f64) {
      const xc = new Float32Array(n * d);
      for (let i = 0; i < n; i++) {
        const f = heads[keyIdx[i]].frameLoc;
        for (let a = 0; a < d; a++) xc[i * d + a] = values[i * d + a] - f[a];
      }
      x = xc;
    }
    const out = await this.#kernel.run({
      n,
      d,
      K: Ka,
      x,
      keyIdx,
      rowWeight,
      loc: locK,
      tril,
      robustC: bank.robustC,
      robustFloor: this.config.robust_floor,
    });
    // Scores, with each key's count from before this batch.
    const logProb = new Float64Array(n);
    const mahalanobis2 = out.m2 instanceof Float64Array ? out.m2 : Float64Array.from(out.m2);
    const pValue = new Float64Array(n);
    const anomaly = new Uint8Array(n);
    const seq = new Float64Array(n);
    const contrib = out.contrib instanceof Float64Array
      ? out.contrib
      : Float64Array.from(out.contrib);
    // Non-finite input (or parameters) show as a non-finite m²: refuse before any state changes.
    for (let i = 0; i < n; i++) if (!Number.isFinite(mahalanobis2[i])) _nonFinite(values, i, d);
    for (let j = 0; j < Ka; j++) if (created[j] !== 0) bank.adopt(heads[j]);
    const warmup = this.config.warmup;
    const m2Alpha = this.#m2Alpha;
    const sf = this.#tail.sf;
    const withP = batch.pValues !== false;
    if (!withP) pValue.fill(NaN);
    const constTerm = d * HALF_LOG_2PI;
    for (let j = 0; j < Ka; j++) {
      const h = heads[j];
      const k = activeList[j];
      let obs = h.observations;
      const flagFrom = h.preset ? 0 : warmup + 1;
      const c = -h.logDet - constTerm;
      for (let r = start[k]; r < start[k + 1]; r++) {
        const i = order[r];
        if (counted === undefined || counted[i] === 1) obs++;
        const m2 = mahalanobis2[i];
        logProb[i] = -0.5 * m2 + c;
        if (withP) pValue[i] = sf(m2);
        seq[i] = obs > 0 ? obs : 1;
        // p_value < alpha ⟺ m² > χ²_d quantile at 1 − alpha (the tail is monotone).
        anomaly[i] = m2 > m2Alpha && obs >= flagFrom ? 1 : 0;
      }
      h.observations = obs;
    }
    // Learning: closed-form while initialising, else one Adam step from the fused statistics.
    const S = statsWidth(d);
    for (let j = 0; j < Ka; j++) {
      const h = heads[j];
      if (h.init !== null) {
        if (created[j] === 1) continue;
        const k = activeList[j];
        const use = order.subarray(start[k], start[k + 1]).filter((i) => rowWeight[i] === 1);
        if (use.length > 0) bank.absorbInit(h, _gatherRows(values, use, d), use.length);
      } else {
        bank.step(h, out.stats, j * S);
      }
    }
    return { n, dim: d, logProb, mahalanobis2, pValue, anomaly, contrib, seq };
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
