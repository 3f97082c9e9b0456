/**
 * Seeded synthetic streams for tests: a small PRNG, Gaussian draws and MVN rows from a known
 * (loc, scale_tril), plus the closed-form KL divergence between two MVNs.
 *
 * @module
 */

import { mulberry32 } from "../../src/model/prng.ts";

/** Seeded uniform [0, 1) (mulberry32). */
export const rng: (seed: number) => () => number = mulberry32;

/** Standard normal draws (Box–Muller). */
export function gaussian(u: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(1 - u()));
    const th = 2 * Math.PI * u();
    spare = r * Math.sin(th);
    return r * Math.cos(th);
  };
}

/** n rows of MVN(loc, L·Lᵀ), row-major. */
export function mvnRows(n: number, loc: number[], tril: number[][], g: () => number): Float64Array {
  const d = loc.length;
  const out = new Float64Array(n * d);
  const e = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < d; a++) e[a] = g();
    for (let a = 0; a < d; a++) {
      let s = loc[a];
      for (let b = 0; b <= a; b++) s += tril[a][b] * e[b];
      out[i * d + a] = s;
    }
  }
  return out;
}

/** KL(N(m0, L0 L0ᵀ) ‖ N(m1, L1 L1ᵀ)) in closed form, for lower-triangular factors. */
export function klMvn(m0: number[], l0: number[][], m1: number[], l1: number[][]): number {
  const d = m0.length;
  // M = L1⁻¹ L0 (forward substitution, column by column); tr(Σ1⁻¹Σ0) = ‖M‖²_F.
  let tr = 0;
  for (let c = 0; c < d; c++) {
    const col = new Array<number>(d).fill(0);
    for (let a = 0; a < d; a++) {
      let s = l0[a][c];
      for (let b = 0; b < a; b++) s -= l1[a][b] * col[b];
      col[a] = s / l1[a][a];
      tr += col[a] * col[a];
    }
  }
  const dm = new Array<number>(d).fill(0);
  let quad = 0;
  for (let a = 0; a < d; a++) {
    let s = m1[a] - m0[a];
    for (let b = 0; b < a; b++) s -= l1[a][b] * dm[b];
    dm[a] = s / l1[a][a];
    quad += dm[a] * dm[a];
  }
  let logdet = 0;
  for (let a = 0; a < d; a++) logdet += 2 * Math.log(l1[a][a]) - 2 * Math.log(l0[a][a]);
  return 0.5 * (tr + quad - d + logdet);
}
