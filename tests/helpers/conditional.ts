/**
 * Generated streams for the conditional head: a mode (one-hot features) or a daily phase sets the
 * Gaussian's loc and covariance. Deterministic (seeded).
 *
 * @module
 */
import { mulberry32 } from "../../src/model/prng.ts";

/** A Gaussian: mean and lower Cholesky factor (row-major d×d). */
export interface Gaussian {
  readonly loc: number[];
  readonly tril: number[][];
}

/** Three modes in d = 3 with different means, scales and correlations. */
export const MODES_3D: readonly Gaussian[] = [
  { loc: [0, 0, 0], tril: [[1, 0, 0], [0, 1, 0], [0, 0, 1]] },
  { loc: [4, -3, 2], tril: [[2, 0, 0], [1.2, 1.5, 0], [-0.6, 0.8, 1]] },
  { loc: [-3, 5, 1], tril: [[0.5, 0, 0], [-0.3, 0.4, 0], [0.2, 0.1, 0.6]] },
];

/** Standard normal sampler (Box–Muller) on a seeded uniform. */
export function normalSampler(seed: number): () => number {
  const u = mulberry32(seed);
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(1 - u()));
    const a = 2 * Math.PI * u();
    spare = r * Math.sin(a);
    return r * Math.cos(a);
  };
}

/** x = loc + L·ε. */
export function sample(g: Gaussian, normal: () => number): number[] {
  const d = g.loc.length;
  const e = Array.from({ length: d }, normal);
  return g.loc.map((m, i) => {
    let s = m;
    for (let j = 0; j <= i; j++) s += g.tril[i][j] * e[j];
    return s;
  });
}

/** A stream of n rows: mode i picked uniformly at random, features one-hot(mode). */
export function modeStream(
  n: number,
  modes: readonly Gaussian[],
  seed = 7,
): { values: Float64Array; features: Float64Array; mode: Int32Array } {
  const d = modes[0].loc.length;
  const K = modes.length;
  const normal = normalSampler(seed);
  const pick = mulberry32(seed + 1);
  const values = new Float64Array(n * d);
  const features = new Float64Array(n * K);
  const mode = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const m = Math.min(K - 1, Math.floor(pick() * K));
    mode[i] = m;
    features[i * K + m] = 1;
    values.set(sample(modes[m], normal), i * d);
  }
  return { values, features, mode };
}

/** KL(N(μt, Σt) ‖ N(μl, Σl)) from Cholesky factors (row arrays). */
export function klGaussian(t: Gaussian, l: Gaussian): number {
  const d = t.loc.length;
  // Solve with L_l: A = L_l⁻¹ L_t, b = L_l⁻¹(μl − μt).
  const solve = (v: number[]) => {
    const z = new Array<number>(d).fill(0);
    for (let i = 0; i < d; i++) {
      let s = v[i];
      for (let j = 0; j < i; j++) s -= l.tril[i][j] * z[j];
      z[i] = s / l.tril[i][i];
    }
    return z;
  };
  let tr = 0;
  for (let c = 0; c < d; c++) {
    const col = solve(t.tril.map((row) => row[c]));
    for (const v of col) tr += v * v;
  }
  const b = solve(l.loc.map((m, i) => m - t.loc[i]));
  const maha = b.reduce((s, v) => s + v * v, 0);
  let logDet = 0;
  for (let i = 0; i < d; i++) logDet += Math.log(l.tril[i][i]) - Math.log(t.tril[i][i]);
  return 0.5 * (tr + maha - d) + logDet;
}
