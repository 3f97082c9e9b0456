/**
 * `deno task bench [--json FILE] [--sections engine,replay,live] [--quick] [--backend B] [--soak]`:
 * throughput and latency, every comparison measured in the same run; see docs/bench.md.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { BenchFlags, BenchResult } from "./schema.ts";
import { chooseBackend } from "../src/engine/backend.ts";
import { benchEngine } from "./engine_bench.ts";
import { benchConditional } from "./conditional_bench.ts";
import { benchLive, liveBenchSizes, loadWindow, soakLive } from "./live_bench.ts";
import { benchReplay } from "./replay_bench.ts";
import { checkFloors, formatReport } from "./report.ts";
import { benchSoak } from "./soak.ts";
import type { BackendName } from "../src/engine/types.ts";

const USAGE = `usage: main.ts bench [options]
  --json FILE          also write the results as JSON (schemas/bench.ts)
  --sections LIST      comma-separated: engine,replay,live,conditional (default all)
  --quick              small sizes, short timings (a smoke test, not a measurement)
  --backend B          all (default: every backend with an adapter), cpu or webgpu
  --soak               also run the soaks (engine, then the live worker: 10 min each at half
                       load; not for CI)
  --soak-minutes M     soak duration (default 10)`;

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
  let raw;
  try {
    raw = parseArgs({
      args,
      options: {
        json: { type: "string" },
        sections: { type: "string" },
        quick: { type: "boolean" },
        backend: { type: "string" },
        soak: { type: "boolean" },
        "soak-minutes": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: false,
    }).values;
  } catch (e) {
    console.error(`bench: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const parsed = BenchFlags.safeParse({ ...raw, soak_minutes: raw["soak-minutes"] });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    console.error(`bench: --${String(issue.path[0] ?? "?")}: ${issue.message}\n${USAGE}`);
    return 2;
  }
  const flags = parsed.data;
  if (flags.help) {
    console.log(USAGE);
    return 0;
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
        "at half the worker's obs/s",
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
