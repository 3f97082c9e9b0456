/**
 * Replay's outputs besides the score records' writer: the `--out` and `--alarms` files, JSON
 * documents (`--params-out`, `--summary`) and lines on stderr; a path that cannot be written is a
 * {@link ReplayUsageError} naming its flag.
 *
 * @module
 */
import { ReplayUsageError } from "../io/errors.ts";

const encoder = new TextEncoder();

/** Writes text to stderr as it is (the progress bar's). */
export function stderrWrite(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

/** Writes one line (newline added) to stderr. */
export function stderrLine(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

/** Opens (creates or truncates) the file a flag names for writing. */
export async function openOut(path: string, flag: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { write: true, create: true, truncate: true });
  } catch (cause) {
    throw new ReplayUsageError(`${flag} '${path}': cannot be written (${String(cause)})`, {
      cause,
    });
  }
}

/** Writes `value` as indented JSON to the file a flag names. */
export async function writeJson(path: string, flag: string, value: unknown): Promise<void> {
  try {
    await Deno.writeTextFile(path, JSON.stringify(value, null, 2) + "\n");
  } catch (cause) {
    throw new ReplayUsageError(`${flag} '${path}': cannot be written (${String(cause)})`, {
      cause,
    });
  }
}
