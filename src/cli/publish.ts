/**
 * `deno task publish <file> [--rate N | --realtime] [--subject S] [--key K]
 * [--format json|array|f32] [--per-message N] [--server URL] [--prefix P] [--dim N]`:
 * plays a recorded NDJSON/CSV file into NATS JetStream (publish with acks), with a progress bar
 * on a terminal.
 *
 * @module
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { z } from "zod";
import {
  NATS_CLIENT_SETTINGS,
  natsErrors,
  PREFIX_SETTING,
  topologyFor,
} from "../config/live_config.ts";
import { MODEL_SETTINGS } from "../config/model_settings.ts";
import {
  num,
  option,
  parseFlags,
  resolveSettings,
  SettingsError,
  toggle,
} from "../config/settings.ts";
import { usage } from "../config/settings_usage.ts";
import { connectOrReport } from "../nats/connect.ts";
import { DUPLICATE_WINDOW_NS, ensureStream } from "../nats/topology.ts";
import { publishFile } from "../nats/file_publisher.ts";
import { ProgressBar } from "../replay/progress.ts";

const GROUP = "publish";

/** What to publish and how (beside where: {@link NATS_CLIENT_SETTINGS}). */
export const PUBLISH_SETTINGS = {
  prefix: { ...PREFIX_SETTING, group: GROUP, help: "subject prefix: rows go to <P>.obs.<key>" },
  subject: option({
    flag: "subject",
    arg: "S",
    group: GROUP,
    schema: z.string().regex(/^[^\s*>]+$/, "expected a subject without wildcards"),
    help: "publish every message on S instead",
  }),
  key: option({
    flag: "key",
    arg: "K",
    group: GROUP,
    schema: z.string().regex(/^[^\s*>]+$/, "expected a key without spaces or wildcards"),
    help: "model key of every row (default: the row's key, else the file name)",
  }),
  format: option({
    flag: "format",
    arg: "json|array|f32",
    group: GROUP,
    schema: z.enum(["json", "array", "f32"]),
    default: "json",
    help: "json: one observation per message; array: a JSON array; f32: a binary block",
  }),
  perMessage: option({
    flag: "per-message",
    arg: "N",
    group: GROUP,
    schema: num(z.number().int().min(1)),
    default: 1,
    help: "observations per message",
  }),
  rate: option({
    flag: "rate",
    arg: "N",
    group: GROUP,
    schema: num(z.number().positive()),
    help: "observations per second (default: as fast as acks allow)",
  }),
  realtime: toggle({ flag: "realtime", group: GROUP, help: "pace by the rows' t" }),
  dim: {
    ...MODEL_SETTINGS.dim,
    group: GROUP,
    default: undefined,
    help: "dimension (default: from the first row)",
  },
} as const;

const SETTINGS = { ...NATS_CLIENT_SETTINGS, ...PUBLISH_SETTINGS } as const;

const USAGE = usage(SETTINGS, {
  synopsis: "usage: main.ts publish <file.ndjson|file.csv> [options]",
  groups: [GROUP],
});

/** Runs `publish`; resolves with the exit code. */
export async function run(args: string[]): Promise<number> {
  let nats, o;
  try {
    const parsed = parseFlags(SETTINGS, args);
    if (parsed.help) {
      console.log(USAGE);
      return 0;
    }
    const conn = resolveSettings(NATS_CLIENT_SETTINGS, parsed.values, Deno.env.toObject());
    const opts = resolveSettings(PUBLISH_SETTINGS, parsed.values, Deno.env.toObject());
    const errors = [...conn.errors, ...natsErrors(conn.values), ...opts.errors];
    if (parsed.positionals.length !== 1 || parsed.positionals[0] === "") {
      errors.unshift(`<file>: expected one file, found ${JSON.stringify(parsed.positionals)}`);
    }
    if (opts.values.rate !== undefined && opts.values.realtime) {
      errors.push("expected --rate or --realtime, found both");
    }
    if (errors.length > 0) throw new SettingsError(errors);
    nats = conn.values;
    o = { ...opts.values, file: parsed.positionals[0] };
  } catch (e) {
    if (!(e instanceof SettingsError)) throw e;
    console.error(`publish: ${e.message}\n${USAGE}`);
    return 2;
  }
  const nc = await connectOrReport("publish", nats, {
    name: "mvn-publish",
    waitOnFirstConnect: false,
  });
  if (nc === null) return 1;
  try {
    const jsm = await jetstreamManager(nc);
    const topo = topologyFor(o.prefix);
    if (o.subject === undefined) {
      await ensureStream(jsm, topo.inputStream, topo.obsSubject, DUPLICATE_WINDOW_NS);
    } else {
      // Fail fast instead of retrying publications no stream will ever acknowledge.
      try {
        await jsm.streams.find(o.subject);
      } catch (cause) {
        console.error(
          `publish: expected a stream capturing --subject ${o.subject}, found none (${cause})`,
        );
        return 1;
      }
    }
    const bar = Deno.stderr.isTerminal()
      ? new ProgressBar(1, (t) => Deno.stderr.writeSync(new TextEncoder().encode(t)))
      : undefined;
    let barTotal = 0;
    let progress: ProgressBar | undefined = bar;
    const t0 = performance.now();
    const summary = await publishFile(jsm.jetstream(), {
      path: o.file,
      prefix: o.prefix,
      subject: o.subject,
      key: o.key,
      format: o.format,
      perMessage: o.perMessage,
      rate: o.rate,
      realtime: o.realtime,
      dim: o.dim,
      log: (l) => console.error(`publish: ${l}`),
      onProgress: (bytes, total, obs) => {
        if (progress === undefined) return;
        if (total !== barTotal) {
          barTotal = total;
          progress = new ProgressBar(
            total,
            (t) => Deno.stderr.writeSync(new TextEncoder().encode(t)),
          );
        }
        progress.update(bytes, obs);
      },
    });
    progress?.finish();
    const secs = (performance.now() - t0) / 1000;
    console.error(
      `published ${summary.observations} observations in ${summary.messages} messages to ${nats.url} ` +
        `in ${secs.toFixed(2)} s (${(summary.observations / secs).toFixed(0)} obs/s)` +
        (summary.skipped > 0 ? `; skipped ${summary.skipped} unreadable lines` : ""),
    );
    return 0;
  } catch (e) {
    console.error(`publish: ${e instanceof Error ? e.message : e}`);
    return 1;
  } finally {
    await nc.drain().catch(() => {});
  }
}
