/**
 * `deno task dashboard --nats-url ws://host:port [--port N] [--prefix P]`: serves the dashboard
 * page on its own (no worker) on 127.0.0.1. The page connects to NATS from the browser over
 * WebSocket, with the credentials given here (`/config.json`, loopback only).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { DEFAULT_PREFIX } from "../config/live_config.ts";
import { dashboardHandler } from "../dashboard/server.ts";

const USAGE = `usage: main.ts dashboard --nats-url ws://host:port [options]
Serves the live dashboard page on http://127.0.0.1:PORT/ (no worker runs).
  --nats-url URL    NATS_URL        ws:// or wss:// URL of NATS's WebSocket listener (the page
                                    can also be given ?nats=ws://host:port)
  --port N          MVN_DASHBOARD_PORT (8080; 0 = any free port)
  --prefix P        MVN_PREFIX      subject prefix (telemetry)
  --alpha A                         anomaly level drawn as the threshold −log10 α (0.001)
  --user U --password P  NATS_USER / NATS_PASSWORD    --token T  NATS_TOKEN
  --history-s S                     seconds of score history read on load (60)`;

/** Runs `dashboard`; resolves with the exit code when the server stops (SIGINT/SIGTERM). */
export async function run(args: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args,
      options: {
        "nats-url": { type: "string" },
        port: { type: "string" },
        prefix: { type: "string" },
        alpha: { type: "string" },
        user: { type: "string" },
        password: { type: "string" },
        token: { type: "string" },
        "history-s": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (e) {
    console.error(`dashboard: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const env = Deno.env.toObject();
  const natsUrl = values["nats-url"] ?? env.NATS_URL;
  const errors: string[] = [];
  if (natsUrl !== undefined && !/^wss?:\/\/[^\s/]+(:\d+)?\/?$/.test(natsUrl)) {
    errors.push(
      `invalid --nats-url=${
        JSON.stringify(natsUrl)
      }: expected a ws:// or wss:// URL (the browser ` +
        `speaks WebSocket only; enable a websocket listener on the nats-server)`,
    );
  }
  const port = Number(values.port ?? env.MVN_DASHBOARD_PORT ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    errors.push(`invalid --port=${JSON.stringify(values.port)}: expected 0..65535`);
  }
  const prefix = values.prefix ?? env.MVN_PREFIX ?? DEFAULT_PREFIX;
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix)) {
    errors.push(`invalid --prefix=${JSON.stringify(prefix)}: expected subject tokens`);
  }
  const alpha = Number(values.alpha ?? 1e-3);
  if (!(alpha > 0 && alpha < 1)) errors.push(`invalid --alpha=${values.alpha}: expected 0 < α < 1`);
  const historyS = Number(values["history-s"] ?? 60);
  if (!(historyS >= 0)) errors.push(`invalid --history-s=${values["history-s"]}: expected ≥ 0`);
  const user = values.user ?? env.NATS_USER;
  const password = values.password ?? env.NATS_PASSWORD;
  if (user !== undefined && password === undefined) {
    errors.push("NATS_USER/--user is set but NATS_PASSWORD/--password is not: expected both");
  }
  if (errors.length > 0) {
    console.error(`dashboard: ${errors.join("\n")}`);
    return 2;
  }
  if (natsUrl === undefined) {
    console.error(
      "dashboard: no --nats-url given; the page must then be opened with ?nats=ws://host:port",
    );
  }
  const handler = dashboardHandler({
    wsUrl: natsUrl,
    prefix,
    alpha,
    user,
    password,
    token: values.token ?? env.NATS_TOKEN,
    historyS,
  });
  const ac = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    signal: ac.signal,
    onListen: (addr) => console.log(`dashboard: http://127.0.0.1:${addr.port}/`),
  }, async (req, info) => {
    const res = await handler(req, info);
    return res ?? new Response("not found\n", { status: 404 });
  });
  const stop = () => ac.abort();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await server.finished;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  return 0;
}
