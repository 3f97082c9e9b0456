/**
 * Command-line entry: `deno run -A main.ts <start|replay|watch|publish|bench|eval|dashboard> [options]`.
 *
 * @module
 */

const COMMANDS: Record<string, () => Promise<{ run(args: string[]): Promise<number> }>> = {
  start: () => import("./src/cli/start.ts"),
  replay: () => import("./src/cli/replay.ts"),
  watch: () => import("./src/cli/watch.ts"),
  publish: () => import("./src/cli/publish.ts"),
  bench: () => import("./bench/cli.ts"),
  eval: () => import("./src/cli/eval.ts"),
  dashboard: () => import("./src/cli/dashboard.ts"),
};

const USAGE = `usage: main.ts <command> [options]
commands:
  start     run the live worker (NATS JetStream in, scores and parameters out)
  replay    score and learn over recorded NDJSON/CSV files
  watch     print parameter updates as they arrive
  publish   play a recorded file into NATS
  bench     measure throughput and latency
  eval      rate anomaly and alarm against a Hotelling T² chart on a seeded labelled suite
  dashboard serve the live dashboard page alone (the worker serves it on --http too)
Run 'main.ts <command> --help' for the options of a command.`;

if (import.meta.main) {
  const [name, ...rest] = Deno.args;
  if (name === undefined || name === "--help" || name === "-h") {
    console.log(USAGE);
    Deno.exit(name === undefined ? 2 : 0);
  }
  const load = COMMANDS[name];
  if (load === undefined) {
    console.error(`unknown command '${name}': expected one of ${Object.keys(COMMANDS).join(", ")}`);
    console.error(USAGE);
    Deno.exit(2);
  }
  const mod = await load();
  Deno.exit(await mod.run(rest));
}
