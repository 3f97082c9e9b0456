/**
 * Scoring a key's rows of a batch with its parameters from before the batch: while initialising,
 * against the running moments of its first rows; afterwards, against the MVN its network gives at
 * each row's context, mapped from the whitened frame to data units; then the rows' sequence
 * numbers, p-values (χ²_d tails of m²) and anomaly flags. Also the network's outputs at given
 * contexts and the MVN at one context.
 *
 * @module
 */
import type { HeadConfig } from "../../config/head_config.ts";
import type { Chi2Tail } from "../../model/chi2_tail.ts";
import { lowerMatMul, lowerMatVec } from "../../model/linalg.ts";
import { EngineError } from "../errors.ts";
import { trilFromTheta } from "../../model/parameterisation.ts";
import type { DiagTransform, ScoreBatch } from "../types.ts";
import { absorb, HALF_LOG_2PI, shrunkCholesky, solveRow, whiten } from "./frame.ts";
import type { CondKey } from "./key_state.ts";
import { forwardTf, type NetLayout, paramTensors, type Tf } from "./network.ts";

/** The tfjs namespace, the network and the head's configuration. */
export interface NetShape {
  readonly tf: Tf;
  readonly layout: NetLayout;
  readonly config: HeadConfig;
  /** Context width F. */
  readonly F: number;
}

/** Raw network outputs [m, P] at weights θ for standardised contexts (on the right backend). */
export async function netOutputs(
  net: NetShape,
  theta: Float64Array,
  stdCtx: Float32Array,
  m: number,
): Promise<Float32Array> {
  const { tf, layout, config, F } = net;
  const t = tf.tidy(() => {
    const params = paramTensors(tf, layout, theta);
    return forwardTf(tf, params, tf.tensor2d(stdCtx, [m, F]), config.activation);
  });
  try {
    return await t.data() as Float32Array;
  } finally {
    t.dispose();
  }
}

/** Zeroed score arrays for n rows of dimension d. */
export function newScoreBatch(n: number, d: number): ScoreBatch {
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

/** Initialising key: rows scored against its running moments (a new key: this batch's own). */
export function scoreInit(
  h: CondKey,
  rows: number[],
  values: Float64Array,
  d: number,
  out: ScoreBatch,
  learns: (i: number) => boolean,
): void {
  let init = h.init!;
  if (init.count < 2) {
    // Not enough to score against: draft from this batch (not prequential; warm-up covers it).
    const draft = { count: init.count, mean: init.mean.slice(), scatter: init.scatter.slice() };
    const use = rows.filter(learns);
    for (const i of use.length > 0 ? use : rows) absorb(draft, values, i, d);
    init = draft;
  }
  const loc = init.mean;
  const L = shrunkCholesky(init, d);
  let logDet = 0;
  for (let a = 0; a < d; a++) logDet += Math.log(L[a * d + a]);
  const c = -logDet - d * HALF_LOG_2PI;
  const z = new Float64Array(d);
  for (const i of rows) {
    const m2 = solveRow(values, i * d, loc, 0, L, d, z);
    out.mahalanobis2[i] = m2;
    out.logProb[i] = c - 0.5 * m2;
    for (let a = 0; a < d; a++) out.contrib[i * d + a] = z[a] * z[a];
  }
}

/**
 * Scores a key's rows with its network: `raw` holds the network's outputs [rows, P] at the rows'
 * standardised contexts (parameters from before the batch).
 */
export function scoreNet(
  h: CondKey,
  rows: number[],
  values: Float64Array,
  raw: Float32Array,
  P: number,
  d: number,
  diag: DiagTransform,
  out: ScoreBatch,
): void {
  const xw = new Float64Array(d);
  const z = new Float64Array(d);
  const lp = new Float64Array(d * d);
  const c0 = -h.frameLogDet - d * HALF_LOG_2PI;
  for (let r = 0; r < rows.length; r++) {
    const i = rows[r];
    whiten(values, i * d, h, d, xw);
    const o = raw.subarray(r * P, r * P + P);
    trilFromTheta(o, d, diag, lp);
    let logDet = 0;
    for (let a = 0; a < d; a++) logDet += Math.log(lp[a * d + a]);
    const m2 = solveRow(xw, 0, o, 0, lp, d, z);
    out.mahalanobis2[i] = m2;
    out.logProb[i] = c0 - logDet - 0.5 * m2;
    for (let a = 0; a < d; a++) out.contrib[i * d + a] = z[a] * z[a];
  }
}

/** The MVN (data units) of an initialising key: its running moments. */
export function initMvn(h: CondKey, d: number): { loc: Float64Array; L: Float64Array } {
  return { loc: h.init!.mean.slice(), L: shrunkCholesky(h.init!, d) };
}

/** The MVN (data units) of a key from its network's outputs `raw` at one context. */
export function mvnFromOutputs(
  h: CondKey,
  raw: Float32Array,
  d: number,
  diag: DiagTransform,
): { loc: Float64Array; L: Float64Array } {
  const lp = new Float64Array(d * d);
  trilFromTheta(raw, d, diag, lp);
  const L = new Float64Array(d * d);
  lowerMatMul(h.frameTril, lp, d, L);
  const loc = new Float64Array(d);
  lowerMatVec(h.frameTril, raw.subarray(0, d), d, loc);
  for (let a = 0; a < d; a++) loc[a] += h.frameLoc[a];
  return { loc, L };
}

/** Refuses a batch with a non-finite score (m² NaN or infinite: an extreme value). */
export function checkFiniteScores(out: ScoreBatch): void {
  for (let i = 0; i < out.n; i++) {
    if (!(out.mahalanobis2[i] < Infinity)) {
      throw new EngineError(
        "non_finite_input",
        `expected finite scores, found m² ${out.mahalanobis2[i]} in row ${i}`,
      );
    }
  }
}

/**
 * Sequence numbers, p-values (NaN without a tail) and anomaly flags of a key's scored rows: a row
 * is flagged when its m² exceeds `m2Alpha` once the key has seen `flagFrom` observations
 * (`observations` before the batch, plus the batch's counted rows up to it).
 */
export function flagRows(
  out: ScoreBatch,
  rows: number[],
  observations: number,
  flagFrom: number,
  counted: (i: number) => boolean,
  tail: Chi2Tail | null,
  m2Alpha: number,
): void {
  let obs = observations;
  for (const i of rows) {
    if (counted(i)) obs++;
    const m2 = out.mahalanobis2[i];
    out.pValue[i] = tail !== null ? tail.sf(m2) : NaN;
    out.seq[i] = obs > 0 ? obs : 1;
    out.anomaly[i] = m2 > m2Alpha && obs >= flagFrom ? 1 : 0;
  }
}
