/**
 * The flag parsing shared by the CLIs: `node:util` parseArgs, with a usage error (exit 2) or
 * `--help` (exit 0) handled the same way everywhere.
 *
 * @module
 */
import { parseArgs } from "node:util";

type _Options = Record<string, { type: "string" | "boolean"; short?: string }>;

/** Parsed flags, or the exit code when the command should stop (after --help or a usage error). */
export function parseCommandArgs<const O extends _Options>(
  command: string,
  usage: string,
  args: string[],
  options: O,
):
  | ReturnType<
    typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>
  >
  | number {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    console.error(`${command}: ${(e as Error).message}\n${usage}`);
    return 2;
  }
  if ((parsed.values as Record<string, unknown>).help === true) {
    console.log(usage);
    return 0;
  }
  return parsed;
}
