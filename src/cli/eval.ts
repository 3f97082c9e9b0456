/**
 * `deno task eval [options]`: the public benchmark (`src/eval/eval.ts`, docs/eval.md): markdown
 * tables on stdout, `--json FILE` for the figures. Exit codes: 0 done, 1 failed, 2 bad usage.
 *
 * @module
 */
import { z } from "zod";
import {
  num,
  option,
  parseFlags,
  resolveSettings,
  SettingsError,
  toggle,
} from "../config/settings.ts";
import { usage } from "../config/settings_usage.ts";
import { DEFAULT_SUITE, QUICK_SUITE, type SuiteSpec } from "../eval/suite.ts";
import { markdown, runEval } from "../eval/eval.ts";

const GROUP = "eval";
const File = z.string().trim().min(1);

const SETTINGS = {
  seed: option({
    flag: "seed",
    arg: "N",
    group: GROUP,
    schema: num(z.number().int().min(0).max(2 ** 31)),
    help: `suite seed (default ${DEFAULT_SUITE.seed}; ${QUICK_SUITE.seed} with --quick)`,
  }),
  quick: toggle({
    flag: "quick",
    group: GROUP,
    help: `a tiny suite (d ${
      QUICK_SUITE.dims.join(" and ")
    }, ${QUICK_SUITE.rows} rows each), for smoke tests`,
  }),
  out: option({
    flag: "out",
    arg: "DIR",
    group: GROUP,
    schema: File,
    help: "keep the recordings and score records in DIR (default: a temp dir, removed)",
  }),
  json: option({
    flag: "json",
    arg: "FILE",
    group: GROUP,
    schema: File,
    help: "write the figures as JSON",
  }),
  backend: option({
    flag: "backend",
    arg: "auto|webgpu|cpu",
    group: GROUP,
    schema: z.enum(["auto", "webgpu", "cpu"]),
    default: "auto",
    help: "engine backend (auto is the project default)",
  }),
} as const;

export const USAGE = usage(SETTINGS, {
  synopsis: `usage: deno task eval [options]

Generates a seeded suite of multi-sensor recordings with labelled anomalies (spikes, level
shifts, variance bursts, correlation breaks, stuck sensors, slow drifts), scores each with this
project's defaults and with a fit-once Hotelling T² chart, and prints point and episode metrics
(docs/eval.md).`,
  groups: [GROUP],
});

export async function run(args: string[]): Promise<number> {
  let values;
  try {
    const parsed = parseFlags(SETTINGS, args);
    if (parsed.help) {
      console.log(USAGE);
      return 0;
    }
    const resolved = resolveSettings(SETTINGS, parsed.values, {});
    const errors = [...resolved.errors];
    if (parsed.positionals.length > 0) {
      errors.unshift(`unexpected argument '${parsed.positionals[0]}': eval takes only options`);
    }
    if (errors.length > 0) throw new SettingsError(errors);
    values = resolved.values;
  } catch (e) {
    if (!(e instanceof SettingsError)) throw e;
    console.error(`eval: ${e.message}\n${USAGE}`);
    return 2;
  }
  let suite: SuiteSpec = values.quick ? QUICK_SUITE : DEFAULT_SUITE;
  if (values.seed !== undefined) suite = { ...suite, seed: values.seed };
  try {
    const result = await runEval({
      suite,
      dir: values.out,
      backend: values.backend,
      log: (l) => console.error(l),
    });
    console.log(markdown(result));
    if (values.json !== undefined) {
      await Deno.writeTextFile(values.json, JSON.stringify(result, null, 2) + "\n");
    }
    return 0;
  } catch (e) {
    console.error(`eval: failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    return 1;
  }
}
