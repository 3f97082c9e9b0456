/**
 * The 0/1 label of a row: the spellings accepted (numbers, booleans, decimal literals, true/false,
 * yes/no) and the message for one that cannot be read.
 *
 * @module
 */
import { brief } from "./errors.ts";

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
