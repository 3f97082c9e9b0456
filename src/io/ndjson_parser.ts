/**
 * NDJSON lines as observation rows: the observation forms of `src/wire/observation.ts`, or named
 * top-level numeric fields (`--columns`).
 *
 * @module
 */
import { ObservationError, parseObservation } from "../wire/observation.ts";
import { BadInputError, brief } from "./errors.ts";
import { DEFAULT_KEY, DEFAULT_LABEL, DEFAULT_TIME, type FieldSpec } from "./field_spec.ts";
import { readLabel } from "./labels.ts";
import type { ParsedRow, RowParser } from "./row_parser.ts";

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
