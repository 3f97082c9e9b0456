/**
 * The keyed bank of MVN heads: per-key parameters, closed-form initialisation from the first rows'
 * moments (`model/moments.ts`), and learning from the fused kernel's sufficient statistics — the
 * exact NLL gradient (`model/gradient.ts`) with Adam (`model/adam.ts`), or the natural step — all
 * in float64. Checkpoint state and snapshots: `head_state.ts`; the natural step's application to
 * a head: `natural_apply.ts`; the Adam step's: `adam_step.ts`; the {@link Head} shape: `head.ts`.
 *
 * Parameterisation (`model/parameterisation.ts`). Each head has a fixed *frame* (origin μ₀, Cholesky factor L₀, in data units)
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
import { chi2Isf } from "../model/chi2.ts";
import { restartWeight } from "../model/change_detector.ts";
import { type PredictiveQuantile, sharedQuantile } from "../model/quantile_table.ts";
import { forgetting, kishN } from "../model/natural_step.ts";
import { thetaLength } from "../model/parameterisation.ts";
import {
  decayMoments,
  emptyMoments,
  mergeRows,
  priorMoments,
  shrunkFrame,
  type WeightedMoments,
} from "../model/moments.ts";
import {
  blankHead,
  checkHeadParams,
  checkHeadState,
  headSnapshot,
  headToState,
  restoreHead,
} from "./head_state.ts";
import { AdamStepper } from "./adam_step.ts";
import { Drafts } from "./drafts.ts";
import type { Head } from "./head.ts";
import { HeadStore, SlabHead } from "./head_slab.ts";
import { NaturalApplier } from "./natural_apply.ts";
import type { HeadParams, HeadSnapshot, HeadState } from "./types.ts";

/** The keyed heads of one engine. */
export class HeadBank {
  readonly #cfg: HeadConfig;
  readonly #d: number;
  readonly #P: number;
  /** Key → slot in {@link #store}: no per-key object besides the map entry (issue 13). */
  readonly #slots = new Map<string, number>();
  /**
   * Caller's key id → slot + 1 (0: not cached), filled by {@link batchHead}; emptied whenever a key's
   * slot changes or a key goes (only a new key's slot is added without it).
   */
  #byId = new Int32Array(0);
  readonly #store: HeadStore;
  /** Drafted heads, freed at the next commit ({@link save}) unless adopted. */
  readonly #drafts = new Drafts();
  /**
   * Slots of replaced heads, freed at the next draft: a batch in flight (kernel path) may still
   * write to a replaced head, and drafts happen only at a batch's start, after the previous one.
   */
  readonly #retired: number[] = [];
  /** Empty moments, copied into a head's slot (never changed itself). */
  readonly #noMoments: WeightedMoments;
  readonly #log: (line: string) => void;
  /** Mahalanobis² beyond which rows are down-weighted (χ²_d quantile at 1 − robust_p). */
  readonly robustC: number;
  readonly #natural: boolean;
  readonly #alphaQ: PredictiveQuantile;
  readonly #robustQ: PredictiveQuantile;
  /** Forgetting factor λ = 1 − 1/horizon. */
  readonly lambda: number;
  /** The natural step's application to a head, and its scratch. */
  readonly #applier: NaturalApplier;
  /** The Adam step, and the effective parameters of a head from its frame and θ. */
  readonly #adam: AdamStepper;

  constructor(config: HeadConfig, log: (line: string) => void = () => {}) {
    this.#cfg = config;
    this.#d = config.dim;
    this.#P = thetaLength(config.dim);
    this.#log = log;
    this.robustC = chi2Isf(config.robust_p, config.dim);
    this.#natural = config.optimizer === "natural";
    this.#alphaQ = sharedQuantile(config.alpha, config.dim);
    this.#robustQ = sharedQuantile(config.robust_p, config.dim);
    this.lambda = this.#natural ? forgetting(config.horizon) : 1;
    this.#applier = new NaturalApplier(config, this.lambda, log);
    this.#adam = new AdamStepper(config, log);
    this.#store = new HeadStore(config.dim, this.#P, !this.#natural);
    this.#noMoments = emptyMoments(config.dim);
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
   * Infinity while n_eff ≤ d. `n`: the head's {@link nEff}, when the caller has it already.
   */
  threshold(h: Head, n: number = this.nEff(h)): number {
    if (n === h.thrN) return h.thr;
    h.thrN = n;
    h.thr = this.#alphaQ.value(n);
    return h.thr;
  }

  /**
   * Writes the batch's working copies ({@link batchHead}) back into their slots: called once the
   * batch is committed (a refused batch leaves its keys as they were), and frees the slots of drafts
   * that were not adopted.
   */
  save(heads: readonly Head[], n: number): void {
    for (let j = 0; j < n; j++) {
      const h = heads[j];
      if (h instanceof SlabHead && h.work) this.#store.save(h);
    }
    this.#drafts.sweep((k) => this.#slots.get(k), (slot) => this.#store.release(slot));
  }

  get size(): number {
    return this.#slots.size;
  }

  keys(): string[] {
    return [...this.#slots.keys()];
  }

  has(key: string): boolean {
    return this.#slots.has(key);
  }

  /**
   * A copy of a key's head, for reading: what is changed in it is not kept (the engine's batches
   * change their keys' working copies, {@link batchHead}, which {@link save} keeps).
   */
  head(key: string): Head | undefined {
    const slot = this.#slots.get(key);
    return slot === undefined ? undefined : this.#store.head(key, slot);
  }

  /**
   * {@link head} for a batch's key at position j: a working copy of the key's numbers, valid until
   * the next batch; {@link save} writes the batch's copies back once it is committed.
   */
  batchHead(key: string, id: number, j: number): Head | undefined {
    let slot = -1;
    if (id >= 0 && id < this.#byId.length) slot = this.#byId[id] - 1;
    if (slot < 0) {
      const s = this.#slots.get(key);
      if (s === undefined) return undefined;
      slot = s;
      if (id >= 0) this.#cacheId(id, slot);
    }
    return this.#store.load(j, key, slot);
  }

  #cacheId(id: number, slot: number): void {
    if (id >= this.#byId.length) {
      const grown = new Int32Array(Math.max(id + 1, 2 * this.#byId.length, 1024));
      grown.set(this.#byId);
      this.#byId = grown;
    }
    this.#byId[id] = slot + 1;
  }

  /**
   * Creates a head from its first rows (row-major, data units): sample mean and Cholesky of a
   * shrunk sample covariance. Rows are absorbed into the initialisation statistics.
   */
  create(key: string, rows: Float64Array, count: number): Head {
    const h = this.draft(key, rows, count);
    this.adopt(h);
    this.#drafts.dropLatest();
    return h;
  }

  /**
   * Like {@link create}, but the head is not part of the bank until {@link adopt}ed: the engine
   * scores a batch with it first, so a refused batch leaves no half-made key behind. `j`: the
   * key's batch position, whose working copy ({@link batchHead}) the draft is, saved with the
   * batch's others; default: a standalone copy (the caller saves it).
   */
  draft(key: string, rows: Float64Array, count: number, weights?: Float64Array, j = -1): Head {
    if (this.#slots.has(key)) throw new TypeError(`expected a new key, found existing '${key}'`);
    const store = this.#store;
    for (const slot of this.#retired) store.release(slot);
    this.#retired.length = 0;
    const h = this.#blank(key, j);
    this.#drafts.add(key, this.#slab(h).slot);
    h.init = this.#noMoments;
    this.absorbInit(h, rows, count, weights);
    return h;
  }

  /**
   * Natural step: the key's robust cut on m², the predictive quantile at 1 − robust_p for its
   * effective n (a function of n alone, from a table like {@link threshold}, so a restored
   * checkpoint continues exactly); it tends to the kernel's χ² cut `robustC` as the
   * key matures. Infinity while n_eff ≤ d (no down-weighting yet). `n`: as for {@link threshold}.
   */
  robustCut(h: Head, n: number = this.nEff(h)): number {
    if (n === h.cutN) return h.cut;
    h.cutN = n;
    h.cut = n === Infinity ? this.robustC : this.#robustQ.value(n);
    return h.cut;
  }

  /** Starts a (drafted) key's initialisation statistics over: the engine re-absorbs its rows. */
  clearInit(h: Head): void {
    h.init = this.#noMoments;
  }

  /** Adds a drafted head to the bank (a standalone draft saved now, a batch's at {@link save}). */
  adopt(h: Head): void {
    if (this.#slots.has(h.key)) {
      throw new TypeError(`expected a new key, found existing '${h.key}'`);
    }
    const slab = this.#slab(h);
    if (!slab.work) this.#store.save(slab);
    this.#slots.set(h.key, slab.slot);
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
    if (weights !== undefined) decayMoments(init, Math.pow(this.lambda, count), d);
    mergeRows(init, rows, count, d, weights);
    this.#frameFromInit(h);
    if (init.count >= this.#cfg.init_rows) {
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
    return this.#applier.step(h, stats, offset, learned);
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
    h.init = priorMoments(mean, h.tril, d, w0);
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
    return this.#adam.step(h, stats, offset);
  }

  /** Starts (or restarts) a key from public parameters; it flags anomalies without warm-up. */
  setParams(key: string, params: HeadParams): void {
    const d = this.#d;
    checkHeadParams(key, params, d);
    const h = this.#blank(key);
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
    this.#put(key, h);
  }

  snapshot(key: string): HeadSnapshot {
    return headSnapshot(this.#get(key), this.#d);
  }

  exportState(key: string): HeadState {
    return headToState(this.#get(key), this.#d, this.#cfg.diag, this.#natural);
  }

  importState(s: HeadState): void {
    checkHeadState(s, this.#d, this.#P, this.#cfg.diag);
    const h = this.#blank(s.key);
    restoreHead(h, s, this.#d, this.lambda);
    this.#adam.refresh(h);
    this.#put(s.key, h);
  }

  /** Makes `h` (a standalone copy, saved here) the key's head; a replaced head's slot is retired. */
  #put(key: string, h: Head): void {
    const old = this.#slots.get(key);
    if (old !== undefined) {
      this.#retired.push(old);
      this.#byId.fill(0);
    }
    const slab = this.#slab(h);
    this.#store.save(slab);
    this.#slots.set(key, slab.slot);
  }

  #slab(h: Head): SlabHead {
    if (!(h instanceof SlabHead)) {
      throw new TypeError(`expected a head of this bank for key '${h.key}'`);
    }
    return h;
  }

  /** Drops a key's head (idle-key eviction); false when the bank does not hold it. */
  delete(key: string): boolean {
    // The slot is retired, not released: this batch's working copy may still be saved into it.
    const slot = this.#slots.get(key);
    if (slot === undefined) return false;
    this.#slots.delete(key);
    this.#retired.push(slot);
    this.#byId.fill(0);
    return true;
  }

  #get(key: string): Head {
    const h = this.head(key);
    if (h === undefined) throw new RangeError(`expected a known model key, found '${key}'`);
    return h;
  }

  #blank(key: string, j = -1): Head {
    const h = blankHead(this.#store, key, j);
    this.#resetTheta(h);
    return h;
  }

  /** θ = identity in the frame: loc′ = 0, L′ = I; Adam restarts (natural: none stored). */
  #resetTheta(h: Head): void {
    h.steps = 0;
    if (this.#natural) {
      // Per key and batch while keys initialise: the natural step's identity shortcut (the same
      // numbers as identityTheta + refresh, without the general products).
      this.#applier.identityInFrame(h);
      return;
    }
    this.#adam.identityInFrame(h);
  }

  /** Frame = (sample mean, Cholesky of the covariance shrunk toward its diagonal). */
  #frameFromInit(h: Head): void {
    const init = h.init;
    if (init === null) return;
    shrunkFrame(init, this.#d, this.#natural, h.frameTril);
    // A loop, not set(): d elements, per key and batch while keys initialise.
    const loc = h.frameLoc, mean = init.mean;
    for (let a = 0; a < this.#d; a++) loc[a] = mean[a];
    this.#resetTheta(h);
  }
}
