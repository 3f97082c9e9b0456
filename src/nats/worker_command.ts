/**
 * A live worker as a child process of this checkout: `deno run -A main.ts start --nats-url <url>`
 * from the repository root. Used by `deno task cluster` and the benchmarks that spawn workers.
 *
 * @module
 */

/** The repository root (where `main.ts` is). */
const ROOT = new URL("../..", import.meta.url).pathname;

/**
 * `deno run -A [denoFlags…] main.ts start --nats-url <url> [flags…]` in the repository root, with
 * `io` (stdio, detached) as given.
 */
export function workerCommand(
  url: string,
  flags: readonly string[],
  io: Omit<Deno.CommandOptions, "args" | "cwd">,
  denoFlags: readonly string[] = [],
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...denoFlags, "main.ts", "start", "--nats-url", url, ...flags],
    cwd: ROOT,
    ...io,
  });
}
