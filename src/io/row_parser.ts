/**
 * Turns one input line into one observation row: NDJSON (`./ndjson_parser.ts`: the observation
 * forms of `src/wire/observation.ts`, or named top-level numeric fields) and CSV
 * (`./csv_parser.ts`: named or auto-detected numeric columns), laid out by a `FieldSpec`
 * (`./field_spec.ts`); labels are read by `./labels.ts`. A bad line throws `BadInputError`
 * (`./errors.ts`) with a reason and a message saying what was expected and what was found.
 *
 * @module
 */
export { brief } from "./errors.ts";
export { CSV_SAMPLE_LINES, CsvParser } from "./csv_parser.ts";
export type { FieldSpec } from "./field_spec.ts";
export { type LabelRead, readLabel } from "./labels.ts";
export { ndjsonDimOf, NdjsonParser } from "./ndjson_parser.ts";

/**
 * One parsed row. `key` undefined means "the file's key". `labelProblem` is set when the row has
 * a label that could not be read (`label` is then undefined): the row is still good.
 */
export interface ParsedRow {
  readonly values: ArrayLike<number>;
  readonly key: string | undefined;
  readonly t: number | string | undefined;
  readonly label: 0 | 1 | undefined;
  readonly labelProblem?: string;
  /** Context features (named feature columns, or an NDJSON observation's `features`). */
  readonly features?: ArrayLike<number>;
}

/** Parses the data lines of one file. */
export interface RowParser {
  readonly dim: number;
  /**
   * How messages name each value: `column 'temp'` (CSV), `field 'temp'` (NDJSON `--columns`) or
   * `value 2` (NDJSON observation forms).
   */
  readonly valueNames: readonly string[];
  parse(line: string): ParsedRow;
}
