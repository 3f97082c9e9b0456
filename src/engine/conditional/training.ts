/**
 * The conditional head's training: a key's learned rows cut into `minibatch` chunks, each joined
 * by as many rows replayed from its memory and weighted by the robust weight of their pre-step m²;
 * one Adam step per chunk on the weighted mean NLL, whose gradient is the NLL's closed-form
 * gradient w.r.t. the network's outputs (host, float64) taken back through the network by tfjs
 * autodiff; a step whose loss, gradient or new weights are not finite is rejected (the state is
 * kept); accepted steps update the Polyak average of the weights that scores use.
 *
 * @module
 */
import type { HeadConfig } from "../../config/head_config.ts";
import { robustWeight } from "../../model/natural_step.ts";
import { HALF_LOG_2PI, whiten } from "./frame.ts";
import type { CondKey } from "./key_state.ts";
import { forwardTf, lossTf, nllOutputGradients, paramTensors, weightGradsTf } from "./network.ts";
import { drawRow, remember, replayDraws } from "./replay_memory.ts";
import type { NetShape } from "./scoring.ts";
import { standardiserMoments } from "./standardiser.ts";

type tfTensor = import("@tensorflow/tfjs").Tensor;

/**
 * m rows of a key's NLL: X standardised contexts [m, F], XW whitened rows [m, d], W robust weights
 * summing to sumW.
 */
export type NllRows = [X: Float32Array, XW: Float32Array, W: Float32Array, sumW: number, m: number];

/** A weighted mean NLL of m rows and its gradient w.r.t. θ. */
export interface LossAndGradient {
  loss: number;
  grad: Float64Array;
}

/** One step on m rows ({@link NllRows}). */
export type StepFn = (...rows: NllRows) => Promise<boolean>;

/** What training a key needs of the head. */
export interface TrainShape {
  readonly config: HeadConfig;
  /** Context width F. */
  readonly F: number;
  /** The χ²_d quantile at 1 − robust_p (the robust weight's cut). */
  readonly robustC: number;
}

/**
 * Steps on the key's learned rows `use`, `minibatch` rows per step (`local` maps a batch row to its
 * row in `stdCtx`, the key's standardised contexts; m2 the rows' pre-step m²), then the rows join
 * its replay memory with their robust weights.
 */
export async function trainKey(
  h: CondKey,
  use: number[],
  local: Map<number, number>,
  values: Float64Array,
  ctx: Float64Array,
  stdCtx: Float32Array,
  m2: Float64Array,
  shape: TrainShape,
  step: StepFn,
): Promise<void> {
  const { config, F, robustC } = shape;
  const d = config.dim;
  const mb = config.minibatch;
  const mem = h.memory;
  const { mean, sd } = standardiserMoments(h.std, F);
  // Replayed rows: drawn from the key's memory with a generator seeded by its step count, so a
  // resumed key draws the same rows.
  const rand = replayDraws(h.key, h.steps);
  // Even chunks of at most `minibatch` rows.
  const chunks = Math.ceil(use.length / mb);
  const xw = new Float64Array(d);
  for (let c = 0; c < chunks; c++) {
    const from = Math.floor((c * use.length) / chunks);
    const to = Math.floor(((c + 1) * use.length) / chunks);
    const cur = to - from;
    const old = Math.min(cur, mem.size);
    const m = cur + old;
    const X = new Float32Array(m * F);
    const XW = new Float32Array(m * d);
    const W = new Float32Array(m);
    let sumW = 0;
    for (let r = 0; r < cur; r++) {
      const i = use[from + r];
      X.set(stdCtx.subarray(local.get(i)! * F, local.get(i)! * F + F), r * F);
      whiten(values, i * d, h, d, xw);
      for (let a = 0; a < d; a++) XW[r * d + a] = xw[a];
      W[r] = robustWeight(m2[i], robustC, config.robust_floor);
      sumW += W[r];
    }
    for (let r = cur; r < m; r++) {
      const j = drawRow(mem, rand);
      for (let a = 0; a < F; a++) X[r * F + a] = (mem.ctx[j * F + a] - mean[a]) / sd[a];
      whiten(mem.values, j * d, h, d, xw);
      for (let a = 0; a < d; a++) XW[r * d + a] = xw[a];
      W[r] = mem.w[j];
      sumW += W[r];
    }
    if (!(sumW > 0)) continue;
    await step(X, XW, W, sumW, m);
  }
  // The batch's rows join the memory (ring buffer) with their robust weights.
  const M = config.memory;
  if (M === 0) return;
  for (const i of use) {
    remember(mem, values, ctx, i, robustWeight(m2[i], robustC, config.robust_floor), d, F, M);
  }
}

/**
 * Applies one Adam step of a key given its loss and gradient; returns false (and counts a rejected
 * update, the state kept) when they or the new weights are not finite.
 */
export function adamStep(
  h: CondKey,
  { loss, grad }: LossAndGradient,
  cfg: HeadConfig,
  log: (line: string) => void,
): boolean {
  let ok = Number.isFinite(loss);
  for (let p = 0; ok && p < grad.length; p++) ok = Number.isFinite(grad[p]);
  if (!ok) {
    h.rejected++;
    log(`conditional: key '${h.key}': rejected a non-finite step (loss ${loss})`);
    return false;
  }
  const t = h.steps + 1;
  const b1 = cfg.beta1, b2 = cfg.beta2;
  const c1 = 1 - Math.pow(b1, t), c2 = 1 - Math.pow(b2, t);
  const size = h.theta.length;
  const theta = new Float64Array(size);
  const mm = new Float64Array(size);
  const vv = new Float64Array(size);
  for (let p = 0; p < size; p++) {
    const g = grad[p];
    mm[p] = b1 * h.adamM[p] + (1 - b1) * g;
    vv[p] = b2 * h.adamV[p] + (1 - b2) * g * g;
    theta[p] = h.theta[p] - (cfg.lr * (mm[p] / c1)) / (Math.sqrt(vv[p] / c2) + cfg.epsilon);
    if (!Number.isFinite(theta[p])) ok = false;
  }
  if (!ok) {
    h.rejected++;
    return false;
  }
  h.theta = theta;
  h.adamM = mm;
  h.adamV = vv;
  h.steps = t;
  // Polyak average with a warm start: 1/t at first, then 1/average.
  const A = cfg.average;
  if (A === 0) h.avg = theta;
  else {
    const r = Math.max(1 / t, 1 / A);
    const avg = h.avg;
    for (let p = 0; p < size; p++) avg[p] += r * (theta[p] - avg[p]);
    h.avg = avg;
  }
  return true;
}

/**
 * The weighted mean NLL of m rows and its gradient w.r.t. θ: the network's outputs (tfjs
 * forward), the NLL's gradient w.r.t. them in closed form on the host (float64), then tfjs
 * autodiff back through the network with that as `dy` (on the right backend).
 */
export async function nllGradient(
  net: NetShape,
  theta: Float64Array,
  ...[X, XW, W, sumW, m]: NllRows
): Promise<LossAndGradient> {
  const { tf, layout, config: cfg, F } = net;
  const d = cfg.dim;
  const P = layout.outputs;
  const params = paramTensors(tf, layout, theta);
  const x = tf.tensor2d(X, [m, F]);
  try {
    const outT = tf.tidy(() => forwardTf(tf, params, x, cfg.activation));
    const out = await outT.data();
    outT.dispose();
    const dyArr = new Float32Array(m * P);
    const loss = nllOutputGradients(out, XW, W, sumW, m, d, cfg.diag, dyArr);
    // One flat tensor in θ's order: one read-back.
    const flat = tf.tidy(() =>
      tf.concat(
        weightGradsTf(tf, params, x, tf.tensor2d(dyArr, [m, P]), cfg.activation)
          .map((g) => tf.reshape(g, [-1])),
      )
    );
    try {
      const grad = Float64Array.from(await flat.data());
      return { loss: loss + d * HALF_LOG_2PI, grad };
    } finally {
      flat.dispose();
    }
  } finally {
    tf.dispose(params);
    x.dispose();
  }
}

/** The weighted mean NLL of m rows and its gradient w.r.t. θ, all by tfjs autodiff (reference). */
export async function nllLossAndGradientAutodiff(
  net: NetShape,
  theta: Float64Array,
  ...[X, XW, W, sumW, m]: NllRows
): Promise<LossAndGradient> {
  const { tf, layout, config: cfg, F } = net;
  const d = cfg.dim;
  const res = tf.tidy(() => {
    const params = paramTensors(tf, layout, theta);
    const x = tf.tensor2d(X, [m, F]);
    const xw = tf.tensor2d(XW, [m, d]);
    const w = tf.tensor1d(W);
    const f = (...ps: tfTensor[]) => lossTf(tf, ps, x, xw, w, sumW, d, cfg.diag, cfg.activation);
    const { value, grads } = tf.valueAndGrads(f)(params);
    return [value, ...grads];
  });
  try {
    const arrays = await Promise.all(res.map((t) => t.data()));
    const grad = new Float64Array(layout.size);
    let off = 0;
    for (let p = 1; p < arrays.length; p++) {
      grad.set(arrays[p], off);
      off += arrays[p].length;
    }
    // The constant d/2·log 2π is left out of the graph; the loss reported includes it.
    return { loss: arrays[0][0] + d * HALF_LOG_2PI, grad };
  } finally {
    tf.dispose(res);
  }
}
