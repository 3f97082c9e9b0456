/**
 * The `--help` text of a command, generated from its settings table (src/config/settings.ts):
 * {@link usage} lists each flag with its placeholder, help, default and environment variable, per
 * group. Kept apart from the parsing and resolution because only the usage text needs the
 * layout rules (column, wrapping).
 *
 * @module
 */
import type { Setting, SettingsTable } from "./settings.ts";

/** How a default is printed in usage text. */
export function formatDefault(value: unknown): string {
  if (Array.isArray(value)) return value.join(",");
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Parts of a usage text that are not generated from the table. */
export interface UsageText {
  /** First line: `usage: main.ts start [options]`. */
  readonly synopsis: string;
  /** Paragraph after the synopsis. */
  readonly intro?: string;
  /** Paragraph at the end. */
  readonly footer?: string;
  /** Groups in this order (others follow in table order). */
  readonly groups?: readonly string[];
}

const LINE_WIDTH = 100;

/** Widest flag column; a longer flag puts its help on the next line. */
const FLAG_COLUMN = 26;

/**
 * Usage text of a command: per group, one line per setting with its flag and placeholder, its
 * help, its default and its environment variable (`(default 256, env MVN_BATCH)`), then `--help`.
 */
export function usage(table: SettingsTable, text: UsageText): string {
  const settings = Object.values(table);
  const left = (s: Setting) =>
    `  ${s.short === undefined ? "" : `-${s.short}, `}--${s.flag}${
      s.arg === undefined ? "" : ` ${s.arg}`
    }`;
  const width = Math.min(FLAG_COLUMN, Math.max(...settings.map((s) => left(s).length + 2)));
  const groups = [...new Set([...(text.groups ?? []), ...settings.map((s) => s.group)])];
  const lines = [text.synopsis];
  if (text.intro !== undefined) lines.push(text.intro);
  for (const group of groups) {
    const members = settings.filter((s) => s.group === group);
    if (members.length === 0) continue;
    lines.push(`${group}:`);
    for (const s of members) lines.push(..._wrap(left(s), _help(s), width));
  }
  lines.push(..._wrap("  -h, --help", "this text", width));
  if (text.footer !== undefined) lines.push(text.footer);
  return lines.join("\n");
}

/** A setting's help with its default and variable: `help (default 256, env MVN_BATCH)`. */
function _help(s: Setting): string {
  const notes = [
    ...(s.default === undefined || s.default === false
      ? []
      : [`default ${formatDefault(s.default)}`]),
    ...(s.env === undefined ? [] : [`env ${s.env}`]),
  ];
  // Each note stays on one line.
  const kept = notes.map((n) => n.replaceAll(" ", _KEEP));
  return notes.length === 0 ? s.help : `${s.help} (${kept.join(", ")})`;
}

/** Stands for a space that {@link _wrap} must not break at. */
const _KEEP = "\u0000";

/** `head` then `body` from column `indent`, wrapped at {@link LINE_WIDTH}. */
function _wrap(head: string, body: string, indent: number): string[] {
  const out: string[] = [];
  let line = head.padEnd(indent);
  if (head.length + 2 > indent) {
    out.push(head);
    line = " ".repeat(indent);
  }
  let fresh = true;
  for (const word of body.split(" ")) {
    if (!fresh && line.length + 1 + word.length > LINE_WIDTH) {
      out.push(line);
      line = " ".repeat(indent);
      fresh = true;
    }
    line += fresh ? word : ` ${word}`;
    fresh = false;
  }
  out.push(line);
  return out.map((l) => l.replaceAll(_KEEP, " "));
}
