/**
 * The keyed bank of MVN heads: per-key parameters, closed-form initialisation, the exact NLL
 * gradient from the fused kernel's sufficient statistics, and Adam — all in float64.
 *
 * Parameterisation. Each head has a fixed *frame* (origin μ₀, Cholesky factor L₀, in data units)
 * set at initialisation, and unconstrained parameters θ in that frame: loc′ (d), the strictly-lower
 * entries of L′ (d(d−1)/2) and the raw diagonal r (d), with L′_aa = f(r_a) > 0. The public
 * parameters are loc = μ₀ + L₀·loc′ and scale_tril = L₀·L′ (lower-triangular with positive
 * diagonal, so the covariance is valid by construction). Learning in the frame makes `lr` unit-free:
 * data in 1e−3 or 1e3 units learn alike.
 *
 * Learning (`optimizer`): `natural` (default) — while a key initialises, the exact weighted mean
 * and scatter of its rows; afterwards one natural-gradient step per batch (`model/natural_step.ts`):
 * the recursive weighted MLE under exponential forgetting, after which the frame is moved onto the
 * new parameters (θ back to identity). `adam` — the original recipe: Adam on θ from the gradient.
 *
 * @module
 */
import type { HeadConfig } from "../config/head_config.ts";
import {
  cholesky,
  covarianceOf,
  lowerMatMul,
  lowerMatVec,
  packLower,
  solveLowerTransposed,
  toRows,
  unpackLower,
} from "../model/linalg.ts";
import { chi2Isf } from "../model/chi2.ts";
import { restartWeight } from "../model/change_detector.ts";
import { type PredictiveQuantile, sharedQuantile } from "../model/quantile_table.ts";
import {
  forgetting,
  kishN,
  type NaturalScratch,
  naturalStep,
  newNaturalScratch,
} from "../model/natural_step.ts";
import { diagDerivative, diagForward, diagInverse } from "../model/diag_transform.ts";
import type { DiagTransform, HeadParams, HeadSnapshot, HeadState } from "./types.ts";

/** Number of unconstrained parameters of a head of dimension d. */
export function thetaLength(d: number): number {
  return d + (d * (d - 1)) / 2 + d;
}

/** Builds L′ (full row-major lower) from θ. */
export function trilFromTheta(
  theta: ArrayLike<number>,
  d: number,
  diag: DiagTransform,
  out: Float64Array,
): void {
  out.fill(0, 0, d * d);
  let p = d;
  for (let a = 1; a < d; a++) for (let b = 0; b < a; b++) out[a * d + b] = theta[p++];
  for (let a = 0; a < d; a++) out[a * d + a] = diagForward(diag, theta[p++]);
}

/** Work arrays of {@link gradientFromStats}, reusable across calls of one dimension. */
export interface GradientScratch {
  readonly lp: Float64Array;
  readonly g1: Float64Array;
  readonly g2: Float64Array;
}

/** Fresh {@link GradientScratch} for dimension d. */
export function newGradientScratch(d: number): GradientScratch {
  return { lp: new Float64Array(d * d), g1: new Float64Array(d), g2: new Float64Array(d * d) };
}

/**
 * Gradient of the weighted mean NLL, (1/n)·Σ w_i·(½|z_i|² + Σ_a log L′_aa), with respect to θ,
 * from the fused statistics [n, Σw, Σw·z, Σw·z·zᵀ (packed lower)] of one key:
 *   ∂/∂loc′ = −L′⁻ᵀ·(Σw·z)/n,
 *   ∂/∂L′   = tril(−L′⁻ᵀ·(Σw·z·zᵀ)/n) + (Σw/n)·diag(1/L′_aa),
 * and ∂/∂r_a = (∂/∂L′_aa)·f′(r_a). Weights are constants (no gradient through them).
 * The key's statistics start at `stats[offset]`.
 */
export function gradientFromStats(
  theta: ArrayLike<number>,
  stats: ArrayLike<number>,
  d: number,
  diag: DiagTransform,
  out: Float64Array = new Float64Array(thetaLength(d)),
  offset = 0,
  scratch: GradientScratch = newGradientScratch(d),
): Float64Array {
  const { lp, g1, g2 } = scratch;
  trilFromTheta(theta, d, diag, lp);
  const n = stats[offset];
  const sumW = stats[offset + 1];
  for (let a = 0; a < d; a++) g1[a] = stats[offset + 2 + a];
  let q = offset + 2 + d;
  for (let a = 0; a < d; a++) {
    for (let b = 0; b <= a; b++) {
      const v = stats[q++];
      g2[a * d + b] = v;
      g2[b * d + a] = v;
    }
  }
  solveLowerTransposed(lp, g1, d, 1);
  solveLowerTransposed(lp, g2, d, d);
  const inv = 1 / n;
  for (let a = 0; a < d; a++) out[a] = -g1[a] * inv;
  let p = d;
  for (let a = 1; a < d; a++) for (let b = 0; b < a; b++) out[p++] = -g2[a * d + b] * inv;
  for (let a = 0; a < d; a++) {
    const gl = -g2[a * d + a] * inv + (sumW * inv) / lp[a * d + a];
    out[p] = gl * diagDerivative(diag, theta[p]);
    p++;
  }
  return out;
}

/** One head's state. Fields are the engine's to read; only {@link HeadBank} changes parameters. */
export interface Head {
  readonly key: string;
  readonly frameLoc: Float64Array;
  readonly frameTril: Float64Array;
  readonly theta: Float64Array;
  readonly m: Float64Array;
  readonly v: Float64Array;
  steps: number;
  observations: number;
  rejected: number;
  preset: boolean;
  /** Initialisation statistics: weight sum (`count`), Σw² (`w2`), weighted mean and scatter. */
  init: { count: number; w2: number; mean: Float64Array; scatter: Float64Array } | null;
  /** Natural step: (decayed) weight sum and Σw² of what the parameters summarise. */
  wSum: number;
  w2Sum: number;
  /** Natural step: the change detector's CUSUM, and how many times the key restarted. */
  cusum: number;
  restarts: number;
  /** Cached anomaly threshold on m² and the effective n it was computed for. */
  thrN: number;
  thr: number;
  /** Cached robust cut on m² (predictive quantile at 1 − robust_p) and its effective n. */
  cutN: number;
  cut: number;
  /** Effective parameters relative to frameLoc: loc − μ₀ = L₀·loc′ and L = L₀·L′, with Σ log L_aa. */
  readonly locC: Float64Array;
  readonly tril: Float64Array;
  logDet: number;
}

/** Smallest standard deviation a fresh head may get, relative to the data's magnitude and absolute. */
const REL_SD_FLOOR = 1e-6;
const ABS_SD_FLOOR = 1e-12;

/** The keyed heads of one engine. */
export class HeadBank {
  readonly #cfg: HeadConfig;
  readonly #d: number;
  readonly #P: number;
  readonly #heads = new Map<string, Head>();
  readonly #log: (line: string) => void;
  /** Mahalanobis² beyond which rows are down-weighted (χ²_d quantile at 1 − robust_p). */
  readonly robustC: number;
  readonly #scratchL = new Float64Array(0);
  readonly #grad: Float64Array;
  readonly #scratch: GradientScratch;
  readonly #thetaNew: Float64Array;
  readonly #natural: boolean;
  readonly #alphaQ: PredictiveQuantile;
  readonly #robustQ: PredictiveQuantile;
  /** Forgetting factor λ = 1 − 1/horizon. */
  readonly lambda: number;
  readonly #nat: NaturalScratch;
  readonly #locS: Float64Array;
  /** θ of the identity in the frame, and f(r) of its diagonal (1 up to rounding). */
  readonly #thetaIdentity: Float64Array;
  readonly #oneDiag: number;
  readonly #trilS: Float64Array;

  constructor(config: HeadConfig, log: (line: string) => void = () => {}) {
    this.#cfg = config;
    this.#d = config.dim;
    this.#P = thetaLength(config.dim);
    this.#log = log;
    this.robustC = chi2Isf(config.robust_p, config.dim);
    this.#scratchL = new Float64Array(this.#d * this.#d);
    this.#grad = new Float64Array(this.#P);
    this.#scratch = newGradientScratch(config.dim);
    this.#thetaNew = new Float64Array(this.#P);
    this.#natural = config.optimizer === "natural";
    this.#alphaQ = sharedQuantile(config.alpha, config.dim);
    this.#robustQ = sharedQuantile(config.robust_p, config.dim);
    this.lambda = this.#natural ? forgetting(config.horizon) : 1;
    this.#nat = newNaturalScratch(config.dim);
    this.#locS = new Float64Array(config.dim);
    this.#thetaIdentity = new Float64Array(this.#P);
    const r1 = diagInverse(config.diag, 1);
    for (let a = 0; a < config.dim; a++) this.#thetaIdentity[this.#P - config.dim + a] = r1;
    this.#oneDiag = diagForward(config.diag, r1);
    this.#trilS = new Float64Array(config.dim * config.dim);
  }

  /** Whether heads learn by the natural step (predictive p-values) rather than Adam (χ²). */
  get natural(): boolean {
    return this.#natural;
  }

  /**
   * Effective number of observations behind a head's parameters (Kish, under forgetting);
   * Infinity with Adam and for a key started from given parameters (taken as known: χ² p-values).
   */
  nEff(h: Head): number {
    if (!this.#natural || h.preset) return Infinity;
    return h.init !== null ? kishN(h.init.count, h.init.w2) : kishN(h.wSum, h.w2Sum);
  }

  /**
   * Natural step: the m² above which the head's predictive p-value is below `alpha` (from a lazily
   * built table in n, `model/quantile_table.ts`: flags agree with p < alpha to ~3e−9 in m²).
   * Infinity while n_eff ≤ d.
   */
  threshold(h: Head): number {
    const n = this.nEff(h);
    if (n === h.thrN) return h.thr;
    h.thrN = n;
    h.thr = this.#alphaQ.value(n);
    return h.thr;
  }

  get size(): number {
    return this.#heads.size;
  }

  keys(): string[] {
    return [...this.#heads.keys()];
  }

  has(key: string): boolean {
    return this.#heads.has(key);
  }

  /** The head of a key, for the engine's per-batch work (one lookup per key and batch). */
  head(key: string): Head | undefined {
    return this.#heads.get(key);
  }

  /**
   * Creates a head from its first rows (row-major, data units): sample mean and Cholesky of a
   * shrunk sample covariance. Rows are absorbed into the initialisation statistics.
   */
  create(key: string, rows: Float64Array, count: number): Head {
    const h = this.draft(key, rows, count);
    this.adopt(h);
    return h;
  }

  /**
   * Like {@link create}, but the head is not part of the bank until {@link adopt}ed: the engine
   * scores a batch with it first, so a refused batch leaves no half-made key behind.
   */
  draft(key: string, rows: Float64Array, count: number, weights?: Float64Array): Head {
    if (this.#heads.has(key)) throw new TypeError(`expected a new key, found existing '${key}'`);
    const d = this.#d;
    const h = this.#blank(key);
    h.init = { count: 0, w2: 0, mean: new Float64Array(d), scatter: new Float64Array(d * d) };
    this.absorbInit(h, rows, count, weights);
    return h;
  }

  /**
   * Natural step: the key's robust cut on m², the predictive quantile at 1 − robust_p for its
   * effective n (a function of n alone, from a table like {@link threshold}, so a restored
   * checkpoint continues exactly); it tends to the kernel's χ² cut `robustC` as the
   * key matures. Infinity while n_eff ≤ d (no down-weighting yet).
   */
  robustCut(h: Head): number {
    const n = this.nEff(h);
    if (n === h.cutN) return h.cut;
    h.cutN = n;
    h.cut = n === Infinity ? this.robustC : this.#robustQ.value(n);
    return h.cut;
  }

  /** Starts a (drafted) key's initialisation statistics over: the engine re-absorbs its rows. */
  clearInit(h: Head): void {
    const d = this.#d;
    h.init = { count: 0, w2: 0, mean: new Float64Array(d), scatter: new Float64Array(d * d) };
  }

  /** Adds a drafted head to the bank. */
  adopt(h: Head): void {
    if (this.#heads.has(h.key)) {
      throw new TypeError(`expected a new key, found existing '${h.key}'`);
    }
    this.#heads.set(h.key, h);
  }

  /**
   * Adds rows to a still-initialising head and re-derives its frame; ends the phase at `init_rows`
   * (a weight sum under forgetting). `weights`: per-row forgetting weights (natural step: λ^(rows
   * after it); the earlier statistics decay by λ^count), default 1 each and no decay.
   */
  absorbInit(h: Head, rows: Float64Array, count: number, weights?: Float64Array): void {
    const init = h.init;
    if (init === null || count === 0) return;
    const d = this.#d;
    if (weights !== undefined) {
      const dec = Math.pow(this.lambda, count);
      init.count *= dec;
      init.w2 *= dec * dec;
      for (let e = 0; e < d * d; e++) init.scatter[e] *= dec;
    }
    const wt = (i: number) => (weights === undefined ? 1 : weights[i]);
    // Chan et al. merge of the batch's (weighted) mean/scatter into the running ones.
    let wb = 0, wb2 = 0;
    const mb = new Float64Array(d);
    for (let i = 0; i < count; i++) {
      const w = wt(i);
      wb += w;
      wb2 += w * w;
      for (let a = 0; a < d; a++) mb[a] += w * rows[i * d + a];
    }
    for (let a = 0; a < d; a++) mb[a] /= wb;
    const sb = new Float64Array(d * d);
    for (let i = 0; i < count; i++) {
      const w = wt(i);
      for (let a = 0; a < d; a++) {
        const da = w * (rows[i * d + a] - mb[a]);
        for (let b = 0; b <= a; b++) sb[a * d + b] += da * (rows[i * d + b] - mb[b]);
      }
    }
    const na = init.count;
    const n = na + wb;
    init.w2 += wb2;
    for (let a = 0; a < d; a++) {
      const da = mb[a] - init.mean[a];
      for (let b = 0; b <= a; b++) {
        const db = mb[b] - init.mean[b];
        init.scatter[a * d + b] += sb[a * d + b] + (da * db * na * wb) / n;
      }
    }
    for (let a = 0; a < d; a++) init.mean[a] += ((mb[a] - init.mean[a]) * wb) / n;
    init.count = n;
    this.#frameFromInit(h);
    if (n >= this.#cfg.init_rows) {
      h.wSum = init.count;
      h.w2Sum = init.w2;
      h.init = null;
    }
  }

  /**
   * Natural step for a key from its fused statistics (computed with forgetting weights):
   * decays the memory by λ^m for the batch's m learned rows, moves (loc, scale_tril) to the
   * weighted MLE of everything seen, and re-centres the frame there. A non-finite or indefinite
   * update is rejected (state kept, counted, logged). Returns whether the parameters moved.
   */
  stepNatural(h: Head, stats: ArrayLike<number>, offset: number, learned: number): boolean {
    if (learned <= 0) return false;
    const d = this.#d;
    const lam = this.lambda;
    const dec = Math.pow(lam, learned);
    h.wSum *= dec;
    h.w2Sum *= dec * dec;
    const W = stats[offset + 1];
    h.w2Sum += lam === 1 ? learned : (1 - dec * dec) / (1 - lam * lam);
    if (!(W > 0)) return false;
    const loc = this.#locS, tril = this.#trilS;
    for (let a = 0; a < d; a++) loc[a] = h.frameLoc[a] + h.locC[a];
    tril.set(h.tril);
    const eta = naturalStep(loc, tril, d, stats, offset, h.wSum, this.#nat);
    if (eta < 0) {
      h.rejected++;
      this.#log(
        `rejected a non-finite update for key '${h.key}' (${h.rejected} so far); state kept`,
      );
      return false;
    }
    h.wSum += W;
    h.frameLoc.set(loc);
    h.frameTril.set(tril);
    this.#identityInFrame(h);
    h.steps++;
    return true;
  }

  /**
   * θ = identity in the (new) frame, and the effective parameters that #refresh would derive from
   * it — loc − μ₀ = 0, L = L₀·diag(f(r₁)) — without the general products (same numbers: the
   * products' other terms are exact zeros).
   */
  #identityInFrame(h: Head): void {
    const d = this.#d;
    h.theta.set(this.#thetaIdentity);
    h.locC.fill(0);
    const one = this.#oneDiag;
    let logDet = 0;
    for (let a = 0; a < d; a++) {
      for (let b = 0; b < d; b++) h.tril[a * d + b] = h.frameTril[a * d + b] * one;
      logDet += Math.log(h.frameTril[a * d + a]) + Math.log(one);
    }
    h.logDet = logDet;
  }

  /**
   * Change detected: the key restarts its moments, keeping its current parameters as a prior worth
   * {@link restartWeight} observations, and re-enters initialisation with the given rows (those after
   * the alarm, with their forgetting weights).
   */
  restart(h: Head, rows: Float64Array, count: number, weights?: Float64Array): void {
    const d = this.#d;
    const w0 = restartWeight(d);
    const mean = new Float64Array(d);
    for (let a = 0; a < d; a++) mean[a] = h.frameLoc[a] + h.locC[a];
    const scatter = new Float64Array(d * d);
    for (let a = 0; a < d; a++) {
      for (let b = 0; b <= a; b++) {
        let s = 0;
        for (let k = 0; k <= b; k++) s += h.tril[a * d + k] * h.tril[b * d + k];
        scatter[a * d + b] = w0 * s;
      }
    }
    h.init = { count: w0, w2: w0, mean, scatter };
    h.cusum = 0;
    h.restarts++;
    this.#log(`change detected for key '${h.key}': restarting its moments (${h.restarts} so far)`);
    if (count > 0) this.absorbInit(h, rows, count, weights);
    else this.#frameFromInit(h);
  }

  /**
   * One Adam step for the key from its fused statistics. A non-finite gradient or an update that
   * would leave θ non-finite or the diagonal non-positive is rejected: state kept, counted, logged.
   * Returns whether the step was applied.
   */
  step(h: Head, stats: ArrayLike<number>, offset = 0): boolean {
    const key = h.key;
    if (!(stats[offset] > 0)) return false;
    const d = this.#d;
    const P = this.#P;
    const cfg = this.#cfg;
    const g = gradientFromStats(h.theta, stats, d, cfg.diag, this.#grad, offset, this.#scratch);
    const t = h.steps + 1;
    const b1 = cfg.beta1, b2 = cfg.beta2;
    const c1 = 1 - Math.pow(b1, t);
    const c2 = 1 - Math.pow(b2, t);
    const next = this.#thetaNew;
    let ok = true;
    for (let i = 0; i < P; i++) {
      if (!Number.isFinite(g[i])) {
        ok = false;
        break;
      }
      const m = b1 * h.m[i] + (1 - b1) * g[i];
      const v = b2 * h.v[i] + (1 - b2) * g[i] * g[i];
      next[i] = h.theta[i] - (cfg.lr * (m / c1)) / (Math.sqrt(v / c2) + cfg.epsilon);
      // An overflowing second moment would freeze the head forever: reject it like a NaN.
      if (!Number.isFinite(next[i]) || !Number.isFinite(v)) ok = false;
    }
    if (ok) {
      const p0 = d + (d * (d - 1)) / 2;
      for (let a = 0; a < d; a++) {
        const f = diagForward(cfg.diag, next[p0 + a]);
        if (!(f > 0) || !Number.isFinite(f)) ok = false;
      }
    }
    if (!ok) {
      h.rejected++;
      this.#log(`rejected a non-finite update for key '${key}' (${h.rejected} so far); state kept`);
      return false;
    }
    for (let i = 0; i < P; i++) {
      h.m[i] = b1 * h.m[i] + (1 - b1) * g[i];
      h.v[i] = b2 * h.v[i] + (1 - b2) * g[i] * g[i];
    }
    for (let i = 0; i < P; i++) h.theta[i] = next[i];
    h.steps = t;
    this.#refresh(h);
    return true;
  }

  /** Starts (or restarts) a key from public parameters; it flags anomalies without warm-up. */
  setParams(key: string, params: HeadParams): void {
    const d = this.#d;
    if (params.loc.length !== d || params.scale_tril.length !== d) {
      throw new RangeError(
        `expected loc of ${d} numbers and scale_tril of ${d} rows for key '${key}', found ${params.loc.length} and ${params.scale_tril.length}`,
      );
    }
    const h = this.#blank(key);
    for (let a = 0; a < d; a++) {
      const row = params.scale_tril[a];
      if (row.length !== d) {
        throw new RangeError(`expected scale_tril row ${a} of ${d} numbers, found ${row.length}`);
      }
      if (!Number.isFinite(params.loc[a])) {
        throw new RangeError(`expected finite loc[${a}], found ${params.loc[a]}`);
      }
      for (let b = 0; b < d; b++) {
        const v = row[b];
        if (!Number.isFinite(v)) {
          throw new RangeError(`expected finite scale_tril[${a}][${b}], found ${v}`);
        }
        if (b > a && v !== 0) {
          throw new RangeError(`expected lower-triangular scale_tril, found ${v} at [${a}][${b}]`);
        }
        if (b === a && !(v > 0)) {
          throw new RangeError(`expected a positive diagonal, found scale_tril[${a}][${a}] = ${v}`);
        }
      }
    }
    for (let a = 0; a < d; a++) {
      h.frameLoc[a] = params.loc[a];
      for (let b = 0; b <= a; b++) h.frameTril[a * d + b] = params.scale_tril[a][b];
    }
    h.preset = true;
    this.#resetTheta(h);
    // A given head counts as a full memory (n_eff = 2·horizon − 1).
    const lam = this.lambda;
    h.wSum = lam < 1 ? 1 / (1 - lam) : 1e12;
    h.w2Sum = lam < 1 ? 1 / (1 - lam * lam) : 1e12;
    this.#heads.set(key, h);
  }

  snapshot(key: string): HeadSnapshot {
    const h = this.#get(key);
    const d = this.#d;
    const loc = new Float64Array(d);
    for (let a = 0; a < d; a++) loc[a] = h.frameLoc[a] + h.locC[a];
    return {
      key,
      dim: d,
      loc: Array.from(loc),
      scale_tril: toRows(h.tril, d),
      covariance: covarianceOf(h.tril, d),
      observations: h.observations,
      steps: h.steps,
      rejected_updates: h.rejected,
    };
  }

  exportState(key: string): HeadState {
    const h = this.#get(key);
    const d = this.#d;
    return {
      key,
      dim: d,
      diag: this.#cfg.diag,
      frame_loc: Array.from(h.frameLoc),
      frame_tril: packLower(h.frameTril, d),
      theta: Array.from(h.theta),
      adam_m: Array.from(h.m),
      adam_v: Array.from(h.v),
      steps: h.steps,
      observations: h.observations,
      rejected_updates: h.rejected,
      preset: h.preset,
      ...(this.#natural
        ? { memory: { w: h.wSum, w2: h.w2Sum, cusum: h.cusum, restarts: h.restarts } }
        : {}),
      init: h.init === null ? null : {
        count: h.init.count,
        ...(this.#natural ? { w2: h.init.w2 } : {}),
        mean: Array.from(h.init.mean),
        scatter: packLower(h.init.scatter, d),
      },
    };
  }

  importState(s: HeadState): void {
    const d = this.#d;
    const P = this.#P;
    if (s.dim !== d) {
      throw new RangeError(`expected state of dimension ${d} for '${s.key}', found ${s.dim}`);
    }
    if (s.diag !== this.#cfg.diag) {
      throw new RangeError(
        `expected state with diag transform '${this.#cfg.diag}' for '${s.key}', found '${s.diag}'`,
      );
    }
    const lens: [string, number, number][] = [
      ["frame_loc", s.frame_loc.length, d],
      ["frame_tril", s.frame_tril.length, (d * (d + 1)) / 2],
      ["theta", s.theta.length, P],
      ["adam_m", s.adam_m.length, P],
      ["adam_v", s.adam_v.length, P],
    ];
    for (const [name, got, want] of lens) {
      if (got !== want) {
        throw new RangeError(`expected ${want} numbers in ${name} of '${s.key}', found ${got}`);
      }
    }
    const h = this.#blank(s.key);
    h.frameLoc.set(s.frame_loc);
    unpackLower(s.frame_tril, d, h.frameTril);
    h.theta.set(s.theta);
    h.m.set(s.adam_m);
    h.v.set(s.adam_v);
    h.steps = s.steps;
    h.observations = s.observations;
    h.rejected = s.rejected_updates;
    h.preset = s.preset ?? false;
    // Checkpoints from before the natural step have no memory: every observation counts once,
    // up to a full memory.
    const lam = this.lambda;
    const full = lam < 1 ? 1 / (1 - lam) : Infinity;
    const mem = s.memory;
    h.wSum = mem?.w ?? Math.min(s.observations, full);
    h.w2Sum = mem?.w2 ??
      (lam < 1 && s.observations > full ? 1 / (1 - lam * lam) : Math.min(s.observations, full));
    h.cusum = mem?.cusum ?? 0;
    h.restarts = mem?.restarts ?? 0;
    h.init = s.init === null ? null : {
      count: s.init.count,
      w2: s.init.w2 ?? s.init.count,
      mean: Float64Array.from(s.init.mean),
      scatter: unpackLower(s.init.scatter, d),
    };
    this.#refresh(h);
    this.#heads.set(s.key, h);
  }

  #get(key: string): Head {
    const h = this.#heads.get(key);
    if (h === undefined) throw new RangeError(`expected a known model key, found '${key}'`);
    return h;
  }

  #blank(key: string): Head {
    const d = this.#d;
    const P = this.#P;
    const frameTril = new Float64Array(d * d);
    for (let a = 0; a < d; a++) frameTril[a * d + a] = 1;
    const h: Head = {
      key,
      frameLoc: new Float64Array(d),
      frameTril,
      theta: new Float64Array(P),
      m: new Float64Array(P),
      v: new Float64Array(P),
      steps: 0,
      observations: 0,
      rejected: 0,
      preset: false,
      init: null,
      wSum: 0,
      w2Sum: 0,
      cusum: 0,
      restarts: 0,
      thrN: NaN,
      thr: Infinity,
      cutN: NaN,
      cut: Infinity,
      locC: new Float64Array(d),
      tril: new Float64Array(d * d),
      logDet: 0,
    };
    this.#resetTheta(h);
    return h;
  }

  /** θ = identity in the frame: loc′ = 0, L′ = I; Adam restarts. */
  #resetTheta(h: Head): void {
    const d = this.#d;
    h.theta.fill(0);
    const one = diagInverse(this.#cfg.diag, 1);
    const p0 = d + (d * (d - 1)) / 2;
    for (let a = 0; a < d; a++) h.theta[p0 + a] = one;
    h.m.fill(0);
    h.v.fill(0);
    h.steps = 0;
    this.#refresh(h);
  }

  /** Frame = (sample mean, Cholesky of the covariance shrunk toward its diagonal). */
  #frameFromInit(h: Head): void {
    const init = h.init;
    if (init === null) return;
    const d = this.#d;
    const n = init.count;
    const cov = new Float64Array(d * d);
    let scale2 = 0;
    for (let a = 0; a < d; a++) {
      scale2 = Math.max(scale2, init.mean[a] * init.mean[a], init.scatter[a * d + a] / n);
    }
    const floor = Math.max(REL_SD_FLOOR * REL_SD_FLOOR * scale2, ABS_SD_FLOOR * ABS_SD_FLOOR);
    // Shrinkage toward the diagonal keeps the estimate positive definite from few rows and is
    // unit-free per axis (a spherical target would mix units).
    // Natural step: the exact (weighted) MLE as soon as it is positive definite.
    const fill = (lambda: number) => {
      for (let a = 0; a < d; a++) {
        for (let b = 0; b <= a; b++) {
          const s = init.scatter[a * d + b] / n;
          const v = a === b ? Math.max(s, floor) : (1 - lambda) * s;
          cov[a * d + b] = v;
          cov[b * d + a] = v;
        }
      }
    };
    let ok = false;
    if (this.#natural && n > d + 1) {
      fill(0);
      ok = cholesky(cov, d, h.frameTril);
    }
    if (!ok) {
      fill(d / (n + d));
      ok = cholesky(cov, d, h.frameTril);
    }
    if (!ok) {
      // Numerically indefinite despite shrinkage: fall back to the diagonal alone.
      h.frameTril.fill(0);
      for (let a = 0; a < d; a++) h.frameTril[a * d + a] = Math.sqrt(cov[a * d + a]);
    }
    h.frameLoc.set(init.mean);
    this.#resetTheta(h);
  }

  #refresh(h: Head): void {
    const d = this.#d;
    const lp = this.#scratchL;
    trilFromTheta(h.theta, d, this.#cfg.diag, lp);
    lowerMatMul(h.frameTril, lp, d, h.tril);
    lowerMatVec(h.frameTril, h.theta.subarray(0, d), d, h.locC);
    let logDet = 0;
    for (let a = 0; a < d; a++) {
      logDet += Math.log(h.frameTril[a * d + a]) + Math.log(lp[a * d + a]);
    }
    h.logDet = logDet;
  }
}
