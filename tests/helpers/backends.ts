/**
 * The backends every engine test runs on: cpu always, webgpu whenever an adapter exists (here the
 * software llvmpipe adapter). `MVN_TEST_BACKENDS=cpu` narrows the set.
 *
 * @module
 */
import type { BackendName } from "../../src/engine/types.ts";

async function _available(): Promise<BackendName[]> {
  const out: BackendName[] = ["cpu"];
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
  if (adapter) out.push("webgpu");
  const only = Deno.env.get("MVN_TEST_BACKENDS");
  return only ? out.filter((b) => only.split(",").includes(b)) : out;
}

/** Backends to exercise. */
export const BACKENDS: BackendName[] = await _available();
