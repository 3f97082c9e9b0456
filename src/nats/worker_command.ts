/**
 * A live worker as a child process of this checkout: `deno run -A main.ts start --nats-url <url>`
 * from the repository root. Used by `deno task cluster` and the benchmarks that spawn workers.
 *
 * @module
 */

import { V8_FLAGS_ARG } from "../config/v8_flags.ts";

/** The repository root (where `main.ts` is). */
const ROOT = new URL("../..", import.meta.url).pathname;

/**
 * `deno run -A [denoFlags…] main.ts start --nats-url <url> [flags…]` in the repository root, with
 * `io` (stdio, detached) as given; `denoFlags` default to `deno task start`'s V8 flags.
 */
export function workerCommand(
  url: string,
  flags: readonly string[],
  io: Omit<Deno.CommandOptions, "args" | "cwd">,
  denoFlags: readonly string[] = [V8_FLAGS_ARG],
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...denoFlags, "main.ts", "start", "--nats-url", url, ...flags],
    cwd: ROOT,
    ...io,
  });
}
