/**
 * The natural step applied to one head (for `HeadBank`): decays its memory, moves
 * (loc, scale_tril) to the weighted MLE of everything seen (`model/natural_step.ts`), and re-centres
 * the frame there with θ back to identity. Holds the float64 scratch it needs.
 *
 * @module
 */
import type { HeadConfig } from "../config/head_config.ts";
import { type NaturalScratch, naturalStep, newNaturalScratch } from "../model/natural_step.ts";
import { diagForward, diagInverse } from "../model/diag_transform.ts";
import { identityParams, identityTheta, thetaLength } from "../model/parameterisation.ts";
import type { Head } from "./head.ts";

/** Applies natural steps to heads of one bank (dimension, diagonal transform, λ fixed). */
export class NaturalApplier {
  readonly #d: number;
  readonly #lambda: number;
  readonly #log: (line: string) => void;
  readonly #nat: NaturalScratch;
  readonly #locS: Float64Array;
  readonly #trilS: Float64Array;
  /** θ of the identity in the frame, and f(r) of its diagonal (1 up to rounding). */
  readonly #thetaIdentity: Float64Array;
  readonly #oneDiag: number;

  constructor(config: HeadConfig, lambda: number, log: (line: string) => void) {
    this.#d = config.dim;
    this.#lambda = lambda;
    this.#log = log;
    this.#nat = newNaturalScratch(config.dim);
    this.#locS = new Float64Array(config.dim);
    this.#trilS = new Float64Array(config.dim * config.dim);
    this.#thetaIdentity = new Float64Array(thetaLength(config.dim));
    identityTheta(config.dim, config.diag, this.#thetaIdentity);
    this.#oneDiag = diagForward(config.diag, diagInverse(config.diag, 1));
  }

  /** See `HeadBank.stepNatural`. */
  step(h: Head, stats: ArrayLike<number>, offset: number, learned: number): boolean {
    if (learned <= 0) return false;
    const d = this.#d;
    const lam = this.#lambda;
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
    this.identityInFrame(h);
    h.steps++;
    return true;
  }

  /**
   * θ = identity in the (new) frame, and the effective parameters that HeadBank's refresh would
   * derive from it — loc − μ₀ = 0, L = L₀·diag(f(r₁)) — without the general products (same
   * numbers: the products' other terms are exact zeros).
   */
  identityInFrame(h: Head): void {
    // Loops, not set()/fill(): a few elements, per key and batch while keys initialise.
    const theta = h.theta, id = this.#thetaIdentity, locC = h.locC;
    for (let i = 0; i < id.length; i++) theta[i] = id[i];
    for (let a = 0; a < locC.length; a++) locC[a] = 0;
    h.logDet = identityParams(h.frameTril, this.#oneDiag, this.#d, h.tril);
  }
}
