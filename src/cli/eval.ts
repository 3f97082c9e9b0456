/**
 * `deno task eval [options]`: the public benchmark (`src/eval/eval.ts`, docs/eval.md): markdown
 * tables on stdout, `--json FILE` for the figures. Exit codes: 0 done, 1 failed, 2 bad usage.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { DEFAULT_SUITE, QUICK_SUITE, type SuiteSpec } from "../eval/suite.ts";
import { markdown, runEval } from "../eval/eval.ts";

export const USAGE = `usage: deno task eval [options]

Generates a seeded suite of multi-sensor recordings with labelled anomalies (spikes, level
shifts, variance bursts, correlation breaks, stuck sensors, slow drifts), scores each with this
project's defaults and with a fit-once Hotelling T² chart, and prints point and episode metrics.

  --seed N          suite seed (default ${DEFAULT_SUITE.seed})
  --quick           a tiny suite (d 3 and 5, ${QUICK_SUITE.rows} rows each), for smoke tests
  --out DIR         keep the recordings and score records in DIR (default: a temp dir, removed)
  --json FILE       write the figures as JSON
  --backend B       auto (default), cpu or webgpu
  --help, -h        this text`;

export async function run(args: string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args,
      options: {
        seed: { type: "string" },
        quick: { type: "boolean" },
        out: { type: "string" },
        json: { type: "string" },
        backend: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }).values;
  } catch (e) {
    console.error(`eval: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  let suite: SuiteSpec = v.quick ? QUICK_SUITE : DEFAULT_SUITE;
  if (v.seed !== undefined) {
    const seed = Number(v.seed);
    if (!Number.isInteger(seed) || seed < 0) {
      console.error(`eval: --seed: expected an integer ≥ 0, found '${v.seed}'`);
      return 2;
    }
    suite = { ...suite, seed };
  }
  const backend = v.backend ?? "auto";
  if (backend !== "auto" && backend !== "cpu" && backend !== "webgpu") {
    console.error(`eval: --backend: expected auto, cpu or webgpu, found '${backend}'`);
    return 2;
  }
  try {
    const result = await runEval({
      suite,
      dir: v.out,
      backend,
      log: (l) => console.error(l),
    });
    console.log(markdown(result));
    if (v.json !== undefined) {
      await Deno.writeTextFile(v.json, JSON.stringify(result, null, 2) + "\n");
    }
    return 0;
  } catch (e) {
    console.error(`eval: failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    return 1;
  }
}
