/**
 * Change detection for a head: a one-sided CUSUM on the standardised prequential Mahalanobis².
 *
 * Each learned row contributes u = (m²/κ − d)/√(2d), capped at {@link CUSUM_CAP}, where
 * κ = E[m²]/d = (n + 1)/(n − d − 2) is the predictive inflation for a head with (effective) n
 * observations (m²·(n − d)/(d·(n + 1)) ~ F(d, n − d), whose mean is (n − d)/(n − d − 2)), so
 * u has mean 0 and unit variance for a large n under no change, young keys included. The sum
 * S ← max(0, S + u − k) with drift k = {@link CUSUM_DRIFT} crosses the limit h (`change_threshold`)
 * about once in ~10⁵–10⁶ rows of a stationary stream (d = 3: none in 10⁶ rows of the tests'
 * streams at h = 24), within ~10 rows of a 3σ mean shift and within a few hundred rows of a
 * doubled variance. The cap keeps isolated outliers (1 % at 10σ) from triggering it.
 *
 * @module
 */

/** Allowance per row, in standard deviations of m². */
export const CUSUM_DRIFT = 0.25;
/** Largest contribution of one row (isolated outliers must not trigger a restart). */
export const CUSUM_CAP = 4;

/** Effective n below which the detector waits (κ is undefined or too noisy). */
export function cusumMinN(d: number): number {
  return 2 * (d + 2);
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

/** Prior weight the old parameters keep after a restart (pseudo-observations). */
export function restartWeight(d: number): number {
  return d + 2;
}
