/**
 * The op-by-op baseline ("forum recipe"): an MVN head written with tfjs ops and autodiff, no fused
 * kernel. Variables loc (d), raw strictly-lower (d(d−1)/2, row by row) and raw diagonal (d) give
 * scale_tril = lower + diag(f(raw)); log_prob solves L z = x − loc by forward substitution with
 * ops (tfjs has no triangular solve); loss = −mean(w · log_prob); `tf.train.adam` minimises it.
 *
 * Used to check the gradient the fused statistics give (tests) and as the benchmark baseline.
 *
 * @module
 */
import type * as tfNs from "@tensorflow/tfjs";
import type { DiagTransform } from "./types.ts";

type Tf = typeof tfNs;

const LOG_2PI = Math.log(2 * Math.PI);
const SOFTPLUS_EPS = 1e-5;

/** One head's tfjs variables, in the θ order of `model/parameterisation.ts`: loc, strictly-lower, raw diag. */
export interface ReferenceHead {
  readonly d: number;
  readonly diag: DiagTransform;
  readonly loc: tfNs.Variable<tfNs.Rank.R1>;
  /** Strictly-lower entries row by row (absent when d = 1). */
  readonly lower: tfNs.Variable<tfNs.Rank.R1> | null;
  readonly rawDiag: tfNs.Variable<tfNs.Rank.R1>;
  dispose(): void;
}

/** Creates a head from θ = [loc (d), strictly-lower (d(d−1)/2), raw diag (d)]. */
export function createReferenceHead(
  tf: Tf,
  d: number,
  diag: DiagTransform,
  theta: ArrayLike<number>,
): ReferenceHead {
  const m = (d * (d - 1)) / 2;
  if (theta.length !== 2 * d + m) {
    throw new RangeError(`expected θ of length ${2 * d + m} for d=${d}, found ${theta.length}`);
  }
  const t = Array.from(theta);
  const loc = tf.variable(tf.tensor1d(t.slice(0, d)));
  const lower = m > 0 ? tf.variable(tf.tensor1d(t.slice(d, d + m))) : null;
  const rawDiag = tf.variable(tf.tensor1d(t.slice(d + m)));
  return {
    d,
    diag,
    loc,
    lower,
    rawDiag,
    dispose() {
      loc.dispose();
      lower?.dispose();
      rawDiag.dispose();
    },
  };
}

/** f(raw) with tfjs ops (differentiable). */
export function diagTransform(tf: Tf, kind: DiagTransform, raw: tfNs.Tensor1D): tfNs.Tensor1D {
  switch (kind) {
    case "softplus":
      return tf.add(tf.softplus(raw), SOFTPLUS_EPS);
    case "elu1p":
      return tf.add(tf.elu(raw), 1);
    case "exp":
      return tf.exp(raw);
  }
}

/** scale_tril = lower + diag(f(raw)) as a d×d tensor, built with differentiable gathers. */
export function scaleTril(tf: Tf, head: ReferenceHead): tfNs.Tensor2D {
  const d = head.d;
  // Index maps into [0, values…]: position 0 is the zero every other entry takes.
  const lowerIdx = new Int32Array(d * d);
  const diagIdx = new Int32Array(d * d);
  let p = 1;
  for (let a = 1; a < d; a++) for (let b = 0; b < a; b++) lowerIdx[a * d + b] = p++;
  for (let a = 0; a < d; a++) diagIdx[a * d + a] = a + 1;
  const zero = tf.zeros([1]);
  const diagPart = tf.gather(
    tf.concat([zero, diagTransform(tf, head.diag, head.rawDiag)]),
    tf.tensor1d(diagIdx, "int32"),
  );
  if (head.lower === null) return tf.reshape(diagPart, [d, d]);
  const lowerPart = tf.gather(tf.concat([zero, head.lower]), tf.tensor1d(lowerIdx, "int32"));
  return tf.reshape(tf.add(lowerPart, diagPart), [d, d]);
}

/** z = L⁻¹(x − loc) for rows x (n×d), by forward substitution one column at a time. */
export function whiten(tf: Tf, head: ReferenceHead, x: tfNs.Tensor2D): tfNs.Tensor2D {
  return _whitenWith(tf, scaleTril(tf, head), head, x);
}

function _whitenWith(
  tf: Tf,
  L: tfNs.Tensor2D,
  head: ReferenceHead,
  x: tfNs.Tensor2D,
): tfNs.Tensor2D {
  const r = tf.sub(x, head.loc);
  const cols: tfNs.Tensor1D[] = [];
  for (let j = 0; j < head.d; j++) {
    let s: tfNs.Tensor1D = tf.reshape(tf.slice(r, [0, j], [-1, 1]), [-1]);
    if (j > 0) {
      const zPrev = tf.stack(cols, 1) as tfNs.Tensor2D;
      const lRow = tf.reshape(tf.slice(L, [j, 0], [1, j]), [j, 1]) as tfNs.Tensor2D;
      s = tf.sub(s, tf.reshape(tf.matMul(zPrev, lRow), [-1]));
    }
    cols.push(tf.div(s, tf.reshape(tf.slice(L, [j, j], [1, 1]), [1])));
  }
  return tf.stack(cols, 1) as tfNs.Tensor2D;
}

/** log N(x; loc, L Lᵀ) per row, and Mahalanobis² |z|². */
export function logProbAndM2(
  tf: Tf,
  head: ReferenceHead,
  x: tfNs.Tensor2D,
): { logProb: tfNs.Tensor1D; m2: tfNs.Tensor1D } {
  const z = _whitenWith(tf, scaleTril(tf, head), head, x);
  const logDet = tf.sum(tf.log(diagTransform(tf, head.diag, head.rawDiag)));
  const m2 = tf.sum(tf.square(z), 1) as tfNs.Tensor1D;
  const logProb = tf.sub(tf.sub(tf.mul(m2, -0.5), logDet), (head.d / 2) * LOG_2PI);
  return { logProb: logProb as tfNs.Tensor1D, m2 };
}

/** log N(x; loc, L Lᵀ) per row. */
export function logProb(tf: Tf, head: ReferenceHead, x: tfNs.Tensor2D): tfNs.Tensor1D {
  return logProbAndM2(tf, head, x).logProb;
}

/** loss = −mean(w · log_prob) over the n rows (w constant). */
export function referenceLoss(
  tf: Tf,
  head: ReferenceHead,
  x: tfNs.Tensor2D,
  w: tfNs.Tensor1D,
): tfNs.Scalar {
  return tf.neg(tf.mean(tf.mul(w, logProb(tf, head, x))));
}

/** Loss and its gradient with respect to θ (loc, strictly-lower, raw diag), by tfjs autodiff. */
export function referenceLossAndGrads(
  tf: Tf,
  head: ReferenceHead,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
): { loss: number; grads: Float64Array } {
  const n = w.length;
  const d = head.d;
  const vars: tfNs.Variable[] = [head.loc, ...(head.lower ? [head.lower] : []), head.rawDiag];
  const out = tf.tidy(() => {
    const xs = tf.tensor2d(Array.from(x), [n, d]);
    const ws = tf.tensor1d(Array.from(w));
    const { value, grads } = tf.variableGrads(() => referenceLoss(tf, head, xs, ws), vars);
    return { loss: value.dataSync()[0], g: vars.map((v) => Array.from(grads[v.name].dataSync())) };
  });
  return { loss: out.loss, grads: Float64Array.from(out.g.flat()) };
}

/** Robust weight of `fused_kernel.ts` computed from m2 on the host (a constant for autodiff). */
export function robustWeight(m2: number, robustC: number, robustFloor: number): number {
  return m2 <= robustC
    ? 1
    : Math.max((robustFloor * robustC) / m2, Math.exp(-0.5 * (m2 - robustC)));
}

/** Options of the op-by-op keyed trainer. */
export interface ReferenceTrainerOptions {
  readonly d: number;
  readonly diag: DiagTransform;
  readonly lr: number;
  readonly robustC: number;
  readonly robustFloor: number;
}

/**
 * The op-by-op K-keyed score+learn step of the benchmark: per key, score its rows (log_prob and
 * Mahalanobis² with ops, read back), then one `adam.minimize` on −mean(w·log_prob) with robust
 * weights from the scores. Every key owns its variables and Adam optimiser.
 */
export class ReferenceTrainer {
  readonly #tf: Tf;
  readonly #opts: ReferenceTrainerOptions;
  readonly #heads = new Map<number, { head: ReferenceHead; opt: tfNs.AdamOptimizer }>();

  constructor(tf: Tf, opts: ReferenceTrainerOptions) {
    this.#tf = tf;
    this.#opts = opts;
  }

  #headOf(k: number): { head: ReferenceHead; opt: tfNs.AdamOptimizer } {
    let h = this.#heads.get(k);
    if (h === undefined) {
      const { d, diag } = this.#opts;
      const theta = new Float64Array(2 * d + (d * (d - 1)) / 2);
      // Raw diagonal giving a unit diagonal: softplus⁻¹(1 − 1e−5) ≈ 0.5413, log 1 = 0.
      theta.fill(
        diag === "softplus" ? Math.log(Math.expm1(1 - SOFTPLUS_EPS)) : 0,
        theta.length - d,
      );
      h = {
        head: createReferenceHead(this.#tf, d, diag, theta),
        opt: this.#tf.train.adam(this.#opts.lr),
      };
      this.#heads.set(k, h);
    }
    return h;
  }

  /** Scores rows (row-major n×d, keyIdx per row) and learns; returns log_prob per row. */
  async step(x: Float64Array, keyIdx: Int32Array, n: number): Promise<Float64Array> {
    const tf = this.#tf;
    const { d, robustC, robustFloor } = this.#opts;
    const rowsOf = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const list = rowsOf.get(keyIdx[i]);
      if (list === undefined) rowsOf.set(keyIdx[i], [i]);
      else list.push(i);
    }
    const logProbOut = new Float64Array(n);
    for (const [k, rows] of rowsOf) {
      const { head, opt } = this.#headOf(k);
      const xk = new Float32Array(rows.length * d);
      rows.forEach((i, r) => xk.set(x.subarray(i * d, (i + 1) * d), r * d));
      const xs = tf.tensor2d(xk, [rows.length, d]);
      const [lp, m2] = tf.tidy(() => {
        const r = logProbAndM2(tf, head, xs);
        return [r.logProb, r.m2];
      });
      const [lpv, m2v] = await Promise.all([lp.data(), m2.data()]);
      lp.dispose();
      m2.dispose();
      rows.forEach((i, r) => (logProbOut[i] = lpv[r]));
      const ws = tf.tensor1d(
        Float32Array.from(m2v as Float32Array, (q) => robustWeight(q, robustC, robustFloor)),
      );
      const loss = opt.minimize(() => referenceLoss(tf, head, xs, ws), true);
      await loss?.data();
      loss?.dispose();
      ws.dispose();
      xs.dispose();
    }
    return logProbOut;
  }

  dispose(): void {
    for (const { head, opt } of this.#heads.values()) {
      head.dispose();
      opt.dispose();
    }
    this.#heads.clear();
  }
}
