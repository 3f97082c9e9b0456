/**
 * `deno task replay <file|dir> [options]`: offline back-testing over recorded NDJSON/CSV streams.
 * Exit codes: 0 done, 1 stopped by --strict or failed while running, 2 bad usage or input.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { DEFAULT_BATCH, DEFAULT_MAX_WARNINGS } from "../../schemas/replay.ts";
import type { ReplayOptionsInput } from "../../schemas/replay.ts";
import { ReplayUsageError } from "../io/errors.ts";
import { replay } from "../replay/replay.ts";

export const USAGE = `usage: deno task replay <file|dir> [options]

Scores (and learns from) every observation of a recorded stream, in input order, and writes one
NDJSON score record per observation. A directory replays every file in it (sorted, recursive),
each file its own key unless a key column is given.

input:
  --columns a,b,c       value columns (CSV) or top-level numeric fields (NDJSON)
  --time-column NAME    time column/field, echoed as "t" (default: t, when present)
  --key-column NAME     model key column/field (default: key, when present; else the file)
  --label-column NAME   0/1 ground truth, echoed as "label" (default: label, when present)
  --delimiter C         CSV delimiter: , ; tab | (default: detected)
  --dim D               dimension (default: from --columns or the first good row, else 3)
model:
  --params-in FILE      start from {"loc":[..],"scale_tril":[[..],..]} or a map key -> that
  --params-out FILE     write the final parameters per key (JSON map)
  --freeze              score only, never learn (needs --params-in for every key)
  --train-rows N        learn from the first N observations of each key, then freeze
  --batch N             rows per engine call (default ${DEFAULT_BATCH})
  --optimizer natural|adam  learning rule (default natural: exact recursive MLE; adam: the original)
  --horizon H           natural: memory in observations (default 10000)
  --change-threshold h  natural: CUSUM limit of the change detector (default 24; 0 = off)
  --lr X  --alpha X  --warmup N  --diag softplus|elu1p|exp  --backend auto|webgpu|cpu
  --seed N              recorded in the summary (the engine is deterministic)
conditional head (docs/model.md):
  --head conditional    a per-key network maps each row's context to loc and scale_tril
  --feature-columns a,b CSV columns / NDJSON fields holding the context features
  --features K          NDJSON: each observation carries "features": [K numbers]
  --time-features daily,weekly  sin/cos of the time of day / week from the time column
  --hidden 32,32        hidden layer widths (default 32,32)
output:
  --out FILE            score records (default: stdout)
  --summary FILE        summary JSON (counts, skipped lines by reason, F1/FAR/MAR with labels)
  --strict              stop at the first bad line (exit 1)
  --max-warnings N      bad lines printed on stderr (default ${DEFAULT_MAX_WARNINGS}; all are counted)
  --quiet               no progress bar, backend line or summary line
  --help, -h            this text`;

const FLAGS = {
  columns: { type: "string" },
  "time-column": { type: "string" },
  "key-column": { type: "string" },
  "label-column": { type: "string" },
  delimiter: { type: "string" },
  dim: { type: "string" },
  "params-in": { type: "string" },
  "params-out": { type: "string" },
  freeze: { type: "boolean" },
  "train-rows": { type: "string" },
  batch: { type: "string" },
  optimizer: { type: "string" },
  horizon: { type: "string" },
  "change-threshold": { type: "string" },
  lr: { type: "string" },
  alpha: { type: "string" },
  warmup: { type: "string" },
  diag: { type: "string" },
  backend: { type: "string" },
  seed: { type: "string" },
  out: { type: "string" },
  summary: { type: "string" },
  strict: { type: "boolean" },
  "max-warnings": { type: "string" },
  quiet: { type: "boolean" },
  head: { type: "string" },
  hidden: { type: "string" },
  "feature-columns": { type: "string" },
  features: { type: "string" },
  "time-features": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Flags → replay options (strings; validation happens in `resolveReplayOptions`). */
export function parseReplayArgs(args: string[]): ReplayOptionsInput | "help" {
  let parsed;
  try {
    parsed = parseArgs({ args, options: FLAGS, allowPositionals: true, strict: true });
  } catch (cause) {
    throw new ReplayUsageError(cause instanceof Error ? cause.message : String(cause), { cause });
  }
  const v = parsed.values;
  if (v.help) return "help";
  if (parsed.positionals.length !== 1) {
    throw new ReplayUsageError(
      `<file|dir>: expected exactly one input, found ${
        parsed.positionals.length === 0 ? "none" : parsed.positionals.join(" ")
      }`,
    );
  }
  return {
    input: parsed.positionals[0],
    columns: v.columns,
    time_column: v["time-column"],
    key_column: v["key-column"],
    label_column: v["label-column"],
    delimiter: v.delimiter,
    dim: v.dim,
    params_in: v["params-in"],
    params_out: v["params-out"],
    freeze: v.freeze ?? false,
    train_rows: v["train-rows"],
    batch: v.batch,
    optimizer: v.optimizer as ReplayOptionsInput["optimizer"],
    horizon: v.horizon,
    change_threshold: v["change-threshold"],
    lr: v.lr,
    alpha: v.alpha,
    warmup: v.warmup,
    diag: v.diag as ReplayOptionsInput["diag"],
    backend: v.backend as ReplayOptionsInput["backend"],
    seed: v.seed,
    out: v.out,
    summary: v.summary,
    strict: v.strict ?? false,
    max_warnings: v["max-warnings"],
    quiet: v.quiet ?? false,
    head: v.head as ReplayOptionsInput["head"],
    hidden: v.hidden,
    feature_columns: v["feature-columns"],
    features: v.features,
    time_features: v["time-features"],
  };
}

/** Runs `replay` with command-line arguments; resolves to the exit code. */
export async function run(args: string[]): Promise<number> {
  try {
    const options = parseReplayArgs(args);
    if (options === "help") {
      console.log(USAGE);
      return 0;
    }
    const summary = await replay(options);
    return summary.stopped ? 1 : 0;
  } catch (e) {
    if (e instanceof ReplayUsageError) {
      console.error(`replay: ${e.message}`);
      console.error("run 'deno task replay --help' for the options");
      return 2;
    }
    console.error(`replay: failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    return 1;
  }
}
