/**
 * `deno task publish <file> [--rate N | --realtime] [--subject S] [--key K]
 * [--format json|array|f32] [--per-message N] [--server URL] [--prefix P] [--dim N]`:
 * plays a recorded NDJSON/CSV file into NATS JetStream (publish with acks), with a progress bar
 * on a terminal.
 *
 * @module
 */
import { parseCommandArgs } from "../config/args.ts";
import { jetstreamManager } from "@nats-io/jetstream";
import { z } from "zod";
import { ConfigError, resolveLiveConfig, topologyFor } from "../config/live_config.ts";
import { connectNats } from "../nats/connect.ts";
import { DUPLICATE_WINDOW_NS, ensureStream } from "../nats/topology.ts";
import { publishFile } from "../nats/file_publisher.ts";
import { ProgressBar } from "../replay/progress.ts";

const USAGE = `usage: main.ts publish <file.ndjson|file.csv> [options]
  --server URL        NATS server (default NATS_URL, else nats://127.0.0.1:4222)
  --prefix P          subject prefix (default telemetry): rows go to <P>.obs.<key>
  --subject S         publish every message on S instead
  --key K             model key of every row (default: the row's key, else the file name)
  --format F          json (one observation per message), array (JSON array), f32 (binary block)
  --per-message N     observations per message (default 1)
  --rate N            observations per second (default: as fast as acks allow)
  --realtime          pace by the rows' t
  --dim N             dimension (default: from the first row)
Authentication and TLS: NATS_CREDS, NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_CA, NATS_CERT/NATS_KEY.`;

const Options = z.object({
  file: z.string().min(1),
  prefix: z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/).default("telemetry"),
  subject: z.string().regex(/^[^\s*>]+$/, "expected a subject without wildcards").optional(),
  key: z.string().regex(/^[^\s*>]+$/, "expected a key without spaces or wildcards").optional(),
  format: z.enum(["json", "array", "f32"]).default("json"),
  "per-message": z.coerce.number().int().min(1).default(1),
  rate: z.coerce.number().positive().optional(),
  realtime: z.boolean().default(false),
  dim: z.coerce.number().int().min(1).max(32).optional(),
});

/** Runs `publish`; resolves with the exit code. */
export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandArgs("publish", USAGE, args, {
    server: { type: "string" },
    prefix: { type: "string" },
    subject: { type: "string" },
    key: { type: "string" },
    format: { type: "string" },
    "per-message": { type: "string" },
    rate: { type: "string" },
    realtime: { type: "boolean" },
    dim: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (typeof parsed === "number") return parsed;
  const { server, ...rest } = parsed.values;
  const o = Options.safeParse({ ...rest, file: parsed.positionals[0] });
  if (!o.success || parsed.positionals.length !== 1) {
    const issue = o.success ? undefined : o.error.issues[0];
    console.error(
      issue
        ? `publish: invalid ${
          issue.path.join(".") === "file" ? "<file>" : `--${issue.path.join(".")}`
        }: ${issue.message}`
        : `publish: expected one file, found ${parsed.positionals.length}`,
    );
    console.error(USAGE);
    return 2;
  }
  if (o.data.rate !== undefined && o.data.realtime) {
    console.error("publish: expected --rate or --realtime, found both");
    return 2;
  }
  let nats;
  try {
    nats = resolveLiveConfig({ "nats-url": server }, Deno.env.toObject()).nats;
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`publish: ${e.message}`);
      return 2;
    }
    throw e;
  }
  const url = nats.url ?? "nats://127.0.0.1:4222";
  let nc;
  try {
    nc = await connectNats({ ...nats, url }, { name: "mvn-publish", waitOnFirstConnect: false });
  } catch (e) {
    console.error(`publish: cannot connect to ${url}: ${e instanceof Error ? e.message : e}`);
    return 1;
  }
  try {
    const jsm = await jetstreamManager(nc);
    const topo = topologyFor(o.data.prefix);
    if (o.data.subject === undefined) {
      await ensureStream(jsm, topo.inputStream, topo.obsSubject, DUPLICATE_WINDOW_NS);
    } else {
      // Fail fast instead of retrying publications no stream will ever acknowledge.
      try {
        await jsm.streams.find(o.data.subject);
      } catch (cause) {
        console.error(
          `publish: expected a stream capturing --subject ${o.data.subject}, found none (${cause})`,
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
      path: o.data.file,
      prefix: o.data.prefix,
      subject: o.data.subject,
      key: o.data.key,
      format: o.data.format,
      perMessage: o.data["per-message"],
      rate: o.data.rate,
      realtime: o.data.realtime,
      dim: o.data.dim,
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
      `published ${summary.observations} observations in ${summary.messages} messages to ${url} ` +
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
