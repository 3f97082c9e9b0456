/**
 * Turns one input line into one observation row: NDJSON (the observation forms of
 * `src/observation.ts`, or named top-level numeric fields) and CSV (named or auto-detected numeric
 * columns). A bad line throws {@link BadInputError} with a reason and a message saying what was
 * expected and what was found.
 *
 * @module
 */
import { ObservationError, parseObservation } from "../wire/observation.ts";
import { BadInputError } from "./errors.ts";
import { detectDelimiter, looksNumeric, parseNumericCell, splitCsvLine } from "./csv.ts";
import type { Delimiter } from "./csv.ts";

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

/**
 * Which fields/columns hold what. `columns` absent: NDJSON uses the observation forms, CSV every
 * numeric column but the time/key/label ones. The time/key/label names default to `t`, `key`,
 * `label` and are used when present; a name given explicitly must exist (CSV header) and an
 * explicit key must be present on every row.
 */
export interface FieldSpec {
  readonly columns?: readonly string[];
  readonly time?: string;
  readonly key?: string;
  readonly label?: string;
  readonly delimiter?: Delimiter;
  /** Columns (CSV) or top-level fields (NDJSON) holding context features; never value columns. */
  readonly features?: readonly string[];
}

const DEFAULT_TIME = "t";
const DEFAULT_KEY = "key";
const DEFAULT_LABEL = "label";
/** Data lines looked at to find the delimiter and the numeric columns of a CSV. */
export const CSV_SAMPLE_LINES = 16;

/** Short form of a value for messages. */
export function brief(value: unknown): string {
  const s = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

const LABEL_DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const LABEL_WORDS: ReadonlyMap<string, 0 | 1> = new Map([
  ["false", 0],
  ["no", 0],
  ["true", 1],
  ["yes", 1],
]);

/** What {@link readLabel} found: a label, none, or one it could not read (and why). */
export type LabelRead =
  | { readonly label: 0 | 1 | undefined; readonly problem?: undefined }
  | { readonly label: undefined; readonly problem: string };

/**
 * Reads a 0/1 label. Accepted: JSON numbers and booleans; strings (any case, surrounding blanks
 * ignored) that are a decimal literal equal to 0 or 1 (`0`, `1`, `0.0`, `1.0`, `1e0`), `true` /
 * `false` or `yes` / `no`. Absent, null or empty means no label. Anything else is a problem: the
 * row stays unlabelled (it is still scored) and the message says what was expected and found.
 */
export function readLabel(raw: unknown, column: string): LabelRead {
  if (raw === undefined || raw === null) return { label: undefined };
  if (raw === false || raw === 0) return { label: 0 };
  if (raw === true || raw === 1) return { label: 1 };
  if (typeof raw === "string") {
    const s = raw.trim().toLowerCase();
    if (s === "") return { label: undefined };
    const word = LABEL_WORDS.get(s);
    if (word !== undefined) return { label: word };
    if (LABEL_DECIMAL.test(s)) {
      const x = Number(s);
      if (x === 0 || x === 1) return { label: x === 0 ? 0 : 1 };
    }
  }
  return {
    label: undefined,
    problem: `label '${column}': expected 0, 1, 0.0, 1.0, true, false, yes or no, found ${
      brief(raw)
    }; the row is scored unlabelled`,
  };
}

/** NDJSON lines. */
export class NdjsonParser implements RowParser {
  readonly #columns: readonly string[] | undefined;
  readonly #time: string;
  readonly #key: string;
  readonly #keyRequired: boolean;
  readonly #label: string;
  readonly #features: readonly string[] | undefined;
  readonly valueNames: readonly string[];

  constructor(readonly dim: number, fields: FieldSpec) {
    this.#columns = fields.columns;
    this.#features = fields.features;
    this.valueNames = fields.columns?.map((c) => `field '${c}'`) ??
      Array.from({ length: dim }, (_, j) => `value ${j}`);
    this.#time = fields.time ?? DEFAULT_TIME;
    this.#key = fields.key ?? DEFAULT_KEY;
    this.#keyRequired = fields.key !== undefined;
    this.#label = fields.label ?? DEFAULT_LABEL;
    if (this.#columns !== undefined && this.#columns.length !== dim) {
      throw new RangeError(`expected ${dim} columns, found ${this.#columns.length}`);
    }
  }

  parse(line: string): ParsedRow {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (cause) {
      throw new BadInputError("malformed", `expected JSON, found ${brief(line)}`, { cause });
    }
    const obj = value !== null && typeof value === "object" && !Array.isArray(value)
      ? value as Record<string, unknown>
      : undefined;
    // Echoed fields first, so that a bad key or time is reported as such rather than as a bad shape.
    const key = obj === undefined ? undefined : this.#readKey(obj[this.#key]);
    const t = obj === undefined ? undefined : this.#readTime(obj[this.#time]);
    const label = obj === undefined
      ? { label: undefined }
      : readLabel(obj[this.#label], this.#label);
    let values: ArrayLike<number>;
    let features: ArrayLike<number> | undefined;
    if (this.#features !== undefined) {
      if (obj === undefined) {
        throw new BadInputError("shape", `expected a JSON object, found ${brief(value)}`);
      }
      try {
        features = this.#namedValues(obj, this.#features);
      } catch (e) {
        if (!(e instanceof BadInputError)) throw e;
        throw new BadInputError("features", e.message, { cause: e });
      }
    }
    if (this.#columns !== undefined) {
      if (obj === undefined) {
        throw new BadInputError("shape", `expected a JSON object, found ${brief(value)}`);
      }
      values = this.#namedValues(obj, this.#columns);
    } else {
      _checkFinite(value, obj);
      // The label was read above: a spelling the shared observation schema refuses ("1.0", "yes",
      // null, or one that cannot be read) must not cost the observation.
      const l = obj?.label;
      const forms = l === undefined || l === 0 || l === 1 || l === true || l === false
        ? value
        : { ...obj, label: undefined };
      try {
        const obs = parseObservation(forms, this.dim);
        values = obs.values;
        features ??= obs.features;
      } catch (e) {
        if (e instanceof ObservationError) {
          throw new BadInputError(e.reason, e.message, { cause: e });
        }
        throw e;
      }
    }
    const row: ParsedRow = label.problem === undefined
      ? { values, key, t, label: label.label }
      : { values, key, t, label: undefined, labelProblem: label.problem };
    return features === undefined ? row : { ...row, features };
  }

  #namedValues(obj: Record<string, unknown>, columns: readonly string[]): number[] {
    const out = new Array<number>(columns.length);
    for (let j = 0; j < columns.length; j++) {
      const v = obj[columns[j]];
      if (v === null || v === "") {
        throw new BadInputError(
          "empty_cell",
          `field '${columns[j]}': expected a number, found ${
            v === null ? "null" : "an empty string"
          }`,
        );
      }
      if (typeof v !== "number") {
        throw new BadInputError(
          v === undefined ? "dimension" : "shape",
          `field '${columns[j]}': expected a number, found ${
            v === undefined ? "no such field" : brief(v)
          }`,
        );
      }
      if (!Number.isFinite(v)) {
        throw new BadInputError("non_finite", `field '${columns[j]}' is not finite: ${v}`);
      }
      out[j] = v;
    }
    return out;
  }

  #readKey(raw: unknown): string | undefined {
    if (typeof raw === "string" && raw.length > 0) return raw;
    if (typeof raw === "number" && Number.isFinite(raw)) return String(raw);
    if ((raw === undefined || raw === null) && !this.#keyRequired) return undefined;
    throw new BadInputError(
      "bad_key",
      `key '${this.#key}': expected a non-empty string, found ${
        raw === undefined ? "no such field" : brief(raw)
      }`,
    );
  }

  #readTime(raw: unknown): number | string | undefined {
    if (raw === undefined || raw === null) return undefined;
    if (typeof raw === "string" || (typeof raw === "number" && Number.isFinite(raw))) return raw;
    throw new BadInputError(
      "bad_time",
      `time '${this.#time}': expected a number or a string, found ${brief(raw)}`,
    );
  }
}

/**
 * Reports an overflowing literal (1e999 parses to Infinity) as `non_finite`: the observation
 * schema would otherwise refuse it as a bad shape.
 */
function _checkFinite(value: unknown, obj: Record<string, unknown> | undefined): void {
  const check = (v: unknown, what: string) => {
    if (typeof v === "number" && !Number.isFinite(v)) {
      throw new BadInputError("non_finite", `${what} is not finite: ${v}`);
    }
  };
  const arr = Array.isArray(value) ? value : Array.isArray(obj?.v) ? obj.v as unknown[] : null;
  if (arr !== null) arr.forEach((v, j) => check(v, `value ${j}`));
  else if (obj !== undefined) { for (const f of ["x", "y", "z"]) check(obj[f], `field '${f}'`); }
}

/**
 * The observation dimension a line would give, or undefined when it is not a usable observation
 * (used to infer `--dim` from the first good row).
 */
export function ndjsonDimOf(line: string, fields: FieldSpec): number | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  let d: number;
  if (fields.columns !== undefined) d = fields.columns.length;
  else if (Array.isArray(value)) d = value.length;
  else if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if (Array.isArray(o.v)) d = o.v.length;
    else if ("x" in o) d = ["x", "y", "z"].filter((k) => o[k] !== undefined).length;
    else return undefined;
  } else return undefined;
  if (d < 1) return undefined;
  try {
    new NdjsonParser(d, fields).parse(line);
    return d;
  } catch {
    return undefined;
  }
}

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
