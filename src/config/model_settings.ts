/**
 * The model flags shared by `start` and `replay` (`--dim --diag --optimizer --horizon
 * --change-threshold --lr --alpha --warmup --backend`): one entry per flag, whose schema and default are the field of
 * {@link HeadConfigInput} of the same name. A new head field becomes a flag with one entry here.
 *
 * @module
 */
import { z } from "zod";
import { HeadConfigInput } from "./head_config.ts";
import { list, num, option, type Setting } from "./settings.ts";
import { DEFAULT_ALARM_THRESHOLD } from "../model/alarm.ts";

const HEAD = HeadConfigInput.shape;
type HeadShape = typeof HEAD;
type HeadKey = keyof HeadShape;
/** The resolved type of a head field. */
type HeadValue<K extends HeadKey> = Exclude<z.output<HeadShape[K]>, undefined>;

/** Usage heading of the model flags. */
export const MODEL_GROUP = "model";

/**
 * A setting for the head field `key`: its flag is the field's name (or `flag`), its schema the
 * field's (numbers read from the flag's string), its default the field's default, its placeholder
 * `arg` (default: the choices of an enum, else X).
 */
export function headSetting<const K extends HeadKey, const F extends string = K>(
  key: K,
  spec: { readonly flag?: F; readonly arg?: string; readonly help: string },
): Setting<
  z.ZodType<HeadValue<K>, string | HeadValue<K>>,
  HeadShape[K] extends z.ZodDefault ? HeadValue<K> : undefined,
  F
> {
  const field: z.ZodType = HEAD[key];
  const inner = field instanceof z.ZodDefault || field instanceof z.ZodOptional
    ? field.unwrap()
    : field;
  const schema = inner instanceof z.ZodNumber ? num(inner) : inner;
  return {
    flag: (spec.flag ?? key) as F,
    arg: spec.arg ?? (inner instanceof z.ZodEnum ? inner.options.join("|") : "X"),
    help: spec.help,
    group: MODEL_GROUP,
    schema: schema as z.ZodType<HeadValue<K>, string | HeadValue<K>>,
    default:
      (field instanceof z.ZodDefault ? field.def.defaultValue : undefined) as HeadShape[K] extends
        z.ZodDefault ? HeadValue<K> : undefined,
  };
}

/** The head flags: keys are {@link HeadConfigInput} fields, so resolved values feed it as they are. */
export const MODEL_SETTINGS = {
  dim: headSetting("dim", { arg: "N", help: "dimension d of the observations" }),
  diag: headSetting("diag", { help: "positive transform of the raw diagonal" }),
  optimizer: headSetting("optimizer", {
    help: "learning rule; natural: exact recursive MLE with forgetting and change detection; " +
      "adam: the original Adam recipe",
  }),
  horizon: headSetting("horizon", { arg: "H", help: "natural: memory in observations" }),
  change_threshold: headSetting("change_threshold", {
    flag: "change-threshold",
    arg: "h",
    help: "natural: CUSUM limit of the change detector (0 = off)",
  }),
  lr: headSetting("lr", { arg: "X", help: "Adam learning rate, in whitened units (adam only)" }),
  alpha: headSetting("alpha", { arg: "P", help: "anomaly threshold on the p-value" }),
  warmup: headSetting("warmup", {
    arg: "N",
    help: "observations a key must have seen before it may flag anomalies " +
      "(default 10·dim with natural, 256 with adam)",
  }),
  backend: headSetting("backend", { help: "auto: webgpu on a hardware adapter, else cpu" }),
  // The conditional head (docs/model.md): no defaults here, so that a flag given without
  // `--head conditional` can be told from one left out (the head's defaults apply).
  head: headSetting("head", {
    help: "unconditional, or conditional: a per-key network maps each observation's context " +
      "(features, time) to loc and scale_tril",
  }),
  hidden: option({
    flag: "hidden",
    arg: "W,W",
    group: MODEL_GROUP,
    schema: list(z.array(num(z.number().int().min(1).max(1024))).min(1).max(8)),
    expects: "1 to 8 comma-separated layer widths in [1, 1024]",
    help: "conditional: hidden layer widths (default 32,32)",
  }),
  features: option({
    flag: "features",
    arg: "K",
    group: MODEL_GROUP,
    schema: num(z.number().int().min(1).max(1024)),
    help: 'conditional: each observation carries "features": [K numbers]',
  }),
  time_features: option({
    flag: "time-features",
    arg: "daily,weekly",
    group: MODEL_GROUP,
    schema: list(
      z.array(z.enum(["daily", "weekly"])).min(1).max(2).refine(
        (a) => new Set(a).size === a.length,
        "expected distinct periods",
      ),
    ),
    expects: "daily, weekly or daily,weekly",
    help: "conditional: sin/cos of the time of day / of the week (UTC) from each observation's t",
  }),
} as const;

/**
 * `--alarm-threshold` (start and replay): the CUSUM threshold of the per-key alarm, in decades of
 * −log10 p (`src/model/alarm.ts`, docs/model.md "Alarms"). Not a head field: the alarm sits on the
 * scores.
 */
export const ALARM_THRESHOLD_SETTING = option({
  flag: "alarm-threshold",
  env: "MVN_ALARM_THRESHOLD",
  arg: "H",
  group: MODEL_GROUP,
  schema: num(z.number().positive().refine(Number.isFinite, "expected a finite number")),
  default: DEFAULT_ALARM_THRESHOLD,
  expects: "a finite number > 0 (decades of -log10 p)",
  help: "alarm: CUSUM threshold in decades of -log10 p; opens on one p <= 1e-8 or a short run " +
    "well beyond alpha",
});
