/**
 * `deno run -A bench/keys_bench.ts [--keys 100000] [--per-key 20] [--dim 3]`: resident memory per
 * key. Replays `keys × perKey` observations (cpu backend) in a fresh process, once with `keys`
 * keys and once with one key (same observation count), as `deno task replay` runs (its V8 flags),
 * and reports both runs' peak RSS (VmHWM) and obs/s; (peak − one-key peak) / keys is the memory a
 * key costs beyond a fixed base.
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
import { writeNdjson } from "./replay_bench.ts";
import { REPLAY_BATCH } from "./replay_bench.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    keys: { type: "string", default: "100000" },
    "per-key": { type: "string", default: "20" },
    dim: { type: "string", default: "3" },
    child: { type: "string" },
  },
});
const dim = Number(values.dim);

function peakRssBytes(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : Deno.memoryUsage().rss;
}

if (values.child !== undefined) {
  // Child: replay one file, print {obs_per_s, peak_rss}.
  const [input, n] = values.child.split(",");
  const t0 = performance.now();
  await replay(
    {
      input,
      out: `${input}.scores`,
      quiet: true,
      batch: REPLAY_BATCH,
      dim,
      backend: "cpu",
    },
    { stderr: () => {}, progress: false },
  );
  const s = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ obs_per_s: Number(n) / s, peak_rss: peakRssBytes() }));
  Deno.exit(0);
}

const keys = Number(values.keys);
const perKey = Number(values["per-key"]);
const n = keys * perKey;
const dir = await Deno.makeTempDir({ prefix: "mvn-bench-keys-" });
try {
  const run = async (k: number) => {
    const input = join(dir, `obs-${k}.ndjson`);
    await writeNdjson(input, n, k, dim);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        REPLAY_V8_FLAGS_ARG,
        import.meta.filename!,
        "--dim",
        String(dim),
        "--child",
        `${input},${n}`,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    await Deno.remove(input);
    await Deno.remove(`${input}.scores`).catch(() => {});
    return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!) as {
      obs_per_s: number;
      peak_rss: number;
    };
  };
  const one = await run(1);
  const many = await run(keys);
  const perKeyBytes = (many.peak_rss - one.peak_rss) / keys;
  console.log(JSON.stringify(
    {
      observations: n,
      dim,
      one_key: one,
      keys,
      many_keys: many,
      bytes_per_key_beyond_base: Math.round(perKeyBytes),
      rate_ratio: many.obs_per_s / one.obs_per_s,
    },
    null,
    2,
  ));
} finally {
  await Deno.remove(dir, { recursive: true });
}
