/**
 * One Adam update on plain arrays, in two halves so a caller can reject a step before any state
 * changes: {@link adamPropose} writes the candidate parameters, {@link adamCommit} then advances
 * the moment estimates (the same arithmetic, so the committed moments are the proposed ones).
 *
 * @module
 */

/** Adam's hyper-parameters. */
export interface AdamHyper {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
}

/**
 * Writes into `next` the parameters after Adam step `t` (1-based) from gradient `g`, without
 * touching `theta`, `m` or `v`. Returns false — `next` then partly written — when the gradient,
 * a new parameter or a new second moment is not finite (an overflowing second moment would freeze
 * the parameter forever, so it counts like a NaN).
 */
export function adamPropose(
  theta: ArrayLike<number>,
  m: ArrayLike<number>,
  v: ArrayLike<number>,
  g: ArrayLike<number>,
  t: number,
  hp: AdamHyper,
  next: Float64Array,
): boolean {
  const b1 = hp.beta1, b2 = hp.beta2;
  const c1 = 1 - Math.pow(b1, t);
  const c2 = 1 - Math.pow(b2, t);
  const P = next.length;
  let ok = true;
  for (let i = 0; i < P; i++) {
    if (!Number.isFinite(g[i])) {
      ok = false;
      break;
    }
    const mi = b1 * m[i] + (1 - b1) * g[i];
    const vi = b2 * v[i] + (1 - b2) * g[i] * g[i];
    next[i] = theta[i] - (hp.lr * (mi / c1)) / (Math.sqrt(vi / c2) + hp.epsilon);
    if (!Number.isFinite(next[i]) || !Number.isFinite(vi)) ok = false;
  }
  return ok;
}

/** Advances the first and second moment estimates `m`, `v` by gradient `g` (in place). */
export function adamCommit(
  m: Float64Array,
  v: Float64Array,
  g: ArrayLike<number>,
  hp: AdamHyper,
): void {
  const b1 = hp.beta1, b2 = hp.beta2;
  const P = m.length;
  for (let i = 0; i < P; i++) {
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
  }
}
