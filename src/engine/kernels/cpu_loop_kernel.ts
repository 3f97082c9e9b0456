/**
 * The fused op as a plain float64 TypeScript loop behind the {@link FusedKernel} interface.
 *
 * @module
 */
import type { FusedInputs, FusedKernel, FusedOutputs } from "./fused_kernel.ts";
import { mvnFusedCpu } from "./cpu_fused.ts";

/** A {@link FusedKernel} running {@link mvnFusedCpu} directly on float64 arrays. */
export function createCpuLoopKernel(): FusedKernel {
  return {
    backend: "cpu",
    run(inputs: FusedInputs): Promise<FusedOutputs> {
      return Promise.resolve(mvnFusedCpu(inputs));
    },
    dispose() {},
  };
}
