/**
 * Backend selection: `auto` takes webgpu only on a hardware adapter (a software fallback adapter
 * such as llvmpipe is slower than tfjs-cpu), and says which it chose and why.
 *
 * @module
 */
import type { BackendName } from "./types.ts";

/** The outcome of {@link chooseBackend}. */
export interface BackendChoice {
  readonly backend: BackendName;
  /** One line for the start-up log, naming the adapter. */
  readonly reason: string;
}

/** Raised when `--backend webgpu` is requested and no WebGPU adapter exists. */
export class BackendUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BackendUnavailableError";
  }
}

interface _AdapterInfo {
  readonly description: string;
  readonly fallback: boolean;
}

/** The part of `navigator.gpu` the probe uses (tests pass their own). */
export interface GpuLike {
  requestAdapter(): Promise<GPUAdapter | null>;
}

async function _probeAdapter(gpu: GpuLike | undefined): Promise<_AdapterInfo | null> {
  if (gpu === undefined) return null;
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter();
  } catch {
    return null;
  }
  if (adapter === null) return null;
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const description = [info.vendor, info.description || info.device].filter((s) => s).join(" ");
  const fallback = info.isFallbackAdapter === true ||
    (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  return { description: description || "unnamed adapter", fallback };
}

/** Resolves `auto|webgpu|cpu` to a backend, probing the WebGPU adapter when needed. */
export async function chooseBackend(
  requested: "auto" | "webgpu" | "cpu",
  gpu: GpuLike | undefined = (navigator as Navigator & { gpu?: GPU }).gpu,
): Promise<BackendChoice> {
  if (requested === "cpu") return { backend: "cpu", reason: "backend cpu (requested)" };
  const adapter = await _probeAdapter(gpu);
  if (requested === "webgpu") {
    if (adapter === null) {
      throw new BackendUnavailableError(
        "expected a WebGPU adapter for --backend webgpu, found none (navigator.gpu gave no adapter)",
      );
    }
    const kind = adapter.fallback ? "software fallback adapter" : "hardware adapter";
    return {
      backend: "webgpu",
      reason: `backend webgpu (requested) on ${kind} ${adapter.description}`,
    };
  }
  if (adapter === null) return { backend: "cpu", reason: "backend cpu (auto: no WebGPU adapter)" };
  if (adapter.fallback) {
    return {
      backend: "cpu",
      reason:
        `backend cpu (auto: WebGPU adapter ${adapter.description} is a software fallback, slower than cpu)`,
    };
  }
  return {
    backend: "webgpu",
    reason: `backend webgpu (auto: hardware adapter ${adapter.description})`,
  };
}
