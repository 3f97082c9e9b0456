/**
 * Reading replay's input files: opening them (a {@link ReplayUsageError} when one cannot be),
 * telling blank lines, and the rows the conditional head cannot take.
 *
 * @module
 */
import { BadInputError, ReplayUsageError } from "../io/errors.ts";
import type { InputFile } from "../io/input_files.ts";
import { LineSource } from "../io/line_source.ts";
import type { ParsedRow } from "../io/row_parser.ts";
import { timeMs } from "../model/time_features.ts";

/** Whether a line is empty or only white space. */
export function isBlank(line: string): boolean {
  return line.length === 0 || (line.charCodeAt(0) <= 32 && line.trim() === "");
}

/** Opens an input file; throws {@link ReplayUsageError} when it cannot be opened. */
export async function openInput(file: InputFile): Promise<LineSource> {
  try {
    return await LineSource.open(file.path);
  } catch (cause) {
    throw new ReplayUsageError(`input '${file.path}': cannot be opened (${String(cause)})`, {
      cause,
    });
  }
}

/** Why a row cannot feed the conditional head (features of the wrong count, no time), or null. */
export function contextProblem(
  row: ParsedRow,
  features: number,
  timed: boolean,
): BadInputError | null {
  if (features > 0) {
    const f = row.features;
    if (f === undefined || f.length !== features) {
      return new BadInputError(
        "features",
        `expected ${features} features, found ${f === undefined ? "none" : f.length}`,
      );
    }
  }
  if (timed && !Number.isFinite(timeMs(row.t))) {
    return new BadInputError(
      "bad_time",
      `expected a time (epoch number or ISO-8601) for --time-features, found ${
        row.t === undefined ? "none" : JSON.stringify(row.t)
      }`,
    );
  }
  return null;
}
