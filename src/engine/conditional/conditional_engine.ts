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
import { covarianceOf, toRows } from "../../model/linalg.ts";
import type { ScoringEngine } from "../engine.ts";
import { EngineError } from "../errors.ts";
import type {
  BackendName,
  ConditionalArchitecture,
  HeadParams,
  HeadSnapshot,
  HeadState,
  ObservationBatch,
  ScoreBatch,
} from "../types.ts";
import { checkValues, contextRows, rowsByKey } from "./batch_input.ts";
import { absorb, fixFrame } from "./frame.ts";
import {
  type CondKey,
  type KeyShape,
  keyStateFromJson,
  keyStateToJson,
  newKeyState,
  presetKeyState,
} from "./key_state.ts";
import { type NetLayout, netLayout, outputsFor, type Tf } from "./network.ts";
import {
  checkFiniteScores,
  flagRows,
  initMvn,
  mvnFromOutputs,
  netOutputs,
  newScoreBatch,
  scoreInit,
  scoreNet,
} from "./scoring.ts";
import { standardiseOne, standardiseRows, welford } from "./standardiser.ts";
import {
  adamStep,
  type LossAndGradient,
  nllGradient,
  nllLossAndGradientAutodiff,
  type NllRows,
  trainKey,
} from "./training.ts";

export { standardiserMoments as _standardiser } from "./standardiser.ts";

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
  /** What keys' states, training and the network's tfjs calls are shaped by. */
  readonly #shape: KeyShape & { readonly tf: Tf; readonly robustC: number };
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
    this.#shape = {
      config,
      layout: this.layout,
      architecture: this.architecture,
      F: this.#F,
      tf: this.#tf,
      robustC: this.#robustC,
    };
  }

  process(batch: ObservationBatch): Promise<ScoreBatch> {
    const result = this.#chain.then(() => this.#process(batch));
    this.#chain = result.then(() => {}, () => {});
    return result;
  }

  release(_scores: ScoreBatch): void {}

  /** The context rows of a batch (carried features, then time features), validated. */
  contextOf(batch: ObservationBatch): Float64Array {
    return contextRows(batch, this.config, this.#F);
  }

  async #process(batch: ObservationBatch): Promise<ScoreBatch> {
    const d = this.config.dim;
    const { n, values, keys } = batch;
    checkValues(batch, d);
    const ctx = this.contextOf(batch);
    const scoreOnly = batch.scoreOnly === true;
    const rowsOf = rowsByKey(batch);
    if (scoreOnly) {
      for (let k = 0; k < keys.length; k++) {
        if (rowsOf[k].length > 0 && !this.#heads.has(keys[k])) {
          throw new EngineError("unknown_key", `expected a known model key, found '${keys[k]}'`);
        }
      }
    }
    const counted = (i: number) =>
      !scoreOnly && (batch.counted === undefined || batch.counted[i] === 1);
    const learns = (i: number) => counted(i) && (batch.learn === undefined || batch.learn[i] === 1);
    const out = newScoreBatch(n, d);
    const withP = batch.pValues !== false;
    // Phase 1: score every key with its parameters from before the batch (no state changes).
    const plans: { h: CondKey; created: boolean; rows: number[]; stdCtx: Float32Array | null }[] =
      [];
    for (let k = 0; k < keys.length; k++) {
      const rows = rowsOf[k];
      if (rows.length === 0) continue;
      let h = this.#heads.get(keys[k]);
      const created = h === undefined;
      h ??= newKeyState(keys[k], this.#shape);
      let stdCtx: Float32Array | null = null;
      if (h.init !== null) {
        scoreInit(h, rows, values, d, out, learns);
      } else {
        stdCtx = standardiseRows(h.std, ctx, rows, this.#F);
        await this.#scoreNet(h, rows, values, stdCtx, out);
      }
      plans.push({ h, created, rows, stdCtx });
    }
    checkFiniteScores(out);
    // Counts, p-values, anomalies.
    for (const { h, rows } of plans) {
      const flagFrom = h.preset ? 0 : this.config.warmup + 1;
      const tail = withP ? this.#tail : null;
      flagRows(out, rows, h.observations, flagFrom, counted, tail, this.#m2Alpha);
    }
    if (scoreOnly) return out;
    // Phase 2: learn.
    for (const { h, created, rows, stdCtx } of plans) {
      if (created) this.#heads.set(h.key, h);
      for (const i of rows) if (counted(i)) h.observations++;
      const use = rows.filter(learns);
      if (use.length === 0) continue;
      if (h.init !== null) {
        for (const i of use) absorb(h.init, values, i, d);
        if (h.init.count >= this.config.init_rows) fixFrame(h, d);
      } else {
        const local = new Map<number, number>();
        rows.forEach((i, r) => local.set(i, r));
        await trainKey(
          h,
          use,
          local,
          values,
          ctx,
          stdCtx!,
          out.mahalanobis2,
          this.#shape,
          (X, XW, W, sumW, m) => this.step(h, X, XW, W, sumW, m),
        );
      }
      // Standardiser and latest context (after the steps: frozen during them).
      const F = this.#F;
      for (const i of use) welford(h.std, ctx, i * F, F);
      h.context = ctx.slice(use[use.length - 1] * F, use[use.length - 1] * F + F);
    }
    return out;
  }

  /** Raw network outputs [rows, P] for standardised contexts (the averaged weights). */
  async #forward(h: CondKey, stdCtx: Float32Array, m: number): Promise<Float32Array> {
    await this.#onBackend();
    return await netOutputs(this.#shape, h.avg, stdCtx, m);
  }

  /** Scores a key's rows with its network (parameters from before the batch). */
  async #scoreNet(
    h: CondKey,
    rows: number[],
    values: Float64Array,
    stdCtx: Float32Array,
    out: ScoreBatch,
  ): Promise<void> {
    const raw = await this.#forward(h, stdCtx, rows.length);
    scoreNet(h, rows, values, raw, this.layout.outputs, this.config.dim, this.config.diag, out);
  }

  /**
   * One Adam step of a key on m rows: X standardised contexts [m, F], XW whitened rows [m, d],
   * W robust weights. Returns false (and counts a rejected update) when not finite.
   */
  async step(
    h: CondKey,
    ...rows: NllRows
  ): Promise<boolean> {
    const g = await this.gradient(h.theta, ...rows);
    return adamStep(h, g, this.config, this.#log);
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
    ...rows: NllRows
  ): Promise<LossAndGradient> {
    await this.#onBackend();
    return await nllGradient(this.#shape, theta, ...rows);
  }

  /** The weighted mean NLL of m rows and its gradient w.r.t. θ, all by tfjs autodiff (reference). */
  async lossAndGradient(
    theta: Float64Array,
    ...rows: NllRows
  ): Promise<LossAndGradient> {
    await this.#onBackend();
    return await nllLossAndGradientAutodiff(this.#shape, theta, ...rows);
  }

  /**
   * tfjs has one global backend: another engine in this process (a conditional one on the other
   * backend, the webgpu fused kernel) may have switched it. Every call creates and disposes its
   * own tensors, so switching back between calls is safe.
   */
  async #onBackend(): Promise<void> {
    if (this.#tf.getBackend() !== this.backend) await this.#tf.setBackend(this.backend);
  }

  /** The MVN (data units) of a key at a raw context. */
  async #paramsAt(
    h: CondKey,
    context: Float64Array | null,
  ): Promise<{ loc: Float64Array; L: Float64Array }> {
    const d = this.config.dim;
    if (h.init !== null) return initMvn(h, d);
    const x = standardiseOne(h.std, context, this.#F);
    const raw = await this.#forward(h, x, 1);
    return mvnFromOutputs(h, raw, d, this.config.diag);
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
    return Promise.resolve(
      this.#select(keys).map((k) => keyStateToJson(this.#heads.get(k)!, this.#shape)),
    );
  }

  importState(states: readonly HeadState[]): Promise<void> {
    for (const s of states) this.#heads.set(s.key, keyStateFromJson(s, this.#shape));
    return Promise.resolve();
  }

  forget(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.#heads.delete(k);
    return Promise.resolve();
  }

  /**
   * Starts a key from given parameters: they become its frame and the network starts at them
   * (loc′ = 0, scale_tril′ = I at every context); anomalies are flagged without warm-up.
   */
  setParams(key: string, params: HeadParams): Promise<void> {
    this.#heads.set(key, presetKeyState(key, params, this.#shape));
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
