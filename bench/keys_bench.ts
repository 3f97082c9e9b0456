/**
 * The `keys` section of `deno task bench`, also standalone:
 * `deno run -A bench/keys_bench.ts [--keys 100000] [--per-key 20] [--dim 3] [--runs 2]` prints
 * its JSON.
 *
 * Resident memory and rate with many keys. Replays `keys × perKey` observations (cpu backend,
 * batches of {@link REPLAY_BATCH}) in a fresh process, with one key and with `keys` keys (same
 * observation count), `runs` times each, alternating, as `deno task replay` runs (its V8 flags),
 * and reports each side's best run: highest obs/s, lowest peak RSS (VmHWM); (peak − one-key
 * peak) / keys is the memory a key costs beyond a fixed base.
 *
 * With the default 20 rows a key, every row is in its key's initialisation (64 rows), which one key
 * pays once per batch and 100,000 keys once per row; `--per-key 100` measures mostly keys past it
 * (docs/perf/2026-12-07-keys.md).
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { REPLAY_V8_FLAGS_ARG } from "../src/config/v8_flags.ts";
import { replay } from "../src/replay/replay.ts";
import { REPLAY_BATCH, writeNdjson } from "./replay_bench.ts";
import type { KeysResult } from "./schema.ts";

/** What the section measures: `keys` × `perKey` observations of d = `dim`, each side `runs` times. */
export interface KeysSizes {
  keys: number;
  perKey: number;
  dim: number;
  runs: number;
}

/**
 * Sizes of the section: 100,000 keys × 20, each side twice (`--quick`: 2,000 keys × 20, once).
 * The best of two runs per side: on a shared host a neighbour's burst slows the many-key run
 * (bound by cache misses) more than the one-key run, and one burst moved the ratio by 0.15.
 */
export function keysSizes(quick: boolean): KeysSizes {
  return { keys: quick ? 2_000 : 100_000, perKey: 20, dim: 3, runs: quick ? 1 : 2 };
}

/** One replay run in a fresh process (this module as the child). */
interface ChildRun {
  obs_per_s: number;
  peak_rss: number;
}

/** Runs the section in a temporary directory that it removes. */
export async function benchKeys(
  sizes: KeysSizes,
  log: (line: string) => void,
): Promise<KeysResult> {
  const { keys, perKey, dim, runs } = sizes;
  const n = keys * perKey;
  const dir = await Deno.makeTempDir({ prefix: "mvn-bench-keys-" });
  try {
    const input = (k: number) => join(dir, `obs-${k}.ndjson`);
    const run = async (k: number): Promise<ChildRun> => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          REPLAY_V8_FLAGS_ARG,
          import.meta.filename!,
          "--dim",
          String(dim),
          "--child",
          `${input(k)},${n}`,
        ],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      await Deno.remove(`${input(k)}.scores`).catch(() => {});
      if (!out.success) {
        throw new Error(
          `expected the keys bench's replay of ${k} keys to exit 0, found ${out.code}`,
        );
      }
      return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
    };
    // Both inputs first: no run follows its own input's writing (the parent's heap settling).
    for (const k of [1, keys]) await writeNdjson(input(k), n, k, dim);
    log(`keys: ${n} observations, one key then ${keys} keys, ${runs} time(s) each`);
    const ones: ChildRun[] = [], manys: ChildRun[] = [];
    for (let r = 0; r < runs; r++) {
      ones.push(await run(1));
      manys.push(await run(keys));
    }
    // Each side's best: its highest rate and its lowest peak.
    const best = (rs: ChildRun[]): ChildRun => ({
      obs_per_s: Math.max(...rs.map((x) => x.obs_per_s)),
      peak_rss: Math.min(...rs.map((x) => x.peak_rss)),
    });
    const one = best(ones), many = best(manys);
    return {
      observations: n,
      dim,
      batch: REPLAY_BATCH,
      keys,
      runs,
      one_key: one,
      many_keys: many,
      bytes_per_key_beyond_base: Math.round((many.peak_rss - one.peak_rss) / keys),
      rate_ratio: many.obs_per_s / one.obs_per_s,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function peakRssBytes(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : Deno.memoryUsage().rss;
}

/** The child: replays one file, prints {obs_per_s, peak_rss}. */
async function child(input: string, n: number, dim: number): Promise<void> {
  const t0 = performance.now();
  await replay(
    { input, out: `${input}.scores`, quiet: true, batch: REPLAY_BATCH, dim, backend: "cpu" },
    { stderr: () => {}, progress: false },
  );
  const s = (performance.now() - t0) / 1000;
  const result: ChildRun = { obs_per_s: n / s, peak_rss: peakRssBytes() };
  console.log(JSON.stringify(result));
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      keys: { type: "string", default: "100000" },
      "per-key": { type: "string", default: "20" },
      dim: { type: "string", default: "3" },
      runs: { type: "string", default: "2" },
      child: { type: "string" },
    },
  });
  const dim = Number(values.dim);
  if (values.child !== undefined) {
    const [input, n] = values.child.split(",");
    await child(input, Number(n), dim);
    // Nothing of the replay may keep the child alive once its result is out.
    Deno.exit(0);
  } else {
    const sizes = {
      keys: Number(values.keys),
      perKey: Number(values["per-key"]),
      dim,
      runs: Number(values.runs),
    };
    const result = await benchKeys(sizes, (l) => console.error(l));
    console.log(JSON.stringify(result, null, 2));
  }
}
