/**
 * `deno task watch [key] [--server URL] [--prefix P] [--once]`: prints parameter updates from the
 * parameters bucket the worker of that prefix writes (`<prefix>_params`) as JSON lines, current
 * values first, then live updates (until Ctrl-C). It never creates the bucket.
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import {
  NATS_CLIENT_SETTINGS,
  natsErrors,
  PREFIX_SETTING,
  topologyFor,
} from "../config/live_config.ts";
import { parseFlags, resolveSettings, SettingsError, toggle } from "../config/settings.ts";
import { usage } from "../config/settings_usage.ts";
import { ParamsMessage } from "../../schemas/messages.ts";
import { connectOrReport } from "../nats/connect.ts";
import { encodeKvKey } from "../nats/kv_key.ts";

const SETTINGS = {
  ...NATS_CLIENT_SETTINGS,
  prefix: { ...PREFIX_SETTING, group: "watch", help: "the worker's --prefix" },
  once: toggle({ flag: "once", group: "watch", help: "print the current values and exit" }),
} as const;

const USAGE = usage(SETTINGS, {
  synopsis: `usage: main.ts watch [key] [options]
Prints one JSON line per parameter update of the key (all keys when omitted): the current values
from the worker's parameters bucket (<prefix>_params) first, then updates as the worker publishes
them.`,
  groups: ["watch"],
});

/** Runs `watch`; resolves with the exit code. */
export async function run(args: string[]): Promise<number> {
  let parsed, resolved;
  try {
    parsed = parseFlags(SETTINGS, args);
    if (parsed.help) {
      console.log(USAGE);
      return 0;
    }
    resolved = resolveSettings(SETTINGS, parsed.values, Deno.env.toObject());
    const errors = [...resolved.errors, ...natsErrors(resolved.values)];
    if (parsed.positionals.length > 1) {
      errors.unshift(`expected at most one key, found ${parsed.positionals.length}`);
    }
    if (errors.length > 0) throw new SettingsError(errors);
  } catch (e) {
    if (!(e instanceof SettingsError)) throw e;
    console.error(`watch: ${e.message}\n${USAGE}`);
    return 2;
  }
  const { prefix, once, ...nats } = resolved.values;
  const key = parsed.positionals[0];
  const nc = await connectOrReport("watch", nats, { name: "mvn-watch", waitOnFirstConnect: false });
  if (nc === null) return 1;
  const bucket = topologyFor(prefix).paramsBucket;
  let kv;
  try {
    kv = await new Kvm(nc).open(bucket);
    await kv.status(); // open() binds without asking the server: this fails when it is missing
  } catch (e) {
    console.error(
      `watch: expected parameters bucket '${bucket}' on ${nats.url} (written by a worker with --prefix ${prefix}), found none: ${
        e instanceof Error ? e.message : e
      }`,
    );
    await nc.close().catch(() => {});
    return 1;
  }
  const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
  if (once) {
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
