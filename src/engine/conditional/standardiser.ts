/**
 * The online feature standardiser of a key: running mean and variance (Welford) of its context
 * columns, and the standardised float32 rows the network reads.
 *
 * @module
 */

/** Running mean and sum of squared deviations of the context columns. */
export interface Standardiser {
  count: number;
  readonly mean: Float64Array;
  readonly m2: Float64Array;
}

/** A standardiser of F columns with nothing seen yet. */
export function newStandardiser(F: number): Standardiser {
  return { count: 0, mean: new Float64Array(F), m2: new Float64Array(F) };
}

/** Welford update of the feature standardiser with ctx[at..at+F). */
export function welford(
  s: { count: number; mean: Float64Array; m2: Float64Array },
  ctx: Float64Array,
  at: number,
  F: number,
): void {
  s.count++;
  for (let a = 0; a < F; a++) {
    const x = ctx[at + a];
    const delta = x - s.mean[a];
    s.mean[a] += delta / s.count;
    s.m2[a] += delta * (x - s.mean[a]);
  }
}

/** Mean and standard deviation of the standardiser (sd 1 while unknown or for a constant feature). */
export function standardiserMoments(
  s: { count: number; mean: Float64Array; m2: Float64Array },
  F: number,
): { mean: Float64Array; sd: Float64Array } {
  const mean = new Float64Array(F);
  const sd = new Float64Array(F).fill(1);
  if (s.count >= 1) mean.set(s.mean);
  if (s.count >= 2) {
    for (let a = 0; a < F; a++) {
      const v = Math.sqrt(s.m2[a] / s.count);
      if (v > 1e-8 * (1 + Math.abs(s.mean[a]))) sd[a] = v;
    }
  }
  return { mean, sd };
}

/** Standardised context rows of `rows` (float32, row-major) with the standardiser as it is. */
export function standardiseRows(
  s: Standardiser,
  ctx: Float64Array,
  rows: number[],
  F: number,
): Float32Array {
  const { mean, sd } = standardiserMoments(s, F);
  const x = new Float32Array(rows.length * F);
  for (let r = 0; r < rows.length; r++) {
    for (let a = 0; a < F; a++) x[r * F + a] = (ctx[rows[r] * F + a] - mean[a]) / sd[a];
  }
  return x;
}

/** One raw context (zeros when none) standardised (float32). */
export function standardiseOne(
  s: Standardiser,
  context: Float64Array | null,
  F: number,
): Float32Array {
  const { mean, sd } = standardiserMoments(s, F);
  const x = new Float32Array(F);
  for (let a = 0; a < F; a++) x[a] = context === null ? 0 : (context[a] - mean[a]) / sd[a];
  return x;
}
