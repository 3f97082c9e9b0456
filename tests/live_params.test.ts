import assert from "node:assert/strict";
import type { ParamsMessage } from "../schemas/messages.ts";
import { LiveMetrics } from "../src/live/metrics.ts";
import { LoopKeys } from "../src/live/loop_keys.ts";
import { PARAMS_CHUNK, ParamsPublisher } from "../src/live/params.ts";
import type { OutputSink } from "../src/live/ports.ts";
import { CountingEngine } from "./helpers/live_fakes.ts";

Deno.test("parameters of more due keys than a chunk: each published once, in order, one timestamp", async () => {
  const engine = new CountingEngine();
  const n = 2 * PARAMS_CHUNK + 7;
  const names = Array.from({ length: n }, (_, i) => `k${i}`);
  for (const [i, k] of names.entries()) engine.obs.set(k, i + 1);
  const keys = new LoopKeys(2, 5, 3);
  for (const k of names) keys.setApplied(k, 1);
  const calls: ParamsMessage[][] = [];
  let fail = false;
  const sink = {
    publishParams: (items: readonly ParamsMessage[]) => {
      if (fail) return Promise.reject(new Error("down"));
      calls.push([...items]);
      return Promise.resolve();
    },
  } as unknown as OutputSink;
  const metrics = new LiveMetrics();
  const params = new ParamsPublisher({
    engine,
    keys,
    onEngine: (f) => f(),
    sink,
    paramsEveryMs: 1000,
    metrics,
    log: () => {},
  });
  params.markDirty(names);
  await params.publishDue(false);
  const published = calls.flat();
  assert.deepEqual(published.map((m) => m.key), names);
  assert.deepEqual(published.map((m) => m.observations), names.map((_, i) => i + 1));
  assert.equal(new Set(published.map((m) => m.updated_at)).size, 1);
  assert.ok(calls.every((c) => c.length <= PARAMS_CHUNK));
  assert.equal(metrics.paramsPublished, n);
  assert.equal(params.pending("k0"), false);
  // Published less than paramsEveryMs ago: not due again yet; a failed publication stays dirty.
  params.markDirty(["k0"]);
  await params.publishDue(false);
  assert.equal(calls.flat().length, n);
  fail = true;
  await params.publishDue(true);
  assert.equal(params.pending("k0"), true);
  assert.equal(metrics.paramsPublished, n);
});
