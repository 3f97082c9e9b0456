/**
 * `FusedKernel` on top of the registered tfjs kernel `MvnFused`: inputs → tensors (zero-copy where
 * the backend allows) → `runKernel` → outputs, disposing every tensor it made.
 *
 * @module
 */
import type * as tfNs from "@tensorflow/tfjs";
import {
  type FloatArray,
  type FusedInputs,
  type FusedKernel,
  type FusedOutputs,
  statsWidth,
} from "./fused_kernel.ts";
import {
  type CpuBackendLike,
  MVN_FUSED_KERNEL,
  type MvnFusedAttrs,
  registerMvnFused,
  type Tf,
} from "./tfjs_registration.ts";
import { segmentRowsByKey } from "./row_segments.ts";

function _checkInputs(inp: FusedInputs): void {
  const { n, d, K } = inp;
  if (!Number.isInteger(d) || d < 1 || d > 32) {
    throw new RangeError(`expected d an integer in [1, 32], found ${d}`);
  }
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(K) || K < 1) {
    throw new RangeError(`expected integers n ≥ 0 and K ≥ 1, found n=${n}, K=${K}`);
  }
  const lengths: [string, number, number][] = [
    ["x", inp.x.length, n * d],
    ["keyIdx", inp.keyIdx.length, n],
    ["rowWeight", inp.rowWeight.length, n],
    ["loc", inp.loc.length, K * d],
    ["tril", inp.tril.length, K * d * d],
  ];
  for (const [name, found, expected] of lengths) {
    if (found < expected) {
      throw new RangeError(`expected ${name} of length ≥ ${expected}, found ${found}`);
    }
  }
  // An out-of-range head index would make the cpu loop read undefined and write nowhere.
  const keyIdx = inp.keyIdx;
  for (let i = 0; i < n; i++) {
    const k = keyIdx[i];
    if (!(k >= 0 && k < K)) throw new RangeError(`expected keyIdx[${i}] in [0, ${K}), found ${k}`);
  }
}

/**
 * Creates the fused kernel for a backend; that backend must be the active tfjs backend when
 * `run` is called. Registers `MvnFused` for it on first use.
 */
export function createTfjsFusedKernel(tf: Tf, backend: "cpu" | "webgpu"): FusedKernel {
  registerMvnFused(tf, backend);
  let disposed = false;

  // Typed arrays go to the backend as they are: the cpu backend keeps them (float64 stays
  // float64), webgpu converts while uploading. tf.tensor() would first copy into a Float32Array.
  const tensor = (values: FloatArray | Int32Array, shape: number[], dtype: "float32" | "int32") =>
    tf.engine().makeTensor(values as unknown as Float32Array, shape, dtype);

  async function run(inp: FusedInputs): Promise<FusedOutputs> {
    if (disposed) throw new TypeError("the fused kernel was disposed");
    const active = tf.getBackend();
    if (active !== backend) {
      throw new TypeError(`expected tfjs backend '${backend}' to be active, found '${active}'`);
    }
    _checkInputs(inp);
    const { n, d, K } = inp;
    const S = statsWidth(d);
    if (n === 0) {
      return {
        m2: new Float64Array(0),
        contrib: new Float64Array(0),
        stats: new Float64Array(K * S),
      };
    }
    const made: tfNs.Tensor[] = [];
    try {
      const inputs: Record<string, tfNs.Tensor> = {
        x: tensor(inp.x.subarray(0, n * d), [n, d], "float32"),
        keyIdx: tensor(inp.keyIdx.subarray(0, n), [n], "int32"),
        rowWeight: tensor(inp.rowWeight.subarray(0, n), [n], "float32"),
        loc: tensor(inp.loc.subarray(0, K * d), [K, d], "float32"),
        tril: tensor(inp.tril.subarray(0, K * d * d), [K, d * d], "float32"),
      };
      made.push(...Object.values(inputs));
      let numChunks = 0;
      if (backend === "webgpu") {
        const seg = segmentRowsByKey(inp.keyIdx, n, K);
        numChunks = seg.numChunks;
        inputs.order = tensor(seg.order, [n], "int32");
        inputs.chunks = tensor(seg.chunks, [seg.chunks.length / 2, 2], "int32");
        inputs.keyChunks = tensor(seg.keyChunks, [K + 1], "int32");
        made.push(inputs.order, inputs.chunks, inputs.keyChunks);
      }
      const attrs: MvnFusedAttrs = {
        d,
        K,
        numChunks,
        robustC: inp.robustC,
        robustFloor: inp.robustFloor,
      };
      const outs = tf.engine().runKernel(
        MVN_FUSED_KERNEL,
        inputs,
        attrs as unknown as tfNs.NamedAttrMap,
      ) as tfNs.Tensor[];
      made.push(...outs);
      const [m2T, contribT, statsT] = outs;
      if (backend === "cpu") {
        // The cpu kernel's outputs are the fused loop's own float64 arrays; t.data() would
        // narrow them to float32 copies.
        const be = tf.backend() as unknown as CpuBackendLike;
        const own = (t: tfNs.Tensor) => be.data.get(t.dataId).values as FloatArray;
        const stats = own(statsT);
        return {
          m2: own(m2T),
          contrib: own(contribT),
          stats: stats instanceof Float64Array ? stats : Float64Array.from(stats),
        };
      }
      const [m2, contrib, stats] = await Promise.all([m2T.data(), contribT.data(), statsT.data()]);
      return {
        m2: m2 as Float32Array,
        contrib: contrib as Float32Array,
        stats: Float64Array.from(stats as Float32Array),
      };
    } finally {
      for (const t of made) t.dispose();
    }
  }

  return {
    backend,
    run,
    dispose() {
      disposed = true;
    },
  };
}
