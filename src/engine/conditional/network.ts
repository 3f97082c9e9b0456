/**
 * The conditional head's network: an MLP from (standardised) context features to the parameters
 * of a multivariate normal in the key's whitened frame, and its negative log-likelihood as a tfjs
 * graph (so tfjs autodiff gives the gradients), plus the same maps on the host in float64 for
 * scoring.
 *
 * Output layout per row (P = 2d + d(d−1)/2), the same as the unconditional head's θ:
 * `loc′` (d), the strictly-lower part of `scale_tril′` row by row (d(d−1)/2), the raw diagonal (d)
 * through the head's diag transform (src/model/diag_transform.ts; {@link diagTf} is its tfjs twin).
 *
 * Parameters are one flat vector θ: for each layer, W row-major [inputs][outputs], then b.
 *
 * @module
 */
import type * as tfNs from "@tensorflow/tfjs";
import {
  diagDerivative,
  diagForward,
  diagInverse,
  RAW_LIMIT,
  SOFTPLUS_EPS,
} from "../../model/diag_transform.ts";
import { mulberry32 } from "../../model/prng.ts";
import type { DiagTransform } from "../types.ts";

/** The tfjs namespace (`@tensorflow/tfjs`). */
export type Tf = typeof tfNs;
type Tensor = tfNs.Tensor;
type Tensor2D = tfNs.Tensor2D;

/** Outputs of the network for dimension d: loc (d), strictly-lower (d(d−1)/2), raw diagonal (d). */
export function outputsFor(d: number): number {
  return 2 * d + (d * (d - 1)) / 2;
}

/** One dense layer's place in θ. */
export interface LayerLayout {
  readonly inputs: number;
  readonly outputs: number;
  /** Offset of W ([inputs][outputs], row-major) in θ. */
  readonly w: number;
  /** Offset of b (outputs) in θ. */
  readonly b: number;
}

/** Where every weight lives in θ. */
export interface NetLayout {
  readonly inputs: number;
  readonly hidden: readonly number[];
  readonly outputs: number;
  readonly layers: readonly LayerLayout[];
  /** Length of θ. */
  readonly size: number;
}

/** The layout of an MLP inputs → hidden… → outputs. */
export function netLayout(inputs: number, hidden: readonly number[], outputs: number): NetLayout {
  const widths = [inputs, ...hidden, outputs];
  const layers: LayerLayout[] = [];
  let off = 0;
  for (let l = 0; l + 1 < widths.length; l++) {
    const w = off;
    off += widths[l] * widths[l + 1];
    layers.push({ inputs: widths[l], outputs: widths[l + 1], w, b: off });
    off += widths[l + 1];
  }
  return { inputs, hidden: [...hidden], outputs, layers, size: off };
}

/** Scale of the output layer's initial weights relative to Glorot: the net starts near its bias. */
export const OUTPUT_INIT_SCALE = 0.1;

/**
 * Initial θ: Glorot-uniform hidden layers (seeded, deterministic), small output weights and the
 * output bias at loc′ = 0, scale_tril′ = I — in the whitened frame of the key's first rows this is
 * their mean and covariance (the unconditional MLE), so the network starts where the unconditional
 * head would.
 */
export function initTheta(
  layout: NetLayout,
  d: number,
  diag: DiagTransform,
  seed = 1,
): Float64Array {
  const theta = new Float64Array(layout.size);
  const rand = mulberry32(seed);
  const last = layout.layers.length - 1;
  layout.layers.forEach((L, l) => {
    const a = Math.sqrt(6 / (L.inputs + L.outputs)) * (l === last ? OUTPUT_INIT_SCALE : 1);
    for (let i = 0; i < L.inputs * L.outputs; i++) theta[L.w + i] = (2 * rand() - 1) * a;
  });
  const out = layout.layers[last];
  const raw1 = diagInverse(diag, 1);
  for (let a = 0; a < d; a++) theta[out.b + outputsFor(d) - d + a] = raw1;
  return theta;
}

/** θ as float32 tensors [W0, b0, W1, b1, …] (not inside a tidy: the caller disposes them). */
export function paramTensors(tf: Tf, layout: NetLayout, theta: Float64Array): Tensor[] {
  const out: Tensor[] = [];
  for (const L of layout.layers) {
    out.push(
      tf.tensor2d(
        Float32Array.from(theta.subarray(L.w, L.w + L.inputs * L.outputs)),
        [L.inputs, L.outputs],
      ),
    );
    out.push(tf.tensor1d(Float32Array.from(theta.subarray(L.b, L.b + L.outputs))));
  }
  return out;
}

/** The MLP: x [n, inputs] → raw outputs [n, outputs]. */
export function forwardTf(
  tf: Tf,
  params: readonly Tensor[],
  x: Tensor2D,
  activation: "tanh" | "relu",
): Tensor2D {
  let h: Tensor2D = x;
  const layers = params.length / 2;
  for (let l = 0; l < layers; l++) {
    h = tf.add(tf.matMul(h, params[2 * l] as Tensor2D), params[2 * l + 1]) as Tensor2D;
    if (l + 1 < layers) h = activation === "tanh" ? tf.tanh(h) : tf.relu(h);
  }
  return h;
}

/** The diag transform of src/model/diag_transform.ts on a tensor (same clamps, same offset). */
export function diagTf(tf: Tf, kind: DiagTransform, raw: Tensor): Tensor {
  switch (kind) {
    case "softplus":
      return tf.add(tf.softplus(raw), SOFTPLUS_EPS);
    case "elu1p":
      return tf.add(tf.elu(tf.clipByValue(raw, -RAW_LIMIT, RAW_LIMIT)), 1);
    case "exp":
      return tf.exp(tf.clipByValue(raw, -RAW_LIMIT, RAW_LIMIT));
  }
}

/**
 * Per-row negative log-likelihood without the constant d/2·log 2π, ½|z|² + Σ_a log L′_aa with
 * z = L′⁻¹(x − loc′), from raw outputs [n, P] and rows x [n, d] (whitened frame). Forward
 * substitution column by column (tfjs has no batched triangular solve).
 */
export function nllRowsTf(
  tf: Tf,
  out: Tensor2D,
  x: Tensor2D,
  d: number,
  diag: DiagTransform,
): Tensor {
  const T = (d * (d - 1)) / 2;
  const loc = tf.slice(out, [0, 0], [-1, d]);
  const r = tf.sub(x, loc);
  const diagT = diagTf(tf, diag, tf.slice(out, [0, d + T], [-1, d]));
  // Columns as [n, 1] slices (slice's gradient is a pad; unstack's fails on unused outputs).
  const col = (t: Tensor, c: number) => tf.slice(t, [0, c], [-1, 1]);
  const z: Tensor[] = [];
  for (let a = 0; a < d; a++) {
    let s = col(r, a);
    for (let b = 0; b < a; b++) {
      s = tf.sub(s, tf.mul(col(out, d + (a * (a - 1)) / 2 + b), z[b]));
    }
    z.push(tf.div(s, col(diagT, a)));
  }
  const zz = z.length === 1 ? tf.square(z[0]) : tf.addN(z.map((v) => tf.square(v)));
  const half = tf.reshape(tf.mul(zz, 0.5), [-1]);
  return tf.add(half, tf.sum(tf.log(diagT), 1));
}

/**
 * The training loss: Σ w_i·nll_i / Σ w_i over the rows (weights are constants: robust weights
 * from each row's m² before the step).
 */
export function lossTf(
  tf: Tf,
  params: readonly Tensor[],
  ctx: Tensor2D,
  x: Tensor2D,
  w: Tensor,
  sumW: number,
  d: number,
  diag: DiagTransform,
  activation: "tanh" | "relu",
): tfNs.Scalar {
  const out = forwardTf(tf, params, ctx, activation);
  return tf.div(tf.sum(tf.mul(nllRowsTf(tf, out, x, d, diag), w)), sumW) as tfNs.Scalar;
}

/**
 * The weighted mean NLL Σ w_i·nll_i / sumW of m rows from their raw outputs (float64, on the host)
 * and its gradient w.r.t. the outputs into `dy` [m, P], in the closed form of the unconditional
 * head (src/model/gradient.ts `gradientFromStats`, one row at a time): with z = L′⁻¹(x − loc′)
 * and u = L′⁻ᵀz, ∂nll/∂loc′ = −u, ∂nll/∂L′_ab = −u_a·z_b (a > b), ∂nll/∂r_a = (1/L′_aa − u_a·z_a)·f′(r_a).
 * The network's part of the gradient is then tfjs autodiff with this `dy` ({@link weightGradsTf}).
 * Returns the loss without the constant d/2·log 2π.
 */
export function nllOutputGradients(
  out: ArrayLike<number>,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  sumW: number,
  m: number,
  d: number,
  diag: DiagTransform,
  dy: Float32Array,
): number {
  const P = outputsFor(d);
  const T = (d * (d - 1)) / 2;
  const L = new Float64Array(d * d);
  const z = new Float64Array(d);
  const u = new Float64Array(d);
  let loss = 0;
  for (let r = 0; r < m; r++) {
    const o = r * P;
    // L′ row by row: strictly lower from the outputs, diagonal through the transform.
    let p = o + d;
    for (let a = 0; a < d; a++) {
      for (let b = 0; b < a; b++) L[a * d + b] = out[p++];
      L[a * d + a] = diagForward(diag, out[o + d + T + a]);
    }
    let nll = 0;
    for (let a = 0; a < d; a++) {
      let s = x[r * d + a] - out[o + a];
      for (let b = 0; b < a; b++) s -= L[a * d + b] * z[b];
      z[a] = s / L[a * d + a];
      nll += 0.5 * z[a] * z[a] + Math.log(L[a * d + a]);
    }
    for (let a = d - 1; a >= 0; a--) {
      let s = z[a];
      for (let b = a + 1; b < d; b++) s -= L[b * d + a] * u[b];
      u[a] = s / L[a * d + a];
    }
    const k = w[r] / sumW;
    loss += k * nll;
    for (let a = 0; a < d; a++) dy[o + a] = -k * u[a];
    p = o + d;
    for (let a = 0; a < d; a++) for (let b = 0; b < a; b++) dy[p++] = -k * u[a] * z[b];
    for (let a = 0; a < d; a++) {
      const raw = out[o + d + T + a];
      dy[o + d + T + a] = k * (1 / L[a * d + a] - u[a] * z[a]) * diagDerivative(diag, raw);
    }
  }
  return loss;
}

/** Gradients of Σ dy ⊙ MLP(x) w.r.t. the parameters (tfjs autodiff), in θ's order. */
export function weightGradsTf(
  tf: Tf,
  params: readonly Tensor[],
  x: Tensor2D,
  dy: Tensor2D,
  activation: "tanh" | "relu",
): Tensor[] {
  return tf.grads((...ps: Tensor[]) => forwardTf(tf, ps, x, activation))([...params], dy);
}
