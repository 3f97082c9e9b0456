/**
 * Which fields (NDJSON) or columns (CSV) of an input line hold the values, time, key, label and
 * context features, and the time/key/label names used when none is given.
 *
 * @module
 */
import type { Delimiter } from "./csv.ts";

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

/** Time field/column used when {@link FieldSpec.time} is not given (and present). */
export const DEFAULT_TIME = "t";
/** Key field/column used when {@link FieldSpec.key} is not given (and present). */
export const DEFAULT_KEY = "key";
/** Label field/column used when {@link FieldSpec.label} is not given (and present). */
export const DEFAULT_LABEL = "label";
