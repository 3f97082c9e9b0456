/**
 * Generated streams for the conditional head: a mode (one-hot features) or a daily phase sets the
 * Gaussian's loc and covariance. Deterministic (seeded).
 *
 * @module
 */
import { mulberry32 } from "../../src/model/prng.ts";
import type { Publication } from "../../src/nats/acked_publisher.ts";
import { gaussian, klMvn } from "./synthetic.ts";

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
  return gaussian(mulberry32(seed));
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
  return klMvn(t.loc, t.tril, l.loc, l.tril);
}

/**
 * Rows [from, to) of a mode stream (d = 3, 3 features) as JSON arrays of `per` observations
 * `{v, features}` on `subject`, message ids `<idPrefix>-<first row>`.
 */
export function modePublications(
  s: { values: Float64Array; features: Float64Array },
  from: number,
  to: number,
  per: number,
  subject: string,
  idPrefix: string,
): Publication[] {
  const pubs: Publication[] = [];
  for (let i = from; i < to; i += per) {
    const obs = [];
    for (let r = i; r < i + per; r++) {
      obs.push({
        v: Array.from(s.values.subarray(3 * r, 3 * r + 3)),
        features: Array.from(s.features.subarray(3 * r, 3 * r + 3)),
      });
    }
    pubs.push({ subject, data: JSON.stringify(obs), msgID: `${idPrefix}-${i}` });
  }
  return pubs;
}
