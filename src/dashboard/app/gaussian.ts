/**
 * Gaussian geometry for the selected key: Mahalanobis², its χ² −log₁₀ p, and the kσ ellipses of
 * two-dimensional projections.
 *
 * @module
 */
import { chi2LogSf } from "../../model/chi2.ts";
import { MAX_NLP, type ParamsLike } from "./key_state.ts";

/** Mahalanobis² of `x` under the parameters (z = scale_tril⁻¹ (x − loc)). */
export function mahalanobis2(p: ParamsLike, x: readonly number[]): number {
  const d = p.dim;
  const z = new Array<number>(d).fill(0);
  let m2 = 0;
  for (let i = 0; i < d; i++) {
    let s = (x[i] ?? NaN) - p.loc[i];
    for (let j = 0; j < i; j++) s -= p.scale_tril[i][j] * z[j];
    z[i] = s / p.scale_tril[i][i];
    m2 += z[i] * z[i];
  }
  return m2;
}

/** −log₁₀ P(χ²_dim ≥ m2). */
export function nlpOfMahalanobis2(m2: number, dim: number): number {
  if (!Number.isFinite(m2)) return MAX_NLP;
  return Math.min(MAX_NLP, Math.max(0, -chi2LogSf(m2, dim) / Math.LN10));
}

/**
 * The kσ ellipse of the projection of N(loc, Σ) on dimensions (i, j), as `steps` points.
 */
export function ellipse(
  loc: readonly number[],
  cov: readonly (readonly number[])[],
  i: number,
  j: number,
  k: number,
  steps = 72,
): [number, number][] {
  const a = cov[i][i];
  const b = cov[i][j];
  const c = cov[j][j];
  const mid = (a + c) / 2;
  const rad = Math.sqrt(((a - c) / 2) ** 2 + b * b);
  const l1 = Math.max(0, mid + rad);
  const l2 = Math.max(0, mid - rad);
  const th = 0.5 * Math.atan2(2 * b, a - c);
  const [ct, st] = [Math.cos(th), Math.sin(th)];
  const out: [number, number][] = [];
  for (let s = 0; s <= steps; s++) {
    const u = (2 * Math.PI * s) / steps;
    const e1 = k * Math.sqrt(l1) * Math.cos(u);
    const e2 = k * Math.sqrt(l2) * Math.sin(u);
    out.push([loc[i] + e1 * ct - e2 * st, loc[j] + e1 * st + e2 * ct]);
  }
  return out;
}
