/**
 * CSV lines as observation rows, laid out by the file's header: named or auto-detected numeric
 * value columns, and the time/key/label/feature columns.
 *
 * @module
 */
import { BadInputError, brief } from "./errors.ts";
import { detectDelimiter, looksNumeric, parseNumericCell, splitCsvLine } from "./csv.ts";
import type { Delimiter } from "./csv.ts";
import { DEFAULT_KEY, DEFAULT_LABEL, DEFAULT_TIME, type FieldSpec } from "./field_spec.ts";
import { readLabel } from "./labels.ts";
import type { ParsedRow, RowParser } from "./row_parser.ts";

/** Data lines looked at to find the delimiter and the numeric columns of a CSV. */
export const CSV_SAMPLE_LINES = 16;

/** CSV data lines of one file, laid out by its header. */
export class CsvParser implements RowParser {
  readonly dim: number;
  readonly delimiter: Delimiter;
  readonly header: readonly string[];
  /** Names of the value columns, in order. */
  readonly valueColumns: readonly string[];
  readonly valueNames: readonly string[];
  readonly #valueIdx: Int32Array;
  readonly #timeIdx: number;
  readonly #keyIdx: number;
  readonly #labelIdx: number;
  readonly #featureIdx: Int32Array | null;
  /** Names of the feature columns, in order (empty without `fields.features`). */
  readonly featureColumns: readonly string[];

  /**
   * Lays out a CSV from its header line and up to {@link CSV_SAMPLE_LINES} data lines. Without
   * `fields.columns`, a column is a value column when at least half of the sampled cells look
   * numeric (and it is not the time/key/label column). Throws `BadInputError("header")` when the
   * layout cannot give `dim` values (`dim` undefined: whatever the header gives).
   */
  constructor(headerLine: string, samples: readonly string[], fields: FieldSpec, dim?: number) {
    this.delimiter = fields.delimiter ?? detectDelimiter(headerLine, samples);
    const header = splitCsvLine(headerLine, this.delimiter)?.map((s) => s.trim());
    if (header === undefined) {
      throw new BadInputError("header", `expected a header row, found ${brief(headerLine)}`);
    }
    this.header = header;
    const find = (name: string | undefined, fallback: string): number => {
      if (name === undefined) return header.indexOf(fallback);
      const i = header.indexOf(name);
      if (i < 0) {
        throw new BadInputError(
          "header",
          `expected a column '${name}' in the header, found ${brief(header.join(","))}`,
        );
      }
      return i;
    };
    this.#timeIdx = find(fields.time, DEFAULT_TIME);
    this.#keyIdx = find(fields.key, DEFAULT_KEY);
    this.#labelIdx = find(fields.label, DEFAULT_LABEL);
    const featureIdx = fields.features?.map((c) => find(c, c)) ?? null;
    this.#featureIdx = featureIdx === null ? null : Int32Array.from(featureIdx);
    this.featureColumns = fields.features ?? [];
    let valueIdx: number[];
    if (fields.columns !== undefined) {
      valueIdx = fields.columns.map((c) => find(c, c));
    } else {
      const special = new Set([this.#timeIdx, this.#keyIdx, this.#labelIdx, ...(featureIdx ?? [])]);
      const rows = samples.map((s) => splitCsvLine(s, this.delimiter)).filter((
        r,
      ): r is string[] => r !== null && r.length === header.length);
      valueIdx = [];
      for (let j = 0; j < header.length; j++) {
        if (special.has(j)) continue;
        const numeric = rows.filter((r) => looksNumeric(r[j])).length;
        if (rows.length > 0 && 2 * numeric >= rows.length) valueIdx.push(j);
      }
    }
    this.valueColumns = valueIdx.map((j) => header[j]);
    this.valueNames = this.valueColumns.map((c) => `column '${c}'`);
    if (valueIdx.length === 0) {
      throw new BadInputError(
        "header",
        `expected numeric columns, found none among ${brief(header.join(","))}`,
      );
    }
    if (dim !== undefined && valueIdx.length !== dim) {
      throw new BadInputError(
        "header",
        `expected ${dim} value columns, found ${valueIdx.length} (${
          brief(this.valueColumns.join(","))
        })`,
      );
    }
    this.dim = valueIdx.length;
    this.#valueIdx = Int32Array.from(valueIdx);
  }

  parse(line: string): ParsedRow {
    const cells = splitCsvLine(line, this.delimiter);
    if (cells === null) {
      throw new BadInputError("malformed", `expected closed quotes, found ${brief(line)}`);
    }
    if (cells.length !== this.header.length) {
      throw new BadInputError(
        "malformed",
        `expected ${this.header.length} cells, found ${cells.length}`,
      );
    }
    const values = new Array<number>(this.dim);
    for (let j = 0; j < this.dim; j++) {
      const cell = cells[this.#valueIdx[j]];
      const r = parseNumericCell(cell);
      if (!r.ok) {
        throw new BadInputError(
          r.reason,
          `column '${this.valueColumns[j]}': expected a finite number, found ${
            r.reason === "empty_cell" ? "an empty cell" : brief(cell)
          }`,
        );
      }
      values[j] = r.value;
    }
    let key: string | undefined;
    if (this.#keyIdx >= 0) {
      key = cells[this.#keyIdx].trim();
      if (key === "") {
        throw new BadInputError(
          "bad_key",
          `key '${this.header[this.#keyIdx]}': expected a non-empty cell, found an empty one`,
        );
      }
    }
    let t: number | string | undefined;
    if (this.#timeIdx >= 0) {
      const cell = cells[this.#timeIdx].trim();
      if (cell !== "") {
        const r = parseNumericCell(cell);
        t = r.ok ? r.value : cell;
      }
    }
    let features: number[] | undefined;
    if (this.#featureIdx !== null) {
      features = new Array<number>(this.#featureIdx.length);
      for (let j = 0; j < features.length; j++) {
        const cell = cells[this.#featureIdx[j]];
        const r = parseNumericCell(cell);
        if (!r.ok) {
          throw new BadInputError(
            "features",
            `feature column '${this.featureColumns[j]}': expected a finite number, found ${
              r.reason === "empty_cell" ? "an empty cell" : brief(cell)
            }`,
          );
        }
        features[j] = r.value;
      }
    }
    let row: ParsedRow;
    if (this.#labelIdx < 0) row = { values, key, t, label: undefined };
    else {
      const label = readLabel(cells[this.#labelIdx], this.header[this.#labelIdx]);
      row = label.problem === undefined
        ? { values, key, t, label: label.label }
        : { values, key, t, label: undefined, labelProblem: label.problem };
    }
    return features === undefined ? row : { ...row, features };
  }
}
