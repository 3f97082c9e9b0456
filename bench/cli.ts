/**
 * `deno task bench [--json FILE] [--sections LIST] [--quick] [--backend B] [--soak]`:
 * throughput and latency, every comparison measured in the same run; see docs/bench.md.
 *
 * @module
 */
import { BENCH_SETTINGS, BenchResult } from "./schema.ts";
import { parseFlags, resolveSettings, SettingsError } from "../src/config/settings.ts";
import { usage } from "../src/config/settings_usage.ts";
import { chooseBackend } from "../src/engine/backend.ts";
import { benchEngine } from "./engine_bench.ts";
import { benchConditional } from "./conditional_bench.ts";
import { benchLive, liveBenchSizes, loadWindow } from "./live_bench.ts";
import { benchLatency, LATENCY_RATE_OBS_PER_S } from "./latency_bench.ts";
import { soakLive } from "./live_soak.ts";
import { benchScaleout, scaleoutSizes } from "./scaleout_bench.ts";
import { benchFailover, failoverSizes } from "./failover_bench.ts";
import { benchKeys, keysSizes } from "./keys_bench.ts";
import { benchReplay } from "./replay_bench.ts";
import { checkFloors, formatReport } from "./report.ts";
import { benchSoak } from "./soak.ts";
import type { BackendName } from "../src/engine/types.ts";

const USAGE = usage(BENCH_SETTINGS, {
  synopsis: "usage: main.ts bench [options]\nThroughput and latency, every comparison " +
    "measured in the same run (docs/bench.md).",
});

async function _backends(wanted: "all" | BackendName, notes: string[]): Promise<BackendName[]> {
  if (wanted === "cpu") return ["cpu"];
  try {
    const choice = await chooseBackend("webgpu");
    notes.push(`webgpu: ${choice.reason}`);
    return wanted === "webgpu" ? ["webgpu"] : ["cpu", "webgpu"];
  } catch (e) {
    if (wanted === "webgpu") throw e;
    notes.push(`webgpu not measured: ${(e as Error).message}`);
    return ["cpu"];
  }
}

export async function run(args: string[]): Promise<number> {
  let flags;
  try {
    const parsed = parseFlags(BENCH_SETTINGS, args);
    if (parsed.help) {
      console.log(USAGE);
      return 0;
    }
    if (parsed.positionals.length > 0) {
      throw new SettingsError([`unexpected argument '${parsed.positionals[0]}'`]);
    }
    const r = resolveSettings(BENCH_SETTINGS, parsed.values);
    if (r.errors.length > 0) throw new SettingsError(r.errors);
    flags = r.values;
  } catch (e) {
    if (!(e instanceof SettingsError)) throw e;
    console.error(`bench: ${e.message}\n${USAGE}`);
    return 2;
  }
  const log = (line: string) => console.error(line);
  const notes: string[] = [];
  // The live section always runs on cpu: probe WebGPU only for the sections that use it.
  const needsBackends = flags.sections.includes("engine") ||
    flags.sections.includes("conditional") || flags.soak;
  const backends: BackendName[] = needsBackends ? await _backends(flags.backend, notes) : ["cpu"];
  const quick = flags.quick;
  const result: Omit<BenchResult, "floors"> = {
    version: 1,
    started_at: new Date().toISOString(),
    quick,
    host: { deno: Deno.version.deno, os: Deno.build.os, cpus: navigator.hardwareConcurrency },
    engine: [],
    replay: null,
    live: [],
    soak: null,
    soak_live: null,
    conditional: [],
    latency: null,
    scaleout: [],
    failover: null,
    keys: null,
    notes,
  };
  if (flags.sections.includes("engine")) {
    result.engine = await benchEngine({
      backends,
      batches: quick ? [256] : [256, 4096, 65536],
      keys: quick ? [1, 10] : [1, 1000],
      dim: 3,
      budget: quick
        ? { minMs: 30, minIters: 2, warmIters: 1 }
        : { minMs: 1000, minIters: 5, warmIters: 2 },
      baselineMaxKeys: 1,
      log,
    });
    notes.push("engine: op-by-op baseline measured at K=1 only (one minimize per key per step)");
  }
  if (flags.sections.includes("conditional")) {
    result.conditional = await benchConditional({
      backends,
      batches: quick ? [256] : [256, 4096],
      dims: quick ? [3] : [3, 8],
      hidden: [32, 32],
      budget: quick
        ? { minMs: 30, minIters: 2, warmIters: 1 }
        : { minMs: 1000, minIters: 3, warmIters: 1 },
      log,
    });
    notes.push(
      "conditional: one key, 4 context features, hidden 32,32, engine in the calling thread",
    );
  }
  if (flags.sections.includes("replay")) {
    result.replay = await benchReplay(
      { observations: quick ? 20_000 : 1_000_000, keys: 100, dim: 3, backend: "cpu" },
      log,
    );
    notes.push("replay: 100 keys, d=3, --batch 4096, cpu backend, output to a temp file");
  }
  if (flags.sections.includes("live")) {
    const sizes = liveBenchSizes(quick);
    result.live = await benchLive(sizes, log);
    notes.push(
      `live: ${sizes.keys} keys, d=${sizes.dim}, worker defaults (batch 256, max wait 20 ms), ` +
        "cpu backend with the engine in-process (--engine-thread auto), a fresh local nats-server " +
        "per measurement; " +
        `obs/s = score records stored per second while a load process publishes at most ` +
        `${sizes.window} observations ahead of them (${
          loadWindow({ format: "array", scoreMessages: "message" }, sizes.window)
        } with one score ` +
        `message per input message; best of ${sizes.rounds} rounds, last 80 % of each run); ` +
        "drain = the same " +
        "from a preloaded stream with no publisher; latency = publish → score record received, " +
        "at half the worker's obs/s (informative; the latency floor is the latency section's)",
    );
  }
  if (flags.sections.includes("latency")) {
    const sizes = liveBenchSizes(quick);
    result.latency = await benchLatency(sizes, LATENCY_RATE_OBS_PER_S, log);
    notes.push(
      `latency: json, one worker as in the live section, paced at ${LATENCY_RATE_OBS_PER_S} ` +
        `obs/s over ${sizes.keys} keys; samples = key 0's records published in ` +
        `${sizes.latencyMs / 1000} s after ${sizes.latencyWarmMs / 1000} s of warm-up`,
    );
  }
  if (flags.sections.includes("scaleout")) {
    const sizes = scaleoutSizes(quick);
    result.scaleout = await benchScaleout(sizes, log);
    notes.push(
      `scaleout: worker processes (deno task start, cpu) on a server mapping ${sizes.partitions} ` +
        `partitions, ${sizes.messages} single-observation JSON messages over ${sizes.keys} keys ` +
        "published once the workers balanced; obs/s and CPU (user + system, /proc) from the " +
        "first score stored to the last",
    );
  }
  if (flags.sections.includes("failover")) {
    const sizes = failoverSizes(quick);
    result.failover = await benchFailover(sizes, log);
    notes.push(
      `failover: ${sizes.workers} worker processes, ${sizes.partitions} partitions, ` +
        `${sizes.rate} obs/s over 64 keys; one SIGKILLed after ${sizes.warmS} s; failover = the ` +
        `worst score latency of the observations published in the ${sizes.afterS} s after it`,
    );
  }
  if (flags.sections.includes("keys")) {
    const sizes = keysSizes(quick);
    result.keys = await benchKeys(sizes, log);
    notes.push(
      `keys: replay (deno task replay's V8 flags, cpu, --batch 4096) of ${sizes.keys} keys × ` +
        `${sizes.perKey} observations against one key × as many, each in a fresh process, ` +
        `${sizes.runs} time(s) a side, the best of each side (highest obs/s, lowest peak); ` +
        "bytes per key = (peak RSS − one-key peak RSS) / keys" +
        (quick ? "; floors not judged with --quick (too few keys)" : ""),
    );
  }
  if (flags.soak) {
    // The engine soak on webgpu when there is an adapter: there the engine holds tfjs tensors.
    const backend = backends.includes("webgpu") ? "webgpu" : backends[0];
    result.soak = await benchSoak({ minutes: flags.soak_minutes, backend, dim: 3 }, log);
    result.soak_live = await soakLive(flags.soak_minutes, log);
  }
  const full = BenchResult.parse({ ...result, floors: checkFloors(result) });
  console.log(formatReport(full));
  if (flags.json !== undefined) {
    await Deno.writeTextFile(flags.json, JSON.stringify(full, null, 2) + "\n");
  }
  return 0;
}
