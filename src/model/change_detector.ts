/**
 * Change detection for a head: a one-sided CUSUM on the standardised prequential Mahalanobis².
 *
 * Each learned row contributes u = (m²/κ − d)/√(2d), capped at {@link CUSUM_CAP}, where
 * κ = E[m²]/d = (n + 1)/(n − d − 2) is the predictive inflation for a head with (effective) n
 * observations (m²·(n − d)/(d·(n + 1)) ~ F(d, n − d), whose mean is (n − d)/(n − d − 2)), so
 * u has mean 0 and unit variance for a large n under no change, young keys included. The sum
 * S ← max(0, S + u − k) with drift k = {@link CUSUM_DRIFT} crosses the limit h (`change_threshold`,
 * default 400) after ~230 rows of a 3σ mean shift (each row adds at most cap − drift = 1.75): a
 * change stays an anomaly while it is young and becomes the new normal once it has lasted. The cap
 * keeps isolated outliers from triggering it.
 *
 * @module
 */

/** Allowance per row, in standard deviations of m². */
export const CUSUM_DRIFT = 0.25;
/** Largest contribution of one row (isolated outliers must not trigger a restart). */
export const CUSUM_CAP = 2;

/**
 * Effective n below which the detector waits. A young key's estimation error biases the m² of
 * every row scored with it alike (by ~√(d/n) in u), and a batch of such rows would add up to a
 * false alarm; young keys re-learn fast anyway (their step sizes are large).
 */
export function cusumMinN(d: number): number {
  return 64 * (d + 2);
}

/** One row's update of the CUSUM S; returns the new S (the caller compares it with h). */
export function cusumStep(s: number, m2: number, n: number, d: number): number {
  if (!(n >= cusumMinN(d))) return s;
  const kappa = (n + 1) / (n - d - 2);
  let u = (m2 / kappa - d) / Math.sqrt(2 * d);
  if (!(u < CUSUM_CAP)) u = CUSUM_CAP;
  const next = s + u - CUSUM_DRIFT;
  return next > 0 ? next : 0;
}

/**
 * Runs the CUSUM over rows `rows` of `m2` (in order) from S = `s`; returns the index (into `rows`)
 * of the first row at which S exceeds `h`, or −1, and the final S in `out[0]` (S after the alarm row
 * when there is one). Same arithmetic as {@link cusumStep}, hoisted out of the row loop.
 */
export function cusumRun(
  m2: ArrayLike<number>,
  rows: ArrayLike<number>,
  s: number,
  n: number,
  d: number,
  h: number,
  out: Float64Array,
): number {
  out[0] = s;
  if (!(n >= cusumMinN(d))) return -1;
  const kappa = (n + 1) / (n - d - 2);
  const a = 1 / (kappa * Math.sqrt(2 * d));
  const b = d / Math.sqrt(2 * d) + CUSUM_DRIFT;
  const cap = CUSUM_CAP - CUSUM_DRIFT;
  for (let r = 0; r < rows.length; r++) {
    let u = m2[rows[r]] * a - b;
    if (!(u < cap)) u = cap;
    s += u;
    if (s < 0) s = 0;
    else if (s > h) {
      out[0] = s;
      return r;
    }
  }
  out[0] = s;
  return -1;
}

/**
 * Prior weight the old parameters keep after a restart (pseudo-observations): enough that a false
 * restart (a slowly wandering process) keeps the key's noise scale, small next to the 2,000
 * observations within which a real change must be re-learnt.
 */
export function restartWeight(d: number): number {
  return 16 * (d + 2);
}
