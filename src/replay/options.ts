/**
 * Replay's options: validating them ({@link resolveReplayOptions}), the head configuration they
 * build (the conditional head's part included), the row fields they name, and the dimension
 * (`--dim`, `--columns`, the data, the parameters).
 *
 * @module
 */
import { resolveHeadConfig } from "../config/head_config.ts";
import type { HeadConfig, HeadConfigInput } from "../config/head_config.ts";
import { REPLAY_SETTINGS, ReplayInput } from "../../schemas/replay.ts";
import type { ReplayOptions, ReplayOptionsInput } from "../../schemas/replay.ts";
import { flagValuesOf, resolveSettings } from "../config/settings.ts";
import { BadInputError, ReplayUsageError } from "../io/errors.ts";
import { type InputFile, sniffFormat } from "../io/input_files.ts";
import { CSV_SAMPLE_LINES, CsvParser, type FieldSpec, ndjsonDimOf } from "../io/row_parser.ts";
import { isBlank, openInput } from "./input.ts";
import { paramsDim } from "./params_io.ts";
import type { StartParams } from "./params_io.ts";

/** Dimension when neither `--dim`, `--columns` nor a good row says. */
const FALLBACK_DIM = 3;
/** Non-blank lines per file looked at to infer the dimension. */
const INFER_LINES = 1000;

/**
 * Validates replay options; throws {@link ReplayUsageError} naming the flag, the value given and
 * what was expected.
 */
export function resolveReplayOptions(input: ReplayOptionsInput): ReplayOptions {
  const errors: string[] = [];
  const file = ReplayInput.safeParse(input.input);
  if (!file.success) {
    errors.push(
      `<file|dir>: expected a file or directory path, found ${
        input.input === undefined ? "nothing" : JSON.stringify(input.input)
      }`,
    );
  }
  const r = resolveSettings(REPLAY_SETTINGS, flagValuesOf(REPLAY_SETTINGS, input));
  errors.push(...r.errors);
  if (errors.length > 0) throw new ReplayUsageError(errors.join("\n"));
  const o: ReplayOptions = { ...r.values, input: file.data ?? input.input };
  if (o.freeze && o.train_rows !== undefined) {
    throw new ReplayUsageError(
      "--freeze and --train-rows: expected at most one of them (--freeze learns nothing)",
    );
  }
  if (o.dim !== undefined && o.columns !== undefined && o.columns.length !== o.dim) {
    throw new ReplayUsageError(
      `--dim: expected ${o.columns.length} to match --columns ${
        o.columns.join(",")
      }, found ${o.dim}`,
    );
  }
  return o;
}

/**
 * The head configuration of a replay of dimension `dim`; throws {@link ReplayUsageError} for
 * conditional-head flags that do not fit together.
 */
export function replayHeadConfig(opts: ReplayOptions, dim: number): HeadConfig {
  const { optimizer, horizon, change_threshold, lr, alpha, warmup, diag, backend } = opts;
  const headInput: HeadConfigInput = {
    dim,
    optimizer,
    horizon,
    change_threshold,
    lr,
    alpha,
    warmup,
    diag,
    backend,
  };
  Object.assign(headInput, conditionalInput(opts));
  return resolveHeadConfig(headInput);
}

/**
 * The conditional head's part of the head configuration (`--head conditional`, `--hidden`,
 * `--feature-columns` or `--features`, `--time-features`); throws {@link ReplayUsageError} for
 * context flags without the conditional head, or the conditional head without context.
 */
function conditionalInput(o: ReplayOptions): HeadConfigInput {
  const features = o.feature_columns?.length ?? o.features ?? 0;
  const periods = o.time_features ?? [];
  if (o.head !== "conditional") {
    const given = [
      o.feature_columns && "--feature-columns",
      o.features && "--features",
      o.time_features && "--time-features",
      o.hidden && "--hidden",
    ].filter((f) => f);
    if (given.length > 0) {
      throw new ReplayUsageError(
        `${given[0]}: expected --head conditional, found the default head`,
      );
    }
    return {};
  }
  if (features === 0 && periods.length === 0) {
    throw new ReplayUsageError(
      "--head conditional: expected context (--feature-columns, --features or --time-features), found none",
    );
  }
  if (o.feature_columns !== undefined && o.features !== undefined && o.features !== features) {
    throw new ReplayUsageError(
      `--features: expected ${features} to match --feature-columns, found ${o.features}`,
    );
  }
  const input: HeadConfigInput = { head: "conditional", features, time_features: [...periods] };
  if (o.hidden !== undefined) input.hidden = o.hidden;
  return input;
}

/** The row fields the options name (columns, features, time, key, label, delimiter). */
export function fieldSpec(o: ReplayOptions): FieldSpec {
  return {
    features: o.feature_columns,
    columns: o.columns,
    time: o.time_column,
    key: o.key_column,
    label: o.label_column,
    delimiter: o.delimiter,
  };
}

/** `--dim`, else the number of `--columns`, else the first good row, else the params, else 3. */
export async function resolveDim(
  o: ReplayOptions,
  files: readonly InputFile[],
  fields: FieldSpec,
  params: StartParams | null,
): Promise<number> {
  const pDim = params === null ? undefined : paramsDim(params);
  const dim = o.dim ?? o.columns?.length ?? (await inferDim(files, fields)) ?? pDim ??
    FALLBACK_DIM;
  if (pDim !== undefined && pDim !== dim) {
    throw new ReplayUsageError(
      `--params-in '${o.params_in}': expected parameters of dimension ${dim} (the data's), found ${pDim}`,
    );
  }
  return dim;
}

/** Dimension of the first good row of the first file that has one. */
async function inferDim(
  files: readonly InputFile[],
  fields: FieldSpec,
): Promise<number | undefined> {
  for (const file of files) {
    await using src = await openInput(file);
    let format = file.format;
    let seen = 0;
    let header: string | null = null;
    const samples: string[] = [];
    for (let chunk = await src.next(); chunk !== null; chunk = await src.next()) {
      for (const line of chunk.lines) {
        if (isBlank(line)) continue;
        if (format === "auto") format = sniffFormat(line);
        if (format === "ndjson") {
          const d = ndjsonDimOf(line, fields);
          if (d !== undefined) return d;
        } else if (header === null) {
          header = line;
        } else {
          samples.push(line);
          if (samples.length >= CSV_SAMPLE_LINES) break;
        }
        if (++seen >= INFER_LINES) break;
      }
      if (seen >= INFER_LINES || samples.length >= CSV_SAMPLE_LINES) break;
    }
    if (header !== null && samples.length > 0) {
      try {
        return new CsvParser(header, samples, fields).dim;
      } catch (e) {
        if (!(e instanceof BadInputError)) throw e;
      }
    }
  }
  return undefined;
}
