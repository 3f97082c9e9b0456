import assert from "node:assert/strict";
import { BackendUnavailableError, chooseBackend, type GpuLike } from "../src/engine/backend.ts";

function fakeGpu(adapter: { description: string; fallback: boolean } | null): GpuLike {
  return {
    requestAdapter: () =>
      Promise.resolve(
        adapter === null ? null : ({
          info: {
            vendor: "acme",
            description: adapter.description,
            isFallbackAdapter: adapter.fallback,
          },
        } as unknown as GPUAdapter),
      ),
  };
}

Deno.test("auto takes webgpu only on a hardware adapter and says why", async (t) => {
  await t.step("hardware adapter → webgpu", async () => {
    const c = await chooseBackend("auto", fakeGpu({ description: "H100", fallback: false }));
    assert.equal(c.backend, "webgpu");
    assert.match(c.reason, /hardware adapter acme H100/);
  });
  await t.step("software fallback adapter → cpu", async () => {
    const c = await chooseBackend("auto", fakeGpu({ description: "llvmpipe", fallback: true }));
    assert.equal(c.backend, "cpu");
    assert.match(c.reason, /llvmpipe is a software fallback/);
  });
  await t.step("no adapter or no navigator.gpu → cpu", async () => {
    assert.equal((await chooseBackend("auto", fakeGpu(null))).backend, "cpu");
    assert.equal((await chooseBackend("auto", undefined)).backend, "cpu");
  });
});

Deno.test("an explicit backend is honoured, or refused with a clear error", async () => {
  assert.equal(
    (await chooseBackend("cpu", fakeGpu({ description: "H100", fallback: false }))).backend,
    "cpu",
  );
  const sw = await chooseBackend("webgpu", fakeGpu({ description: "llvmpipe", fallback: true }));
  assert.equal(sw.backend, "webgpu");
  assert.match(sw.reason, /software fallback adapter/);
  await assert.rejects(() => chooseBackend("webgpu", fakeGpu(null)), BackendUnavailableError);
});
