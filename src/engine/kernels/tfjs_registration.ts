/**
 * The fused MVN op as a registered tfjs kernel (`MvnFused`) on the `cpu` and `webgpu` backends.
 *
 * Inputs: x (n×d), keyIdx (n, int32), rowWeight (n), loc (K×d), tril (K×d·d); on webgpu also the
 * key segmentation of `row_segments.ts`: order (n, int32), chunks (C×2, int32), keyChunks (K+1,
 * int32). Attrs: d, K, numChunks, robustC, robustFloor.
 * Outputs: m2 (n), contrib (n×d), stats (K×statsWidth(d)), as in `fused_kernel.ts`.
 *
 * @module
 */
import type * as tfNs from "@tensorflow/tfjs";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { type FloatArray, statsWidth } from "./fused_kernel.ts";
import { mvnFusedCpu } from "./cpu_fused.ts";
import {
  MvnChunkStatsProgram,
  MvnContribProgram,
  MvnKeyStatsProgram,
  MvnM2Program,
  MvnRowsProgram,
} from "./webgpu_programs.ts";

/** The tfjs namespace, passed in so the kernels register with the caller's tfjs instance. */
export type Tf = typeof tfNs;

/** Kernel name under which the fused op is registered. */
export const MVN_FUSED_KERNEL = "MvnFused";

/** Attributes of one `MvnFused` call. */
export interface MvnFusedAttrs {
  readonly d: number;
  readonly K: number;
  readonly numChunks: number;
  readonly robustC: number;
  readonly robustFloor: number;
}

/** The part of tfjs-backend-cpu's `MathBackendCPU` the kernel touches (its data storage). */
export interface CpuBackendLike {
  readonly data: { get(dataId: object): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: "float32", values: FloatArray): tfNs.TensorInfo;
}

function _attrs(attrs: tfNs.NamedAttrMap | undefined): MvnFusedAttrs {
  const a = (attrs ?? {}) as unknown as Partial<MvnFusedAttrs>;
  const need = ["d", "K", "numChunks", "robustC", "robustFloor"] as const;
  for (const f of need) {
    if (typeof a[f] !== "number") {
      throw new TypeError(`${MVN_FUSED_KERNEL}: expected numeric attr '${f}', found ${a[f]}`);
    }
  }
  return a as MvnFusedAttrs;
}

function _input(inputs: tfNs.NamedTensorInfoMap, name: string): tfNs.TensorInfo {
  const t = inputs[name];
  if (t === undefined) throw new TypeError(`${MVN_FUSED_KERNEL}: missing input '${name}'`);
  return t;
}

/**
 * cpu: runs the TypeScript fused loop straight on the backend's stored arrays (no copies; float64
 * inputs stay float64) and hands its output arrays to the backend as the output tensors.
 */
function _cpuKernel(
  { inputs, backend, attrs }: {
    inputs: tfNs.NamedTensorInfoMap;
    backend: unknown;
    attrs?: tfNs.NamedAttrMap;
  },
): tfNs.TensorInfo[] {
  const be = backend as CpuBackendLike;
  const { d, K, robustC, robustFloor } = _attrs(attrs);
  const x = _input(inputs, "x");
  const n = x.shape[0];
  const values = (name: string) => be.data.get(_input(inputs, name).dataId).values;
  const out = mvnFusedCpu({
    n,
    d,
    K,
    x: values("x") as FloatArray,
    keyIdx: values("keyIdx") as Int32Array,
    rowWeight: values("rowWeight") as Float32Array,
    loc: values("loc") as FloatArray,
    tril: values("tril") as FloatArray,
    robustC,
    robustFloor,
  });
  return [
    be.makeTensorInfo([n], "float32", out.m2),
    be.makeTensorInfo([n, d], "float32", out.contrib),
    be.makeTensorInfo([K, statsWidth(d)], "float32", out.stats),
  ];
}

/** webgpu: the WGSL pipeline of `webgpu_programs.ts`; intermediates are freed before returning. */
function _webgpuKernel(
  { inputs, backend, attrs }: {
    inputs: tfNs.NamedTensorInfoMap;
    backend: unknown;
    attrs?: tfNs.NamedAttrMap;
  },
): tfNs.TensorInfo[] {
  const be = backend as WebGPUBackend;
  const { d, K, numChunks, robustC, robustFloor } = _attrs(attrs);
  const x = _input(inputs, "x");
  const n = x.shape[0];
  const rowWeight = _input(inputs, "rowWeight");
  const rows = be.runWebGPUProgram(
    new MvnRowsProgram(n, d),
    [x, _input(inputs, "keyIdx"), rowWeight, _input(inputs, "loc"), _input(inputs, "tril")],
    "float32",
    [
      { type: "int32", data: [n] },
      { type: "float32", data: [robustC] },
      { type: "float32", data: [robustFloor] },
    ],
  );
  const nUniform = [{ type: "int32", data: [n] }];
  const m2 = be.runWebGPUProgram(new MvnM2Program(n, d), [rows], "float32", nUniform);
  const contrib = be.runWebGPUProgram(new MvnContribProgram(n, d), [rows], "float32", nUniform);
  const partials = be.runWebGPUProgram(
    new MvnChunkStatsProgram(numChunks, d),
    [rows, rowWeight, _input(inputs, "order"), _input(inputs, "chunks")],
    "float32",
    [{ type: "int32", data: [numChunks] }],
  );
  const stats = be.runWebGPUProgram(
    new MvnKeyStatsProgram(K, d),
    [partials, _input(inputs, "keyChunks")],
    "float32",
    [{ type: "int32", data: [K] }],
  );
  be.disposeData(rows.dataId);
  be.disposeData(partials.dataId);
  return [m2, contrib, stats];
}

/** Registers `MvnFused` for the backend unless already registered (registration is global). */
export function registerMvnFused(tf: Tf, backend: "cpu" | "webgpu"): void {
  if (tf.getKernel(MVN_FUSED_KERNEL, backend) !== undefined) return;
  tf.registerKernel({
    kernelName: MVN_FUSED_KERNEL,
    backendName: backend,
    kernelFunc: (backend === "cpu" ? _cpuKernel : _webgpuKernel) as unknown as tfNs.KernelFunc,
  });
}
