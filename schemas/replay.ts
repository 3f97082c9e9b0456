/**
 * Boundaries of `replay`: its options (from flags or a programmatic caller, one settings table:
 * src/config/settings.ts), the `--params-in` file and the `--summary` file. Flags arrive as
 * strings; every numeric option also accepts a number so that programmatic callers need not
 * stringify.
 *
 * @module
 */
import { z } from "zod";
import { NetworkArchitecture } from "./messages.ts";
import { MAX_DIM } from "../src/config/head_config.ts";
import { ALARM_THRESHOLD_SETTING, MODEL_SETTINGS } from "../src/config/model_settings.ts";
import {
  list,
  num,
  option,
  type Resolved,
  type SettingsInput,
  toggle,
} from "../src/config/settings.ts";

/** Default mini-batch size (rows per engine call). */
export const DEFAULT_BATCH = 64;
/** Default cap on bad-input lines printed to stderr (all are still counted). */
export const DEFAULT_MAX_WARNINGS = 100;

const Name = z.string().trim().min(1);

/** `\t`, `tab` and `\\t` all mean a tab; any other single character is taken literally. */
const Delimiter = z.preprocess(
  (v) => (v === "tab" || v === "\\t" ? "\t" : v),
  z.enum([",", ";", "\t", "|"]),
);

const INPUT = "input";
const MODEL = "model";
const OUTPUT = "output";
const FILE = "FILE";

/** A replay setting naming a file. */
const file = <const F extends string>(flag: F, group: string, help: string) =>
  option({ flag, arg: FILE, group, schema: Name, help, expects: "a file path" });

/** A column-name setting. */
const column = <const F extends string>(flag: F, help: string) =>
  option({ flag, arg: "NAME", group: INPUT, schema: Name, help, expects: "a column name" });

/**
 * Options of one replay run (flags, or a programmatic caller's fields of the same names); see
 * `docs/replay.md` for each. The input file or directory is the one positional argument.
 */
export const REPLAY_SETTINGS = {
  columns: option({
    flag: "columns",
    arg: "a,b,c",
    group: INPUT,
    schema: list(z.array(Name).min(1).max(MAX_DIM).refine((a) => new Set(a).size === a.length)),
    expects: `1 to ${MAX_DIM} distinct comma-separated column names`,
    help: "value columns (CSV) or top-level numeric fields (NDJSON)",
  }),
  time_column: column("time-column", 'time column/field, echoed as "t" (default: t, when present)'),
  key_column: column(
    "key-column",
    "model key column/field (default: key, when present; else the file)",
  ),
  label_column: column(
    "label-column",
    'ground truth 0/1, echoed as "label" (default: label, when present)',
  ),
  delimiter: option({
    flag: "delimiter",
    arg: "C",
    group: INPUT,
    schema: Delimiter,
    expects: "one of ',', ';', tab, '|'",
    help: "CSV delimiter: , ; tab | (default: detected)",
  }),
  dim: {
    ...MODEL_SETTINGS.dim,
    group: INPUT,
    default: undefined,
    help: "dimension (default: from --columns or the first good row, else 3)",
  },
  params_in: file(
    "params-in",
    MODEL,
    'start from {"loc":[..],"scale_tril":[[..],..]} or a map key -> that',
  ),
  params_out: file("params-out", MODEL, "write the final parameters per key (JSON map)"),
  freeze: toggle({
    flag: "freeze",
    group: MODEL,
    help: "score only, never learn (needs --params-in for every key)",
  }),
  train_rows: option({
    flag: "train-rows",
    arg: "N",
    group: MODEL,
    schema: num(z.number().int().min(0)),
    help: "learn from the first N observations of each key, then freeze",
  }),
  batch: option({
    flag: "batch",
    arg: "N",
    group: MODEL,
    schema: num(z.number().int().min(1).max(1 << 20)),
    default: DEFAULT_BATCH,
    help: "rows per engine call",
  }),
  optimizer: MODEL_SETTINGS.optimizer,
  horizon: MODEL_SETTINGS.horizon,
  change_threshold: MODEL_SETTINGS.change_threshold,
  lr: MODEL_SETTINGS.lr,
  alpha: MODEL_SETTINGS.alpha,
  warmup: MODEL_SETTINGS.warmup,
  diag: MODEL_SETTINGS.diag,
  backend: MODEL_SETTINGS.backend,
  head: MODEL_SETTINGS.head,
  hidden: MODEL_SETTINGS.hidden,
  features: MODEL_SETTINGS.features,
  time_features: MODEL_SETTINGS.time_features,
  feature_columns: option({
    flag: "feature-columns",
    arg: "a,b",
    group: MODEL,
    schema: list(
      z.array(Name).min(1).max(1024).refine(
        (a) => new Set(a).size === a.length,
        "expected distinct names",
      ),
    ),
    expects: "distinct comma-separated column names",
    help: "conditional: CSV columns / NDJSON fields holding the context features",
  }),
  seed: option({
    flag: "seed",
    arg: "N",
    group: MODEL,
    schema: num(z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)),
    help: "recorded in the summary (the engine is deterministic)",
  }),
  out: file("out", OUTPUT, "score records (default: stdout)"),
  summary: file(
    "summary",
    OUTPUT,
    "summary JSON (counts, skipped lines by reason, F1/FAR/MAR with labels for anomaly and " +
      "alarm, episode metrics)",
  ),
  alarms: file("alarms", OUTPUT, 'alarm episodes, one NDJSON line each (docs/model.md, "Alarms")'),
  alarm_threshold: ALARM_THRESHOLD_SETTING,
  strict: toggle({ flag: "strict", group: OUTPUT, help: "stop at the first bad line (exit 1)" }),
  max_warnings: option({
    flag: "max-warnings",
    arg: "N",
    group: OUTPUT,
    schema: num(z.number().int().min(0)),
    default: DEFAULT_MAX_WARNINGS,
    help: "bad lines printed on stderr (all are counted)",
  }),
  quiet: toggle({
    flag: "quiet",
    group: OUTPUT,
    help: "no progress bar, backend line or summary line",
  }),
} as const;

/** The input file or directory: checked like a setting, named `<file|dir>` in errors. */
export const ReplayInput = Name;

/** What a caller may pass: the input, and each setting as a flag's string or a typed value. */
export type ReplayOptionsInput =
  & { readonly input: string }
  & SettingsInput<typeof REPLAY_SETTINGS>;
/** Resolved options. */
export type ReplayOptions = { readonly input: string } & Resolved<typeof REPLAY_SETTINGS>;

const Finite = z.number().refine(Number.isFinite, { message: "expected a finite number" });

/** Public parameters of one head as given in a `--params-in` file (extra fields are ignored). */
export const ParamsEntry = z.object({
  loc: z.array(Finite).min(1).max(MAX_DIM),
  /** Rows of length i+1 (ragged lower triangle) or d (full, zeros above the diagonal). */
  scale_tril: z.array(z.array(Finite).min(1)).min(1).max(MAX_DIM),
});
export type ParamsEntry = z.output<typeof ParamsEntry>;

/** A `--params-in` file: one entry for every key, or a map key → entry. */
export const ParamsFile = z.union([
  ParamsEntry,
  z.record(z.string().min(1), ParamsEntry).refine((m) => Object.keys(m).length > 0, {
    message: "expected at least one key",
  }),
]);
export type ParamsFile = z.output<typeof ParamsFile>;

/** One key of a `--params-out` file. */
export const ParamsOutEntry = z.object({
  loc: z.array(z.number()),
  scale_tril: z.array(z.array(z.number())),
  covariance: z.array(z.array(z.number())),
  observations: z.number().int().min(0),
  steps: z.number().int().min(0),
  rejected_updates: z.number().int().min(0),
  /** Conditional head: loc/scale_tril are at `context`; the network's shape and version. */
  head: z.literal("conditional").optional(),
  architecture: NetworkArchitecture.optional(),
  context: z.array(z.number()).optional(),
  version: z.number().int().min(0).optional(),
});
export type ParamsOutEntry = z.output<typeof ParamsOutEntry>;
/** A `--params-out` file: key → final parameters, keys sorted. */
export const ParamsOutFile = z.record(z.string(), ParamsOutEntry);
export type ParamsOutFile = z.output<typeof ParamsOutFile>;

/** Reasons a line can be skipped. */
export const SKIP_REASONS = [
  "malformed",
  "shape",
  "dimension",
  "non_finite",
  "bad_cell",
  "empty_cell",
  "bad_key",
  "bad_time",
  "header",
  "features",
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

const Rate = z.number().min(0).max(1).nullable();

/** Confusion counts and rates against the label column (pooled over keys). */
export const ReplayMetrics = z.object({
  labelled: z.number().int().min(0),
  tp: z.number().int().min(0),
  fp: z.number().int().min(0),
  fn: z.number().int().min(0),
  tn: z.number().int().min(0),
  /** 2TP / (2TP + FP + FN); null when there is nothing to rate. */
  f1: Rate,
  /** False alarm rate FP / (FP + TN); null without negatives. */
  far: Rate,
  /** Missed alarm rate FN / (FN + TP); null without positives. */
  mar: Rate,
});
export type ReplayMetrics = z.output<typeof ReplayMetrics>;

/** Episode metrics of one flag series (`src/replay/episode_metrics.ts`). */
export const EpisodeMetricsOut = z.object({
  /** Labelled observations rated. */
  observations: z.number().int().min(0),
  /** Labelled anomaly segments (maximal runs of label 1 per key). */
  segments: z.number().int().min(0),
  /** Segments with a flag on at one of their observations. */
  detected: z.number().int().min(0),
  missed: z.number().int().min(0),
  /** Observations from a detected segment's start to its first flag: mean and median. */
  mean_delay: z.number().min(0).nullable(),
  median_delay: z.number().min(0).nullable(),
  /** Maximal runs of flagged observations per key. */
  flagged_episodes: z.number().int().min(0),
  /** Flagged runs that touch no label-1 observation. */
  false_episodes: z.number().int().min(0),
  /** false_episodes per 10,000 labelled observations. */
  false_per_10k: z.number().min(0).nullable(),
});
export type EpisodeMetricsOut = z.output<typeof EpisodeMetricsOut>;

/** A value column found constant or collinear over a key's first training rows (one per column). */
export const DegenerateEntry = z.object({
  key: z.string(),
  /** 0-based position among the value columns (as in `contrib`). */
  index: z.number().int().min(0),
  /** The CSV column or NDJSON `--columns` field; null for NDJSON observation forms. */
  column: z.string().nullable(),
  kind: z.enum(["constant", "collinear"]),
  /** Collinear: indices of the earlier columns it is a combination of. */
  with: z.array(z.number().int().min(0)),
  /** Training rows it was judged on. */
  rows: z.number().int().min(2),
});
export type DegenerateEntry = z.output<typeof DegenerateEntry>;

/** The `--summary` file (and the value `replay()` resolves to). */
export const ReplaySummary = z.object({
  input: z.string(),
  files: z.number().int().min(0),
  dim: z.number().int().min(1),
  observations: z.number().int().min(0),
  anomalies: z.number().int().min(0),
  keys: z.number().int().min(0),
  skipped: z.number().int().min(0),
  skipped_by_reason: z.record(z.string(), z.number().int().min(1)),
  blank_lines: z.number().int().min(0),
  /** Rows whose label could not be read: scored, left unlabelled (not in `metrics`). */
  bad_labels: z.number().int().min(0),
  /** Constant or collinear value columns, per key (each also warned once on stderr). */
  degenerate_columns: z.array(DegenerateEntry),
  /** True when `--strict` stopped the run at a bad line. */
  stopped: z.boolean(),
  seconds: z.number().min(0),
  obs_per_s: z.number().min(0),
  backend: z.string(),
  backend_reason: z.string(),
  seed: z.number().int().nullable(),
  batch: z.number().int().min(1),
  freeze: z.boolean(),
  train_rows: z.number().int().min(0).nullable(),
  /** Point metrics of `anomaly` against the labels. */
  metrics: ReplayMetrics.nullable(),
  /** CUSUM threshold of the alarms, in decades of −log10 p (`--alarm-threshold`). */
  alarm_threshold: z.number().positive(),
  /** Alarm episodes (closed, plus those still open at the end of the input). */
  alarm_episodes: z.number().int().min(0),
  /** Point metrics of `alarm` against the labels. */
  alarm_metrics: ReplayMetrics.nullable(),
  /** Episode metrics of `anomaly` and of `alarm` against the labels. */
  episode_metrics: z.object({ anomaly: EpisodeMetricsOut, alarm: EpisodeMetricsOut }).nullable(),
});
export type ReplaySummary = z.output<typeof ReplaySummary>;
