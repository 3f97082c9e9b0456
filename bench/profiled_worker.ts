/**
 * `deno run -A bench/profiled_worker.ts start --nats-url …`: the live worker (`main.ts start`)
 * with a CPU profile of its main thread (the JS thread; on the cpu backend the engine runs there
 * too) taken in-process through `node:inspector`, for `bench/live_keys_bench.ts --cpu-prof`.
 * Settings from the environment: `MVN_PROFILE_OUT` (the `.cpuprofile` file, for Chrome DevTools),
 * `MVN_PROFILE_DELAY_MS` (from start-up, default 2000), `MVN_PROFILE_MS` (default 8000),
 * `MVN_PROFILE_HEAP=1` for allocation sampling instead (a `.heapprofile`, objects collected by
 * either GC included).
 *
 * @module
 */
import inspector from "node:inspector";

const out = Deno.env.get("MVN_PROFILE_OUT");
if (out === undefined) throw new Error("expected MVN_PROFILE_OUT, the profile's file, found none");
const delayMs = Number(Deno.env.get("MVN_PROFILE_DELAY_MS") ?? "2000");
const forMs = Number(Deno.env.get("MVN_PROFILE_MS") ?? "8000");
const heap = Deno.env.get("MVN_PROFILE_HEAP") === "1";

const session = new inspector.Session();
session.connect();
function post(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
  return new Promise((resolve, reject) =>
    session.post(method, params, (e: Error | null, r: unknown) => e ? reject(e) : resolve(r))
  );
}

async function profile(): Promise<void> {
  if (heap) {
    await post("HeapProfiler.enable");
    await post("HeapProfiler.startSampling", {
      samplingInterval: 16384,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  } else {
    await post("Profiler.enable");
    await post("Profiler.setSamplingInterval", { interval: 200 });
    await post("Profiler.start");
  }
  await new Promise((r) => setTimeout(r, forMs));
  const r = await post(heap ? "HeapProfiler.stopSampling" : "Profiler.stop");
  const { profile } = r as { profile: unknown };
  await Deno.writeTextFile(out!, JSON.stringify(profile));
  console.error(`[profile] ${forMs} ms written to ${out}`);
}

setTimeout(() => profile().catch((e) => console.error(`[profile] failed: ${e}`)), delayMs);
const [command, ...rest] = Deno.args;
if (command !== "start") throw new Error(`expected 'start', found '${command}'`);
const start = await import("../src/cli/start.ts");
Deno.exit(await start.run(rest));
