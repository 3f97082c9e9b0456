/**
 * Boundaries of `replay`: its options (from flags or a programmatic caller), the `--params-in`
 * file and the `--summary` file. Flags arrive as strings; every numeric option also accepts a
 * number so that programmatic callers need not stringify.
 *
 * @module
 */
import { z } from "zod";
import { MAX_DIM } from "../src/config/head_config.ts";

/** Default mini-batch size (rows per engine call). */
export const DEFAULT_BATCH = 64;
/** Default cap on bad-input lines printed to stderr (all are still counted). */
export const DEFAULT_MAX_WARNINGS = 100;

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Strict string → number: only plain decimal literals (no hex, no empty string). */
function toNumber(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const s = value.trim();
  return DECIMAL.test(s) ? Number(s) : Number.NaN;
}

const num = <T extends z.ZodType>(inner: T) => z.preprocess(toNumber, inner);

const Name = z.string().trim().min(1);

/** Comma-separated list of column names (or an array of them). */
const Columns = z.preprocess(
  (v) => (typeof v === "string" ? v.split(",").map((s) => s.trim()) : v),
  z.array(Name).min(1).max(MAX_DIM).refine((a) => new Set(a).size === a.length),
);

/** `\t`, `tab` and `\\t` all mean a tab; any other single character is taken literally. */
const Delimiter = z.preprocess(
  (v) => (v === "tab" || v === "\\t" ? "\t" : v),
  z.enum([",", ";", "\t", "|"]),
);

/** Options of one replay run, fully validated; see `docs/replay.md` for each. */
export const ReplayOptions = z.object({
  /** File or directory to replay. */
  input: Name,
  out: Name.optional(),
  summary: Name.optional(),
  params_in: Name.optional(),
  params_out: Name.optional(),
  freeze: z.boolean().default(false),
  train_rows: num(z.number().int().min(0)).optional(),
  batch: num(z.number().int().min(1).max(1 << 20)).default(DEFAULT_BATCH),
  dim: num(z.number().int().min(1).max(MAX_DIM)).optional(),
  optimizer: z.enum(["natural", "adam"]).optional(),
  horizon: num(z.number().gt(1)).optional(),
  change_threshold: num(z.number().min(0)).optional(),
  lr: num(z.number().positive().max(10)).optional(),
  alpha: num(z.number().gt(0).lt(1)).optional(),
  warmup: num(z.number().int().min(0)).optional(),
  diag: z.enum(["softplus", "elu1p", "exp"]).optional(),
  backend: z.enum(["auto", "webgpu", "cpu"]).default("auto"),
  seed: num(z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)).optional(),
  strict: z.boolean().default(false),
  quiet: z.boolean().default(false),
  delimiter: Delimiter.optional(),
  columns: Columns.optional(),
  time_column: Name.optional(),
  key_column: Name.optional(),
  label_column: Name.optional(),
  max_warnings: num(z.number().int().min(0)).default(DEFAULT_MAX_WARNINGS),
  head: z.enum(["unconditional", "conditional"]).default("unconditional"),
  /** Conditional head: hidden widths, comma-separated. */
  hidden: z.preprocess(
    (v) => (typeof v === "string" ? v.split(",").map((s) => toNumber(s)) : v),
    z.array(z.number().int().min(1).max(1024)).min(1).max(8),
  ).optional(),
  /** Conditional head: CSV columns / NDJSON fields holding the context features. */
  feature_columns: z.preprocess(
    (v) => (typeof v === "string" ? v.split(",").map((s) => s.trim()) : v),
    z.array(Name).min(1).max(1024).refine((a) => new Set(a).size === a.length),
  ).optional(),
  /** Conditional head: count of the `features` array each NDJSON observation carries. */
  features: num(z.number().int().min(1).max(1024)).optional(),
  /** Conditional head: periods of the time features, comma-separated (daily, weekly). */
  time_features: z.preprocess(
    (v) => (typeof v === "string" ? v.split(",").map((s) => s.trim()) : v),
    z.array(z.enum(["daily", "weekly"])).min(1).max(2).refine((a) => new Set(a).size === a.length),
  ).optional(),
});

/** What a caller may pass (flags as strings, or typed values). */
export type ReplayOptionsInput = z.input<typeof ReplayOptions>;
/** Resolved options. */
export type ReplayOptions = z.output<typeof ReplayOptions>;

/** For each option: its flag and, for error messages, what it expects. */
export const REPLAY_OPTION_INFO: Readonly<
  Record<keyof ReplayOptions, { readonly flag: string; readonly expects: string }>
> = {
  input: { flag: "<file|dir>", expects: "a file or directory path" },
  out: { flag: "--out", expects: "a file path" },
  summary: { flag: "--summary", expects: "a file path" },
  params_in: { flag: "--params-in", expects: "a file path" },
  params_out: { flag: "--params-out", expects: "a file path" },
  freeze: { flag: "--freeze", expects: "a boolean switch" },
  train_rows: { flag: "--train-rows", expects: "an integer ≥ 0" },
  batch: { flag: "--batch", expects: `an integer in [1, ${1 << 20}]` },
  dim: { flag: "--dim", expects: `an integer in [1, ${MAX_DIM}]` },
  optimizer: { flag: "--optimizer", expects: "one of natural, adam" },
  horizon: { flag: "--horizon", expects: "a number > 1" },
  change_threshold: { flag: "--change-threshold", expects: "a number ≥ 0" },
  lr: { flag: "--lr", expects: "a number in (0, 10]" },
  alpha: { flag: "--alpha", expects: "a number in (0, 1)" },
  warmup: { flag: "--warmup", expects: "an integer ≥ 0" },
  diag: { flag: "--diag", expects: "one of softplus, elu1p, exp" },
  backend: { flag: "--backend", expects: "one of auto, webgpu, cpu" },
  seed: { flag: "--seed", expects: "an integer ≥ 0" },
  strict: { flag: "--strict", expects: "a boolean switch" },
  quiet: { flag: "--quiet", expects: "a boolean switch" },
  delimiter: { flag: "--delimiter", expects: "one of ',', ';', tab, '|'" },
  columns: {
    flag: "--columns",
    expects: `1 to ${MAX_DIM} distinct comma-separated column names`,
  },
  time_column: { flag: "--time-column", expects: "a column name" },
  key_column: { flag: "--key-column", expects: "a column name" },
  label_column: { flag: "--label-column", expects: "a column name" },
  max_warnings: { flag: "--max-warnings", expects: "an integer ≥ 0" },
  head: { flag: "--head", expects: "one of unconditional, conditional" },
  hidden: { flag: "--hidden", expects: "1 to 8 comma-separated layer widths in [1, 1024]" },
  feature_columns: {
    flag: "--feature-columns",
    expects: "distinct comma-separated column names",
  },
  features: { flag: "--features", expects: "an integer in [1, 1024]" },
  time_features: { flag: "--time-features", expects: "daily, weekly or daily,weekly" },
};

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
  architecture: z.object({
    inputs: z.number().int(),
    hidden: z.array(z.number().int()),
    activation: z.enum(["tanh", "relu"]),
    outputs: z.number().int(),
    diag: z.enum(["softplus", "elu1p", "exp"]),
    time_features: z.array(z.enum(["daily", "weekly"])),
  }).optional(),
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
  metrics: ReplayMetrics.nullable(),
});
export type ReplaySummary = z.output<typeof ReplaySummary>;
