/**
 * The Adam step applied to one head (for `HeadBank`, optimizer `adam`): the exact NLL gradient
 * from the fused statistics (`model/gradient.ts`), then Adam on θ (`model/adam.ts`). Its own module,
 * like `natural_apply.ts`, so the bank keeps bookkeeping and each optimizer keeps its scratch.
 *
 * @module
 */
import type { HeadConfig } from "../config/head_config.ts";
import { adamCommit, adamPropose } from "../model/adam.ts";
import { diagForward } from "../model/diag_transform.ts";
import { gradientFromStats, type GradientScratch, newGradientScratch } from "../model/gradient.ts";
import {
  diagOffset,
  effectiveParams,
  identityTheta,
  thetaLength,
} from "../model/parameterisation.ts";
import type { Head } from "./head.ts";

/** Applies Adam steps to heads of one bank (dimension and hyper-parameters fixed). */
export class AdamStepper {
  readonly #cfg: HeadConfig;
  readonly #d: number;
  readonly #P: number;
  readonly #log: (line: string) => void;
  readonly #scratchL: Float64Array;
  readonly #grad: Float64Array;
  readonly #scratch: GradientScratch;
  readonly #thetaNew: Float64Array;

  constructor(config: HeadConfig, log: (line: string) => void) {
    this.#cfg = config;
    this.#d = config.dim;
    this.#P = thetaLength(config.dim);
    this.#log = log;
    this.#scratchL = new Float64Array(this.#d * this.#d);
    this.#grad = new Float64Array(this.#P);
    this.#scratch = newGradientScratch(config.dim);
    this.#thetaNew = new Float64Array(this.#P);
  }

  /** See `HeadBank.step`. */
  step(h: Head, stats: ArrayLike<number>, offset: number): boolean {
    const key = h.key;
    if (!(stats[offset] > 0)) return false;
    const d = this.#d;
    const P = this.#P;
    const cfg = this.#cfg;
    const g = gradientFromStats(h.theta, stats, d, cfg.diag, this.#grad, offset, this.#scratch);
    const t = h.steps + 1;
    const next = this.#thetaNew;
    let ok = adamPropose(h.theta, h.m, h.v, g, t, cfg, next);
    if (ok) {
      const p0 = diagOffset(d);
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
    adamCommit(h.m, h.v, g, cfg);
    for (let i = 0; i < P; i++) h.theta[i] = next[i];
    h.steps = t;
    this.refresh(h);
    return true;
  }

  /** θ = identity in the frame (loc′ = 0, L′ = I) with Adam's moments restarted. */
  identityInFrame(h: Head): void {
    identityTheta(this.#d, this.#cfg.diag, h.theta);
    h.m.fill(0);
    h.v.fill(0);
    this.refresh(h);
  }

  /** The head's effective parameters (locC, tril, logDet) from its frame and θ. */
  refresh(h: Head): void {
    const lp = this.#scratchL;
    h.logDet = effectiveParams(h.frameTril, h.theta, this.#d, this.#cfg.diag, lp, h.tril, h.locC);
  }
}
