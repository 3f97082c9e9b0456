/**
 * CSV cells: delimiter detection, splitting one line (RFC 4180 quotes within a line), and strict
 * numeric cells.
 *
 * @module
 */

/** Delimiters recognised by auto-detection, in tie-break order. */
export const DELIMITERS = [",", ";", "\t", "|"] as const;
export type Delimiter = (typeof DELIMITERS)[number];

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const NON_FINITE = /^[+-]?(nan|inf|infinity)$/i;

/**
 * Picks the delimiter of a CSV from its header and a few data lines: the candidate that splits the
 * header into the most cells while splitting every sample line into the same number of cells;
 * failing that, the one most frequent in the header; `,` when none occurs (a single column).
 */
export function detectDelimiter(header: string, samples: readonly string[]): Delimiter {
  let best: Delimiter | null = null;
  let bestCells = 1;
  for (const d of DELIMITERS) {
    const cells = splitCsvLine(header, d)?.length ?? 0;
    if (cells <= bestCells) continue;
    if (samples.every((s) => splitCsvLine(s, d)?.length === cells)) {
      best = d;
      bestCells = cells;
    }
  }
  if (best !== null) return best;
  let fallback: Delimiter = ",";
  let most = 0;
  for (const d of DELIMITERS) {
    const cells = splitCsvLine(header, d)?.length ?? 0;
    if (cells > most && cells > 1) {
      fallback = d;
      most = cells;
    }
  }
  return fallback;
}

/**
 * Splits one CSV line into cells. Quoted cells ("a,b", "say ""hi""") may hold the delimiter;
 * a quote left open (a cell spanning lines, unsupported) gives null.
 */
export function splitCsvLine(line: string, delimiter: string): string[] | null {
  if (line.indexOf('"') < 0) return line.split(delimiter);
  const cells: string[] = [];
  let cell = "";
  let i = 0;
  let quoted = false;
  while (i < line.length) {
    const c = line[i];
    if (quoted) {
      if (c === '"') {
        if (line[i + 1] === '"') {
          cell += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        cell += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === delimiter) {
      cells.push(cell);
      cell = "";
    } else {
      cell += c;
    }
    i++;
  }
  if (quoted) return null;
  cells.push(cell);
  return cells;
}

/** Result of reading one numeric cell. */
export type NumericCell =
  | { readonly ok: true; readonly value: number }
  | { readonly ok: false; readonly reason: "non_finite" | "bad_cell" | "empty_cell" };

/**
 * Reads a numeric cell: a plain decimal literal (surrounding blanks allowed). NaN/inf spellings
 * and literals that overflow are `non_finite`; an empty (or all-blank) cell is `empty_cell`;
 * anything else (text, hex) is `bad_cell`.
 */
export function parseNumericCell(cell: string): NumericCell {
  const s = cell.trim();
  if (s === "") return { ok: false, reason: "empty_cell" };
  if (DECIMAL.test(s)) {
    const value = Number(s);
    return Number.isFinite(value) ? { ok: true, value } : { ok: false, reason: "non_finite" };
  }
  return NON_FINITE.test(s)
    ? { ok: false, reason: "non_finite" }
    : { ok: false, reason: "bad_cell" };
}

/** True when the cell looks like a number (finite or a NaN/inf spelling): used to find numeric columns. */
export function looksNumeric(cell: string): boolean {
  const s = cell.trim();
  return DECIMAL.test(s) || NON_FINITE.test(s);
}
