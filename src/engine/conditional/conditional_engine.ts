/**
 * The conditional head (`head: "conditional"`): per model key, a small MLP maps the observation's
 * context (carried `features`, then sin/cos time features) to the MVN's `loc` and `scale_tril`,
 * trained online by tfjs autodiff with Adam on the robust-weighted mean negative log-likelihood.
 *
 * Per key, prequential like the unconditional head:
 * 1. Initialisation: the first `init_rows` learned rows give the key's whitening frame (their mean
 *    and Cholesky factor of their shrunk covariance); meanwhile rows are scored against those
 *    running moments (a new key's first batch against its own moments, as today).
 * 2. Afterwards each batch is scored with the weights from before it (one forward pass), then the
 *    key's learned rows are cut into `minibatch` chunks, one Adam step each, rows weighted by the
 *    robust weight of their pre-step m² (χ²_d cut at 1 − robust_p, floor robust_floor). A step
 *    whose loss, gradient or new weights are not finite is rejected (the state is kept).
 * 3. Features are standardised with the key's running mean and variance (Welford) from before
 *    the batch (frozen for the batch's steps), then updated with its learned rows.
 *
 * The network works in the whitened frame x′ = L₀⁻¹(x − μ₀): its output bias starts at loc′ = 0,
 * scale_tril′ = I (the unconditional MLE of the first rows) with small output weights. In data
 * units loc = μ₀ + L₀·loc′ and scale_tril = L₀·scale_tril′. p-values are χ²_d tails of m².
 *
 * @module
 */
import { contextDim, type HeadConfig } from "../../config/head_config.ts";
import type { BackendChoice } from "../backend.ts";
import { chi2Isf } from "../../model/chi2.ts";
import { Chi2Tail } from "../../model/chi2_tail.ts";
import {
  cholesky,
  covarianceOf,
  lowerMatMul,
  lowerMatVec,
  packLower,
  toRows,
  unpackLower,
} from "../../model/linalg.ts";
import { robustWeight } from "../../model/natural_step.ts";
import { mulberry32 } from "../../model/prng.ts";
import { timeFeaturesInto } from "../../model/time_features.ts";
import type { ScoringEngine } from "../engine.ts";
import { EngineError } from "../errors.ts";
import { trilFromTheta } from "../head_bank.ts";
import type {
  BackendName,
  ConditionalArchitecture,
  HeadParams,
  HeadSnapshot,
  HeadState,
  ObservationBatch,
  ScoreBatch,
} from "../types.ts";
import {
  forwardTf,
  initTheta,
  lossTf,
  type NetLayout,
  netLayout,
  nllOutputGradients,
  outputsFor,
  paramTensors,
  type Tf,
  weightGradsTf,
} from "./network.ts";

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);
/** Relative and absolute floors of a frame's standard deviations (constant columns). */
const REL_SD_FLOOR = 1e-6;
const ABS_SD_FLOOR = 1e-9;

/** One key's state. */
interface CondKey {
  readonly key: string;
  observations: number;
  steps: number;
  rejected: number;
  preset: boolean;
  /** Running moments of the first learned rows (data units), until the frame is fixed. */
  init: { count: number; mean: Float64Array; scatter: Float64Array } | null;
  readonly frameLoc: Float64Array;
  /** d×d row-major lower factor. */
  readonly frameTril: Float64Array;
  frameLogDet: number;
  theta: Float64Array;
  /** Moving average of θ (what scores and snapshots use); θ itself when averaging is off. */
  avg: Float64Array;
  adamM: Float64Array;
  adamV: Float64Array;
  /** Feature standardiser (Welford). */
  readonly std: { count: number; mean: Float64Array; m2: Float64Array };
  /** Latest raw context seen. */
  context: Float64Array | null;
  /** Recent learned rows (ring buffer; raw values, raw context, robust weight), replayed in steps. */
  readonly memory: _Memory;
}

interface _Memory {
  readonly values: Float64Array;
  readonly ctx: Float64Array;
  readonly w: Float64Array;
  size: number;
  next: number;
}

/** Options of {@link ConditionalEngine}. */
export interface ConditionalEngineOptions {
  readonly tf: Tf;
  readonly backend: BackendName;
  readonly backendReason: string;
  readonly log?: (line: string) => void;
}

/** Creates a conditional engine in the current thread on the chosen tfjs backend. */
export async function createConditionalEngine(
  config: HeadConfig,
  log: (line: string) => void,
  choice: BackendChoice,
): Promise<ConditionalEngine> {
  const tf = await import("@tensorflow/tfjs");
  if (choice.backend === "webgpu") {
    await import("@tensorflow/tfjs-backend-webgpu");
    if (!(await tf.setBackend("webgpu"))) {
      throw new Error(`expected tfjs to initialise the webgpu backend, found it failed`);
    }
  } else if (!(await tf.setBackend("cpu"))) {
    throw new Error("expected tfjs to initialise the cpu backend, found it failed");
  }
  await tf.ready();
  // PROD: no "running TensorFlow.js in Node.js" banner (backend_util.warn) on the first tensor.
  tf.env().set("PROD", true);
  return new ConditionalEngine(config, {
    tf,
    backend: choice.backend,
    backendReason: `${choice.reason}; conditional head (tfjs ${choice.backend})`,
    log,
  });
}

/** The conditional head as a {@link ScoringEngine}. */
export class ConditionalEngine implements ScoringEngine {
  readonly config: HeadConfig;
  readonly backend: BackendName;
  readonly backendReason: string;
  readonly layout: NetLayout;
  readonly architecture: ConditionalArchitecture;
  readonly #tf: Tf;
  readonly #log: (line: string) => void;
  readonly #heads = new Map<string, CondKey>();
  readonly #tail: Chi2Tail;
  readonly #m2Alpha: number;
  readonly #robustC: number;
  /** Context width F (carried features, then 2 per time period). */
  readonly #F: number;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(config: HeadConfig, options: ConditionalEngineOptions) {
    this.config = config;
    this.#tf = options.tf;
    this.backend = options.backend;
    this.backendReason = options.backendReason;
    this.#log = options.log ?? ((l) => console.error(l));
    const d = config.dim;
    this.#F = contextDim(config);
    this.layout = netLayout(this.#F, config.hidden, outputsFor(d));
    this.architecture = {
      inputs: this.#F,
      hidden: [...config.hidden],
      activation: config.activation,
      outputs: outputsFor(d),
      diag: config.diag,
      time_features: [...config.time_features],
    };
    this.#tail = new Chi2Tail(d);
    this.#m2Alpha = chi2Isf(config.alpha, d);
    this.#robustC = chi2Isf(config.robust_p, d);
  }

  process(batch: ObservationBatch): Promise<ScoreBatch> {
    const result = this.#chain.then(() => this.#process(batch));
    this.#chain = result.then(() => {}, () => {});
    return result;
  }

  release(_scores: ScoreBatch): void {}

  /** The context rows of a batch (carried features, then time features), validated. */
  contextOf(batch: ObservationBatch): Float64Array {
    const { n } = batch;
    const F = this.#F;
    const Fc = this.config.features;
    const ctx = new Float64Array(n * F);
    if (Fc > 0) {
      const f = batch.features;
      if (f === undefined || batch.featureDim !== Fc || f.length !== n * Fc) {
        throw new EngineError(
          "bad_features",
          `expected ${Fc} features per row (${n * Fc} in all), found ${
            f === undefined ? "none" : `${f.length} with featureDim ${batch.featureDim}`
          }`,
        );
      }
      for (let i = 0; i < n; i++) {
        for (let a = 0; a < Fc; a++) {
          const v = f[i * Fc + a];
          if (!Number.isFinite(v)) {
            throw new EngineError(
              "non_finite_input",
              `expected finite features, found ${v} in row ${i}`,
            );
          }
          ctx[i * F + a] = v;
        }
      }
    }
    const periods = this.config.time_features;
    if (periods.length > 0) {
      const t = batch.timeMs;
      if (t === undefined || t.length !== n) {
        throw new EngineError(
          "bad_features",
          `expected a time per row for time features (${periods.join(",")}), found ${
            t === undefined ? "none" : `${t.length} for ${n} rows`
          }`,
        );
      }
      for (let i = 0; i < n; i++) {
        if (!Number.isFinite(t[i])) {
          throw new EngineError(
            "bad_features",
            `expected a time per row for time features, found ${t[i]} in row ${i}`,
          );
        }
        timeFeaturesInto(t[i], periods, ctx, i * F + Fc);
      }
    }
    return ctx;
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
    for (let i = 0; i < n * d; i++) {
      if (!Number.isFinite(values[i])) {
        const r = Math.floor(i / d);
        throw new EngineError(
          "non_finite_input",
          `expected finite values, found [${
            Array.from(values.subarray(r * d, r * d + d)).join(", ")
          }] in row ${r}`,
        );
      }
    }
    const ctx = this.contextOf(batch);
    const scoreOnly = batch.scoreOnly === true;
    // Rows per key, in row order.
    const rowsByKey: number[][] = keys.map(() => []);
    for (let i = 0; i < n; i++) {
      const k = keyIndex[i];
      if (k >= keys.length) {
        throw new RangeError(`expected key indices below ${keys.length}, found ${k} in row ${i}`);
      }
      rowsByKey[k].push(i);
    }
    if (scoreOnly) {
      for (let k = 0; k < keys.length; k++) {
        if (rowsByKey[k].length > 0 && !this.#heads.has(keys[k])) {
          throw new EngineError("unknown_key", `expected a known model key, found '${keys[k]}'`);
        }
      }
    }
    const counted = (i: number) =>
      !scoreOnly && (batch.counted === undefined || batch.counted[i] === 1);
    const learns = (i: number) => counted(i) && (batch.learn === undefined || batch.learn[i] === 1);
    const out = _outputs(n, d);
    const withP = batch.pValues !== false;
    // Phase 1: score every key with its parameters from before the batch (no state changes).
    const plans: { h: CondKey; created: boolean; rows: number[]; stdCtx: Float32Array | null }[] =
      [];
    for (let k = 0; k < keys.length; k++) {
      const rows = rowsByKey[k];
      if (rows.length === 0) continue;
      let h = this.#heads.get(keys[k]);
      const created = h === undefined;
      h ??= this.#newKey(keys[k]);
      let stdCtx: Float32Array | null = null;
      if (h.init !== null) {
        this.#scoreInit(h, rows, values, out, learns);
      } else {
        stdCtx = this.#standardised(h, ctx, rows);
        await this.#scoreNet(h, rows, values, stdCtx, out);
      }
      plans.push({ h, created, rows, stdCtx });
    }
    for (let i = 0; i < n; i++) {
      if (!(out.mahalanobis2[i] < Infinity)) {
        throw new EngineError(
          "non_finite_input",
          `expected finite scores, found m² ${out.mahalanobis2[i]} in row ${i}`,
        );
      }
    }
    // Counts, p-values, anomalies.
    for (const { h, rows } of plans) {
      let obs = h.observations;
      const flagFrom = h.preset ? 0 : this.config.warmup + 1;
      for (const i of rows) {
        if (counted(i)) obs++;
        const m2 = out.mahalanobis2[i];
        out.pValue[i] = withP ? this.#tail.sf(m2) : NaN;
        out.seq[i] = obs > 0 ? obs : 1;
        out.anomaly[i] = m2 > this.#m2Alpha && obs >= flagFrom ? 1 : 0;
      }
    }
    if (scoreOnly) return out;
    // Phase 2: learn.
    for (const { h, created, rows, stdCtx } of plans) {
      if (created) this.#heads.set(h.key, h);
      for (const i of rows) if (counted(i)) h.observations++;
      const use = rows.filter(learns);
      if (use.length === 0) continue;
      if (h.init !== null) {
        for (const i of use) _absorb(h.init, values, i, d);
        if (h.init.count >= this.config.init_rows) this.#fixFrame(h);
      } else {
        const local = new Map<number, number>();
        rows.forEach((i, r) => local.set(i, r));
        await this.#train(h, use, local, values, ctx, stdCtx!, out.mahalanobis2);
      }
      // Standardiser and latest context (after the steps: frozen during them).
      const F = this.#F;
      for (const i of use) _welford(h.std, ctx, i * F, F);
      h.context = ctx.slice(use[use.length - 1] * F, use[use.length - 1] * F + F);
    }
    return out;
  }

  #newKey(key: string): CondKey {
    const d = this.config.dim;
    const F = this.#F;
    const frameTril = new Float64Array(d * d);
    for (let a = 0; a < d; a++) frameTril[a * d + a] = 1;
    return {
      key,
      observations: 0,
      steps: 0,
      rejected: 0,
      preset: false,
      init: { count: 0, mean: new Float64Array(d), scatter: new Float64Array(d * d) },
      frameLoc: new Float64Array(d),
      frameTril,
      frameLogDet: 0,
      theta: initTheta(this.layout, d, this.config.diag),
      avg: initTheta(this.layout, d, this.config.diag),
      adamM: new Float64Array(this.layout.size),
      adamV: new Float64Array(this.layout.size),
      std: { count: 0, mean: new Float64Array(F), m2: new Float64Array(F) },
      context: null,
      memory: {
        values: new Float64Array(this.config.memory * d),
        ctx: new Float64Array(this.config.memory * F),
        w: new Float64Array(this.config.memory),
        size: 0,
        next: 0,
      },
    };
  }

  /** Initialising key: rows scored against its running moments (a new key: this batch's own). */
  #scoreInit(
    h: CondKey,
    rows: number[],
    values: Float64Array,
    out: ScoreBatch,
    learns: (i: number) => boolean,
  ): void {
    const d = this.config.dim;
    let init = h.init!;
    if (init.count < 2) {
      // Not enough to score against: draft from this batch (not prequential; warm-up covers it).
      const draft = { count: init.count, mean: init.mean.slice(), scatter: init.scatter.slice() };
      const use = rows.filter(learns);
      for (const i of use.length > 0 ? use : rows) _absorb(draft, values, i, d);
      init = draft;
    }
    const loc = init.mean;
    const L = _shrunkCholesky(init, d);
    let logDet = 0;
    for (let a = 0; a < d; a++) logDet += Math.log(L[a * d + a]);
    const c = -logDet - d * HALF_LOG_2PI;
    const z = new Float64Array(d);
    for (const i of rows) {
      const m2 = _solveRow(values, i * d, loc, 0, L, d, z);
      out.mahalanobis2[i] = m2;
      out.logProb[i] = c - 0.5 * m2;
      for (let a = 0; a < d; a++) out.contrib[i * d + a] = z[a] * z[a];
    }
  }

  /** Standardised context rows of `rows` (float32, row-major) with the key's current standardiser. */
  #standardised(h: CondKey, ctx: Float64Array, rows: number[]): Float32Array {
    const F = this.#F;
    const { mean, sd } = _standardiser(h.std, F);
    const x = new Float32Array(rows.length * F);
    for (let r = 0; r < rows.length; r++) {
      for (let a = 0; a < F; a++) x[r * F + a] = (ctx[rows[r] * F + a] - mean[a]) / sd[a];
    }
    return x;
  }

  /** Raw network outputs [rows, P] for standardised contexts. */
  async #forward(h: CondKey, stdCtx: Float32Array, m: number): Promise<Float32Array> {
    const tf = this.#tf;
    await this.#onBackend();
    const F = this.#F;
    const t = tf.tidy(() => {
      const params = paramTensors(tf, this.layout, h.avg);
      return forwardTf(tf, params, tf.tensor2d(stdCtx, [m, F]), this.config.activation);
    });
    try {
      return await t.data() as Float32Array;
    } finally {
      t.dispose();
    }
  }

  /** Scores a key's rows with its network (parameters from before the batch). */
  async #scoreNet(
    h: CondKey,
    rows: number[],
    values: Float64Array,
    stdCtx: Float32Array,
    out: ScoreBatch,
  ): Promise<void> {
    const d = this.config.dim;
    const P = this.layout.outputs;
    const raw = await this.#forward(h, stdCtx, rows.length);
    const xw = new Float64Array(d);
    const z = new Float64Array(d);
    const lp = new Float64Array(d * d);
    const c0 = -h.frameLogDet - d * HALF_LOG_2PI;
    for (let r = 0; r < rows.length; r++) {
      const i = rows[r];
      _whiten(values, i * d, h, d, xw);
      const o = raw.subarray(r * P, r * P + P);
      trilFromTheta(o, d, this.config.diag, lp);
      let logDet = 0;
      for (let a = 0; a < d; a++) logDet += Math.log(lp[a * d + a]);
      const m2 = _solveRow(xw, 0, o, 0, lp, d, z);
      out.mahalanobis2[i] = m2;
      out.logProb[i] = c0 - logDet - 0.5 * m2;
      for (let a = 0; a < d; a++) out.contrib[i * d + a] = z[a] * z[a];
    }
  }

  /** Adam steps on the key's learned rows, `minibatch` rows per step. */
  async #train(
    h: CondKey,
    use: number[],
    local: Map<number, number>,
    values: Float64Array,
    ctx: Float64Array,
    stdCtx: Float32Array,
    m2: Float64Array,
  ): Promise<void> {
    const d = this.config.dim;
    const F = this.#F;
    const mb = this.config.minibatch;
    const mem = h.memory;
    const { mean, sd } = _standardiser(h.std, F);
    // Replayed rows: drawn from the key's memory with a generator seeded by its step count, so a
    // resumed key draws the same rows.
    const rand = mulberry32((h.steps * 2654435761) ^ _hash(h.key));
    // Even chunks of at most `minibatch` rows.
    const chunks = Math.ceil(use.length / mb);
    const xw = new Float64Array(d);
    for (let c = 0; c < chunks; c++) {
      const from = Math.floor((c * use.length) / chunks);
      const to = Math.floor(((c + 1) * use.length) / chunks);
      const cur = to - from;
      const old = Math.min(cur, mem.size);
      const m = cur + old;
      const X = new Float32Array(m * F);
      const XW = new Float32Array(m * d);
      const W = new Float32Array(m);
      let sumW = 0;
      for (let r = 0; r < cur; r++) {
        const i = use[from + r];
        X.set(stdCtx.subarray(local.get(i)! * F, local.get(i)! * F + F), r * F);
        _whiten(values, i * d, h, d, xw);
        for (let a = 0; a < d; a++) XW[r * d + a] = xw[a];
        W[r] = robustWeight(m2[i], this.#robustC, this.config.robust_floor);
        sumW += W[r];
      }
      for (let r = cur; r < m; r++) {
        const j = Math.min(mem.size - 1, Math.floor(rand() * mem.size));
        for (let a = 0; a < F; a++) X[r * F + a] = (mem.ctx[j * F + a] - mean[a]) / sd[a];
        _whiten(mem.values, j * d, h, d, xw);
        for (let a = 0; a < d; a++) XW[r * d + a] = xw[a];
        W[r] = mem.w[j];
        sumW += W[r];
      }
      if (!(sumW > 0)) continue;
      await this.step(h, X, XW, W, sumW, m);
    }
    // The batch's rows join the memory (ring buffer) with their robust weights.
    const M = this.config.memory;
    if (M === 0) return;
    for (const i of use) {
      const j = mem.next;
      mem.values.set(values.subarray(i * d, i * d + d), j * d);
      mem.ctx.set(ctx.subarray(i * F, i * F + F), j * F);
      mem.w[j] = robustWeight(m2[i], this.#robustC, this.config.robust_floor);
      mem.next = (j + 1) % M;
      mem.size = Math.min(M, mem.size + 1);
    }
  }

  /**
   * One Adam step of a key on m rows: X standardised contexts [m, F], XW whitened rows [m, d],
   * W robust weights. Returns false (and counts a rejected update) when not finite.
   */
  async step(
    h: CondKey,
    X: Float32Array,
    XW: Float32Array,
    W: Float32Array,
    sumW: number,
    m: number,
  ): Promise<boolean> {
    const { loss, grad } = await this.gradient(h.theta, X, XW, W, sumW, m);
    const cfg = this.config;
    let ok = Number.isFinite(loss);
    for (let p = 0; ok && p < grad.length; p++) ok = Number.isFinite(grad[p]);
    if (!ok) {
      h.rejected++;
      this.#log(`conditional: key '${h.key}': rejected a non-finite step (loss ${loss})`);
      return false;
    }
    const t = h.steps + 1;
    const b1 = cfg.beta1, b2 = cfg.beta2;
    const c1 = 1 - Math.pow(b1, t), c2 = 1 - Math.pow(b2, t);
    const size = h.theta.length;
    const theta = new Float64Array(size);
    const mm = new Float64Array(size);
    const vv = new Float64Array(size);
    for (let p = 0; p < size; p++) {
      const g = grad[p];
      mm[p] = b1 * h.adamM[p] + (1 - b1) * g;
      vv[p] = b2 * h.adamV[p] + (1 - b2) * g * g;
      theta[p] = h.theta[p] - (cfg.lr * (mm[p] / c1)) / (Math.sqrt(vv[p] / c2) + cfg.epsilon);
      if (!Number.isFinite(theta[p])) ok = false;
    }
    if (!ok) {
      h.rejected++;
      return false;
    }
    h.theta = theta;
    h.adamM = mm;
    h.adamV = vv;
    h.steps = t;
    // Polyak average with a warm start: 1/t at first, then 1/average.
    const A = cfg.average;
    if (A === 0) h.avg = theta;
    else {
      const r = Math.max(1 / t, 1 / A);
      const avg = h.avg;
      for (let p = 0; p < size; p++) avg[p] += r * (theta[p] - avg[p]);
      h.avg = avg;
    }
    return true;
  }

  /**
   * The weighted mean NLL of m rows and its gradient w.r.t. θ as the engine computes it: the
   * network's outputs (tfjs forward), the NLL's gradient w.r.t. them in closed form on the host
   * (float64), then tfjs autodiff back through the network with that as `dy`. Same value as
   * {@link lossAndGradient} (tested), with a tenth of its ops: the NLL graph's forward
   * substitution costs O(d²) tiny ops forward and backward.
   */
  async gradient(
    theta: Float64Array,
    X: Float32Array,
    XW: Float32Array,
    W: Float32Array,
    sumW: number,
    m: number,
  ): Promise<{ loss: number; grad: Float64Array }> {
    const tf = this.#tf;
    const d = this.config.dim;
    const F = this.#F;
    const P = this.layout.outputs;
    const cfg = this.config;
    await this.#onBackend();
    const params = paramTensors(tf, this.layout, theta);
    const x = tf.tensor2d(X, [m, F]);
    try {
      const outT = tf.tidy(() => forwardTf(tf, params, x, cfg.activation));
      const out = await outT.data();
      outT.dispose();
      const dyArr = new Float32Array(m * P);
      const loss = nllOutputGradients(out, XW, W, sumW, m, d, cfg.diag, dyArr);
      // One flat tensor in θ's order: one read-back.
      const flat = tf.tidy(() =>
        tf.concat(
          weightGradsTf(tf, params, x, tf.tensor2d(dyArr, [m, P]), cfg.activation)
            .map((g) => tf.reshape(g, [-1])),
        )
      );
      try {
        const grad = Float64Array.from(await flat.data());
        return { loss: loss + d * HALF_LOG_2PI, grad };
      } finally {
        flat.dispose();
      }
    } finally {
      tf.dispose(params);
      x.dispose();
    }
  }

  /** The weighted mean NLL of m rows and its gradient w.r.t. θ, all by tfjs autodiff (reference). */
  async lossAndGradient(
    theta: Float64Array,
    X: Float32Array,
    XW: Float32Array,
    W: Float32Array,
    sumW: number,
    m: number,
  ): Promise<{ loss: number; grad: Float64Array }> {
    const tf = this.#tf;
    const d = this.config.dim;
    const F = this.#F;
    const cfg = this.config;
    await this.#onBackend();
    const res = tf.tidy(() => {
      const params = paramTensors(tf, this.layout, theta);
      const x = tf.tensor2d(X, [m, F]);
      const xw = tf.tensor2d(XW, [m, d]);
      const w = tf.tensor1d(W);
      const f = (...ps: tfTensor[]) => lossTf(tf, ps, x, xw, w, sumW, d, cfg.diag, cfg.activation);
      const { value, grads } = tf.valueAndGrads(f)(params);
      return [value, ...grads];
    });
    try {
      const arrays = await Promise.all(res.map((t) => t.data()));
      const grad = new Float64Array(this.layout.size);
      let off = 0;
      for (let p = 1; p < arrays.length; p++) {
        grad.set(arrays[p], off);
        off += arrays[p].length;
      }
      // The constant d/2·log 2π is left out of the graph; the loss reported includes it.
      return { loss: arrays[0][0] + d * HALF_LOG_2PI, grad };
    } finally {
      tf.dispose(res);
    }
  }

  /**
   * tfjs has one global backend: another engine in this process (a conditional one on the other
   * backend, the webgpu fused kernel) may have switched it. Every call creates and disposes its
   * own tensors, so switching back between calls is safe.
   */
  async #onBackend(): Promise<void> {
    if (this.#tf.getBackend() !== this.backend) await this.#tf.setBackend(this.backend);
  }

  /** Fixes a key's whitening frame from its initial moments; the network starts there. */
  #fixFrame(h: CondKey): void {
    const d = this.config.dim;
    const L = _shrunkCholesky(h.init!, d);
    h.frameLoc.set(h.init!.mean);
    h.frameTril.set(L);
    h.frameLogDet = _logDiag(L, d);
    h.init = null;
  }

  /** The MVN (data units) of a key at a raw context. */
  async #paramsAt(
    h: CondKey,
    context: Float64Array | null,
  ): Promise<{ loc: Float64Array; L: Float64Array }> {
    const d = this.config.dim;
    if (h.init !== null) {
      return { loc: h.init.mean.slice(), L: _shrunkCholesky(h.init, d) };
    }
    const F = this.#F;
    const { mean, sd } = _standardiser(h.std, F);
    const x = new Float32Array(F);
    for (let a = 0; a < F; a++) x[a] = context === null ? 0 : (context[a] - mean[a]) / sd[a];
    const raw = await this.#forward(h, x, 1);
    const lp = new Float64Array(d * d);
    trilFromTheta(raw, d, this.config.diag, lp);
    const L = new Float64Array(d * d);
    lowerMatMul(h.frameTril, lp, d, L);
    const loc = new Float64Array(d);
    lowerMatVec(h.frameTril, raw.subarray(0, d), d, loc);
    for (let a = 0; a < d; a++) loc[a] += h.frameLoc[a];
    return { loc, L };
  }

  /**
   * The MVN of a key at a given raw context (carried features then time features, as the batch
   * would build it); undefined for an unknown key.
   */
  async paramsAt(key: string, context: ArrayLike<number>): Promise<HeadParams | undefined> {
    const h = this.#heads.get(key);
    if (h === undefined) return undefined;
    const { loc, L } = await this.#paramsAt(h, Float64Array.from(context));
    return { loc: Array.from(loc), scale_tril: toRows(L, this.config.dim) };
  }

  async snapshot(keys?: readonly string[]): Promise<HeadSnapshot[]> {
    const d = this.config.dim;
    const out: HeadSnapshot[] = [];
    for (const k of this.#select(keys)) {
      const h = this.#heads.get(k)!;
      const { loc, L } = await this.#paramsAt(h, h.context);
      out.push({
        key: k,
        dim: d,
        loc: Array.from(loc),
        scale_tril: toRows(L, d),
        covariance: covarianceOf(L, d),
        observations: h.observations,
        steps: h.steps,
        rejected_updates: h.rejected,
        head: "conditional",
        architecture: this.architecture,
        context: h.context === null ? [] : Array.from(h.context),
        version: h.steps,
      });
    }
    return out;
  }

  exportState(keys?: readonly string[]): Promise<HeadState[]> {
    const d = this.config.dim;
    const F = this.#F;
    return Promise.resolve(
      this.#select(keys).map((k) => {
        const h = this.#heads.get(k)!;
        return {
          key: k,
          dim: d,
          diag: this.config.diag,
          frame_loc: Array.from(h.frameLoc),
          frame_tril: packLower(h.frameTril, d),
          theta: Array.from(h.theta),
          adam_m: Array.from(h.adamM),
          adam_v: Array.from(h.adamV),
          steps: h.steps,
          observations: h.observations,
          rejected_updates: h.rejected,
          preset: h.preset,
          init: h.init === null ? null : {
            count: h.init.count,
            mean: Array.from(h.init.mean),
            scatter: packLower(h.init.scatter, d),
          },
          head: "conditional" as const,
          conditional: {
            architecture: this.architecture,
            standardiser: {
              count: h.std.count,
              mean: Array.from(h.std.mean),
              m2: Array.from(h.std.m2),
            },
            context: h.context === null ? null : Array.from(h.context),
            average: Array.from(h.avg),
            memory: {
              size: h.memory.size,
              next: h.memory.next,
              values: Array.from(h.memory.values.subarray(0, h.memory.size * d)),
              context: Array.from(h.memory.ctx.subarray(0, h.memory.size * F)),
              weights: Array.from(h.memory.w.subarray(0, h.memory.size)),
            },
          },
        };
      }),
    );
  }

  importState(states: readonly HeadState[]): Promise<void> {
    const d = this.config.dim;
    const F = this.#F;
    for (const s of states) {
      const c = s.conditional;
      if (s.head !== "conditional" || c === undefined) {
        throw new RangeError(
          `key '${s.key}': expected a conditional head's state, found an unconditional one`,
        );
      }
      const a = c.architecture;
      const want = this.architecture;
      if (
        s.dim !== d || a.inputs !== want.inputs || a.activation !== want.activation ||
        a.hidden.join(",") !== want.hidden.join(",") || s.diag !== this.config.diag ||
        s.theta.length !== this.layout.size
      ) {
        throw new RangeError(
          `key '${s.key}': expected a network ${JSON.stringify(want)} of dim ${d}, found ${
            JSON.stringify(a)
          } of dim ${s.dim}`,
        );
      }
      const h = this.#newKey(s.key);
      h.observations = s.observations;
      h.steps = s.steps;
      h.rejected = s.rejected_updates;
      h.preset = s.preset === true;
      h.frameLoc.set(s.frame_loc);
      unpackLower(s.frame_tril, d, h.frameTril);
      h.frameLogDet = _logDiag(h.frameTril, d);
      h.theta = Float64Array.from(s.theta);
      h.avg = c.average !== undefined && c.average.length === s.theta.length
        ? Float64Array.from(c.average)
        : h.theta.slice();
      h.adamM = Float64Array.from(s.adam_m);
      h.adamV = Float64Array.from(s.adam_v);
      if (s.init === null) h.init = null;
      else {
        const scatter = new Float64Array(d * d);
        unpackLower(s.init.scatter, d, scatter);
        for (let i = 0; i < d; i++) {
          for (let j = 0; j < i; j++) scatter[j * d + i] = scatter[i * d + j];
        }
        h.init = { count: s.init.count, mean: Float64Array.from(s.init.mean), scatter };
      }
      h.std.count = c.standardiser.count;
      h.std.mean.set(c.standardiser.mean.slice(0, F));
      h.std.m2.set(c.standardiser.m2.slice(0, F));
      h.context = c.context === null ? null : Float64Array.from(c.context);
      const mem = c.memory;
      if (mem !== undefined && mem.size <= this.config.memory) {
        h.memory.size = mem.size;
        h.memory.next = mem.next % Math.max(1, this.config.memory);
        h.memory.values.set(mem.values.slice(0, mem.size * d));
        h.memory.ctx.set(mem.context.slice(0, mem.size * F));
        h.memory.w.set(mem.weights.slice(0, mem.size));
      }
      this.#heads.set(s.key, h);
    }
    return Promise.resolve();
  }

  /**
   * Starts a key from given parameters: they become its frame and the network starts at them
   * (loc′ = 0, scale_tril′ = I at every context); anomalies are flagged without warm-up.
   */
  setParams(key: string, params: HeadParams): Promise<void> {
    const d = this.config.dim;
    const h = this.#newKey(key);
    h.init = null;
    h.preset = true;
    h.frameLoc.set(params.loc);
    for (let a = 0; a < d; a++) {
      for (let b = 0; b <= a; b++) h.frameTril[a * d + b] = params.scale_tril[a][b];
      for (let b = a + 1; b < d; b++) h.frameTril[a * d + b] = 0;
    }
    h.frameLogDet = _logDiag(h.frameTril, d);
    this.#heads.set(key, h);
    return Promise.resolve();
  }

  keys(): Promise<string[]> {
    return Promise.resolve([...this.#heads.keys()]);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #select(keys?: readonly string[]): string[] {
    return keys === undefined ? [...this.#heads.keys()] : keys.filter((k) => this.#heads.has(k));
  }
}

type tfTensor = import("@tensorflow/tfjs").Tensor;

function _outputs(n: number, d: number): ScoreBatch {
  return {
    n,
    dim: d,
    logProb: new Float64Array(n),
    mahalanobis2: new Float64Array(n),
    pValue: new Float64Array(n),
    seq: new Float64Array(n),
    contrib: new Float64Array(n * d),
    anomaly: new Uint8Array(n),
  };
}

/** Running mean and scatter (full d×d) of rows. */
function _absorb(
  m: { count: number; mean: Float64Array; scatter: Float64Array },
  values: Float64Array,
  i: number,
  d: number,
): void {
  m.count++;
  const delta = new Float64Array(d);
  for (let a = 0; a < d; a++) {
    delta[a] = values[i * d + a] - m.mean[a];
    m.mean[a] += delta[a] / m.count;
  }
  for (let a = 0; a < d; a++) {
    const after = values[i * d + a] - m.mean[a];
    for (let b = 0; b < d; b++) m.scatter[b * d + a] += delta[b] * after;
  }
}

/** Welford update of the feature standardiser with ctx[at..at+F). */
function _welford(
  s: { count: number; mean: Float64Array; m2: Float64Array },
  ctx: Float64Array,
  at: number,
  F: number,
): void {
  s.count++;
  for (let a = 0; a < F; a++) {
    const x = ctx[at + a];
    const delta = x - s.mean[a];
    s.mean[a] += delta / s.count;
    s.m2[a] += delta * (x - s.mean[a]);
  }
}

/** Mean and standard deviation of the standardiser (sd 1 while unknown or for a constant feature). */
export function _standardiser(
  s: { count: number; mean: Float64Array; m2: Float64Array },
  F: number,
): { mean: Float64Array; sd: Float64Array } {
  const mean = new Float64Array(F);
  const sd = new Float64Array(F).fill(1);
  if (s.count >= 1) mean.set(s.mean);
  if (s.count >= 2) {
    for (let a = 0; a < F; a++) {
      const v = Math.sqrt(s.m2[a] / s.count);
      if (v > 1e-8 * (1 + Math.abs(s.mean[a]))) sd[a] = v;
    }
  }
  return { mean, sd };
}

/** Cholesky factor of the moments' covariance, shrunk toward its diagonal as needed. */
function _shrunkCholesky(
  m: { count: number; mean: Float64Array; scatter: Float64Array },
  d: number,
): Float64Array {
  const n = Math.max(m.count, 1);
  let scale2 = 0;
  for (let a = 0; a < d; a++) {
    scale2 = Math.max(scale2, m.mean[a] * m.mean[a], m.scatter[a * d + a] / n);
  }
  const floor = Math.max(REL_SD_FLOOR * REL_SD_FLOOR * scale2, ABS_SD_FLOOR * ABS_SD_FLOOR);
  const cov = new Float64Array(d * d);
  const L = new Float64Array(d * d);
  const fill = (lambda: number) => {
    for (let a = 0; a < d; a++) {
      for (let b = 0; b <= a; b++) {
        const s = m.scatter[a * d + b] / n;
        const v = a === b ? Math.max(s, floor) : (1 - lambda) * s;
        cov[a * d + b] = v;
        cov[b * d + a] = v;
      }
    }
  };
  fill(m.count > d + 1 ? 0 : d / (n + d));
  if (cholesky(cov, d, L)) return L;
  fill(d / (n + d));
  if (cholesky(cov, d, L)) return L;
  L.fill(0);
  for (let a = 0; a < d; a++) L[a * d + a] = Math.sqrt(cov[a * d + a]);
  return L;
}

/** FNV-1a hash of a key (seeds its replay draws). */
function _hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function _logDiag(L: Float64Array, d: number): number {
  let s = 0;
  for (let a = 0; a < d; a++) s += Math.log(L[a * d + a]);
  return s;
}

/** x′ = L₀⁻¹(x − μ₀) of row values[at..]. */
function _whiten(values: Float64Array, at: number, h: CondKey, d: number, out: Float64Array): void {
  const L = h.frameTril;
  for (let a = 0; a < d; a++) {
    let s = values[at + a] - h.frameLoc[a];
    for (let b = 0; b < a; b++) s -= L[a * d + b] * out[b];
    out[a] = s / L[a * d + a];
  }
}

/** z = L⁻¹(x − loc) into z; returns |z|². */
function _solveRow(
  x: ArrayLike<number>,
  xAt: number,
  loc: ArrayLike<number>,
  locAt: number,
  L: Float64Array,
  d: number,
  z: Float64Array,
): number {
  let m2 = 0;
  for (let a = 0; a < d; a++) {
    let s = x[xAt + a] - loc[locAt + a];
    for (let b = 0; b < a; b++) s -= L[a * d + b] * z[b];
    z[a] = s / L[a * d + a];
    m2 += z[a] * z[a];
  }
  return m2;
}
