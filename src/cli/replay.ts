/**
 * `deno task replay <file|dir> [options]`: offline back-testing over recorded NDJSON/CSV streams.
 * Exit codes: 0 done, 1 stopped by --strict or failed while running, 2 bad usage or input.
 *
 * @module
 */
import { REPLAY_SETTINGS, type ReplayOptionsInput } from "../../schemas/replay.ts";
import { parseFlags, settingsInputOf } from "../config/settings.ts";
import { usage } from "../config/settings_usage.ts";
import { ReplayUsageError } from "../io/errors.ts";
import { replay } from "../replay/replay.ts";

/** Usage text of `replay`, generated from {@link REPLAY_SETTINGS}. */
export const USAGE = usage(REPLAY_SETTINGS, {
  synopsis: `usage: deno task replay <file|dir> [options]

Scores (and learns from) every observation of a recorded stream, in input order, and writes one
NDJSON score record per observation. A directory replays every file in it (sorted, recursive),
each file its own key unless a key column is given.
`,
});

/** Flags → replay options (raw strings; validation happens in `resolveReplayOptions`). */
export function parseReplayArgs(args: string[]): ReplayOptionsInput | "help" {
  let parsed;
  try {
    parsed = parseFlags(REPLAY_SETTINGS, args);
  } catch (cause) {
    throw new ReplayUsageError(cause instanceof Error ? cause.message : String(cause), { cause });
  }
  if (parsed.help) return "help";
  if (parsed.positionals.length !== 1) {
    throw new ReplayUsageError(
      `<file|dir>: expected exactly one input, found ${
        parsed.positionals.length === 0 ? "none" : parsed.positionals.join(" ")
      }`,
    );
  }
  return { input: parsed.positionals[0], ...settingsInputOf(REPLAY_SETTINGS, parsed.values) };
}

/** Runs `replay` with command-line arguments; resolves to the exit code. */
export async function run(args: string[]): Promise<number> {
  try {
    const options = parseReplayArgs(args);
    if (options === "help") {
      console.log(USAGE);
      return 0;
    }
    const summary = await replay(options);
    return summary.stopped ? 1 : 0;
  } catch (e) {
    if (e instanceof ReplayUsageError) {
      console.error(`replay: ${e.message}`);
      console.error("run 'deno task replay --help' for the options");
      return 2;
    }
    console.error(`replay: failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    return 1;
  }
}
