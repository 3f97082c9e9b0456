/**
 * The natural-gradient step of a Gaussian head, from the fused kernel's whitened statistics.
 *
 * For N(μ, Σ), the natural-gradient step on a batch's weighted mean NLL, with step size
 * η = W/(W_seen + W) (W the batch's weight sum, W_seen the decayed weight of everything before),
 * is the exact recursive update of the weighted moments:
 *
 *     δ = x̄ − μ,   μ' = μ + η·δ,   Σ' = (1 − η)·Σ + η·S + η·(1 − η)·δδᵀ
 *
 * (x̄, S: the batch's weighted mean and covariance about x̄). The kernel gives, with the
 * parameters from before the batch, z = L⁻¹(x − μ) and [Σw, Σw·z, Σw·z·zᵀ]; in that whitened
 * frame δ = L·δz with δz = Σw·z/W, and with E = Σw·z·zᵀ/W,
 *
 *     M = (1 − η)·I + η·E − η²·δz·δzᵀ,   Σ' = L·M·Lᵀ,   L' = L·chol(M),   μ' = μ + η·L·δz.
 *
 * Exponential forgetting with horizon H (λ = 1 − 1/H) enters through the weights: W_seen is decayed
 * by λ^m for a batch of m learned rows and row r of the batch carries λ^(rows after it), so the
 * result is the weighted MLE of the whole stream, whatever the batching.
 *
 * @module
 */

/** Forgetting factor of a horizon: λ = 1 − 1/H (1 for an infinite horizon). */
export function forgetting(horizon: number): number {
  return Number.isFinite(horizon) ? 1 - 1 / horizon : 1;
}

/** Σ λ^k and Σ λ^{2k} for k = 0..m−1: weight and squared weight of a batch of m learned rows. */
export function batchWeights(lambda: number, m: number): { w: number; w2: number } {
  if (lambda === 1) return { w: m, w2: m };
  const lm = Math.pow(lambda, m);
  return { w: (1 - lm) / (1 - lambda), w2: (1 - lm * lm) / (1 - lambda * lambda) };
}

/** Work arrays of {@link naturalStep} for one dimension. */
export interface NaturalScratch {
  readonly m: Float64Array;
  readonly c: Float64Array;
  readonly dz: Float64Array;
  readonly lc: Float64Array;
}

/** Fresh {@link NaturalScratch} for dimension d. */
export function newNaturalScratch(d: number): NaturalScratch {
  return {
    m: new Float64Array(d * d),
    c: new Float64Array(d * d),
    dz: new Float64Array(d),
    lc: new Float64Array(d * d),
  };
}

/**
 * One natural step in place: `loc` (d) and `tril` (d×d row-major lower) are the parameters the
 * statistics were computed with; `stats` at `offset` is [Σrw, W, Σw·z (d), Σw·z·zᵀ packed lower];
 * `wSeen` the (already decayed) weight of the past. Returns η, or −1 (parameters untouched) when
 * the update is not positive definite or not finite, 0 when the batch has no weight.
 */
export function naturalStep(
  loc: Float64Array,
  tril: Float64Array,
  d: number,
  stats: ArrayLike<number>,
  offset: number,
  wSeen: number,
  sc: NaturalScratch,
): number {
  const W = stats[offset + 1];
  if (!(W > 0)) return 0;
  const eta = W / (wSeen + W);
  const { m, c, dz, lc } = sc;
  for (let a = 0; a < d; a++) dz[a] = stats[offset + 2 + a] / W;
  let q = offset + 2 + d;
  for (let a = 0; a < d; a++) {
    for (let b = 0; b <= a; b++) {
      const v = eta * (stats[q++] / W) - eta * eta * dz[a] * dz[b] + (a === b ? 1 - eta : 0);
      m[a * d + b] = v;
      m[b * d + a] = v;
    }
  }
  if (!choleskyInPlace(m, d, c)) return -1;
  // loc' = loc + η·L·δz (computed from the last component down, so δz is overwritten only after
  // its last use); L' = L·C (both lower).
  for (let a = d - 1; a >= 0; a--) {
    let s = 0;
    for (let b = 0; b <= a; b++) s += tril[a * d + b] * dz[b];
    const v = loc[a] + eta * s;
    if (!Number.isFinite(v)) return -1;
    dz[a] = v;
  }
  for (let a = 0; a < d; a++) {
    for (let b = 0; b <= a; b++) {
      let s = 0;
      for (let k = b; k <= a; k++) s += tril[a * d + k] * c[k * d + b];
      if (!Number.isFinite(s)) return -1;
      lc[a * d + b] = s;
    }
    if (!(lc[a * d + a] > 0)) return -1;
  }
  loc.set(dz);
  for (let a = 0; a < d; a++) for (let b = 0; b <= a; b++) tril[a * d + b] = lc[a * d + b];
  return eta;
}

/** Lower Cholesky factor of the symmetric `a` into `out` (upper part zeroed); false if not PD. */
function choleskyInPlace(a: Float64Array, d: number, out: Float64Array): boolean {
  out.fill(0);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * d + j];
      for (let k = 0; k < j; k++) s -= out[i * d + k] * out[j * d + k];
      if (i === j) {
        if (!(s > 0)) return false;
        out[i * d + i] = Math.sqrt(s);
      } else out[i * d + j] = s / out[j * d + j];
    }
  }
  return true;
}

/** Kish effective sample size (Σw)²/Σw². */
export function kishN(w: number, w2: number): number {
  return w2 > 0 ? (w * w) / w2 : 0;
}

/** ρ(m²): 1 up to c, then e^{−(m² − c)/2}, floored at floor·c/m² (the kernel's robust weight). */
export function robustWeight(m2: number, c: number, floor: number): number {
  return m2 <= c ? 1 : Math.max((floor * c) / m2, Math.exp(-0.5 * (m2 - c)));
}

/**
 * The fused kernel's statistics [Σrw, Σw, Σw·z, Σw·z·zᵀ] for one key, on the host, with the key's
 * own robust cut `c` (a young key's predictive quantile, wider than the χ² one): rows (row-major,
 * `count` of them) with their row weights, z = L⁻¹(x − loc). Written at out[offset..].
 */
export function hostStats(
  rows: Float64Array,
  rowWeights: ArrayLike<number>,
  count: number,
  loc: Float64Array,
  tril: Float64Array,
  d: number,
  c: number,
  floor: number,
  out: Float64Array,
  offset = 0,
): void {
  const z = new Float64Array(d);
  const S = 2 + d + (d * (d + 1)) / 2;
  out.fill(0, offset, offset + S);
  for (let i = 0; i < count; i++) {
    let m2 = 0;
    for (let a = 0; a < d; a++) {
      let s = rows[i * d + a] - loc[a];
      for (let b = 0; b < a; b++) s -= tril[a * d + b] * z[b];
      z[a] = s / tril[a * d + a];
      m2 += z[a] * z[a];
    }
    const rw = rowWeights[i];
    out[offset] += rw;
    const w = rw * robustWeight(m2, c, floor);
    if (!(w > 0)) continue;
    out[offset + 1] += w;
    let p = offset + 2;
    for (let a = 0; a < d; a++) out[p++] += w * z[a];
    for (let a = 0; a < d; a++) for (let b = 0; b <= a; b++) out[p++] += w * z[a] * z[b];
  }
}
