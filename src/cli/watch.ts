/**
 * `deno task watch [key] [--server URL] [--prefix P] [--once]`: prints parameter updates from the
 * parameters bucket the worker of that prefix writes (`<prefix>_params`) as JSON lines, current
 * values first, then live updates (until Ctrl-C). It never creates the bucket.
 *
 * @module
 */
import { parseCommandArgs } from "../config/args.ts";
import { Kvm } from "@nats-io/kv";
import {
  ConfigError,
  DEFAULT_PREFIX,
  resolveLiveConfig,
  topologyFor,
} from "../config/live_config.ts";
import { ParamsMessage } from "../../schemas/messages.ts";
import { connectNats } from "../nats/connect.ts";
import { encodeKvKey } from "../nats/kv_key.ts";

const USAGE = `usage: main.ts watch [key] [--server URL] [--prefix P] [--once]
Prints one JSON line per parameter update of the key (all keys when omitted): the current values
from the worker's parameters bucket (<prefix>_params) first, then updates as the worker publishes them.
  --server URL   NATS server (default NATS_URL, else nats://127.0.0.1:4222)
  --prefix P     the worker's --prefix (default MVN_PREFIX, else ${DEFAULT_PREFIX})
  --once         print the current values and exit`;

/** Runs `watch`; resolves with the exit code. */
export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandArgs("watch", USAGE, args, {
    server: { type: "string" },
    prefix: { type: "string" },
    once: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (typeof parsed === "number") return parsed;
  if (parsed.positionals.length > 1) {
    console.error(`watch: expected at most one key, found ${parsed.positionals.length}\n${USAGE}`);
    return 2;
  }
  let nats, prefix;
  try {
    ({ nats, prefix } = resolveLiveConfig(
      { "nats-url": parsed.values.server, prefix: parsed.values.prefix },
      Deno.env.toObject(),
    ));
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`watch: ${e.message}`);
      return 2;
    }
    throw e;
  }
  const key = parsed.positionals[0];
  const url = nats.url ?? "nats://127.0.0.1:4222";
  let nc;
  try {
    nc = await connectNats({ ...nats, url }, { name: "mvn-watch", waitOnFirstConnect: false });
  } catch (e) {
    console.error(`watch: cannot connect to ${url}: ${e instanceof Error ? e.message : e}`);
    return 1;
  }
  const bucket = topologyFor(prefix).paramsBucket;
  let kv;
  try {
    kv = await new Kvm(nc).open(bucket);
    await kv.status(); // open() binds without asking the server: this fails when it is missing
  } catch (e) {
    console.error(
      `watch: expected parameters bucket '${bucket}' on ${url} (written by a worker with --prefix ${prefix}), found none: ${
        e instanceof Error ? e.message : e
      }`,
    );
    await nc.close().catch(() => {});
    return 1;
  }
  const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
  if (parsed.values.once) {
    const keys: string[] = [];
    for await (const k of await kv.keys(key === undefined ? ">" : encodeKvKey(key))) keys.push(k);
    for (const k of keys.sort()) {
      const e = await kv.get(k);
      if (e !== null && e.operation === "PUT") out(e.string());
    }
    await nc.close();
    return 0;
  }
  const w = await kv.watch({ key: key === undefined ? ">" : encodeKvKey(key) });
  const stop = () => w.stop();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    for await (const e of w) {
      if (e.operation !== "PUT") continue;
      const p = ParamsMessage.safeParse(e.json());
      if (!p.success) {
        console.error(
          `watch: skipping invalid parameters in '${e.key}': ${p.error.issues[0]?.message}`,
        );
        continue;
      }
      out(JSON.stringify(p.data));
    }
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    await nc.close().catch(() => {});
  }
  return 0;
}
