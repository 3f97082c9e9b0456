/**
 * Serves the dashboard page: `/` (index.html), its static files (`app.js`, built by
 * `deno task build:dashboard` and checked in; `app.css`; `uplot.css`) and `/config.json`, which
 * tells the page where NATS's WebSocket listener is, the subject prefix, α and the credentials.
 * `/config.json` answers only clients on loopback that asked for a loopback host name (it may
 * carry a password or token); the worker
 * and `deno task dashboard` listen on 127.0.0.1 only anyway.
 *
 * @module
 */
import { topologyFor } from "../config/live_config.ts";

/** What the page is told. */
export interface DashboardSettings {
  /** ws:// or wss:// URL of NATS's WebSocket listener; undefined = the page needs `?nats=`. */
  readonly wsUrl?: string;
  readonly prefix: string;
  /** Anomaly level α; the page draws the threshold at −log₁₀ α. */
  readonly alpha: number;
  readonly user?: string;
  readonly password?: string;
  readonly token?: string;
  /** Seconds of score history the page reads on load. Default 60. */
  readonly historyS?: number;
}

const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
  "/uplot.css": { file: "uplot.css", type: "text/css; charset=utf-8" },
};

const cache = new Map<string, Uint8Array<ArrayBuffer>>();

async function staticFile(name: string): Promise<Uint8Array<ArrayBuffer>> {
  let body = cache.get(name);
  if (body === undefined) {
    const url = new URL(`./static/${name}`, import.meta.url);
    body = url.protocol === "file:"
      ? await Deno.readFile(url)
      : new Uint8Array(await (await fetch(url)).arrayBuffer());
    cache.set(name, body);
  }
  return body;
}

/** True for 127.0.0.0/8 and ::1 (and IPv4-mapped loopback). */
export function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, "").replace(/^::ffff:/, "");
  return h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h) || h === "localhost";
}

/** The JSON `/config.json` serves. */
export function pageConfig(s: DashboardSettings): Record<string, unknown> {
  const topo = topologyFor(s.prefix);
  const auth: Record<string, string> = {};
  if (s.user !== undefined) auth.user = s.user;
  if (s.password !== undefined) auth.password = s.password;
  if (s.token !== undefined) auth.token = s.token;
  return {
    nats: s.wsUrl ?? null,
    prefix: s.prefix,
    alpha: s.alpha,
    scores_stream: topo.scoresStream,
    input_stream: topo.inputStream,
    params_bucket: topo.paramsBucket,
    history_s: s.historyS ?? 60,
    ...(Object.keys(auth).length > 0 ? { auth } : {}),
  };
}

/**
 * A request handler for the dashboard's paths; resolves `undefined` for any other path (so it
 * can share a server with `/healthz` and `/metrics`).
 */
export function dashboardHandler(
  settings: DashboardSettings,
): (req: Request, info?: Deno.ServeHandlerInfo) => Promise<Response | undefined> {
  return async (req, info) => {
    const path = new URL(req.url).pathname;
    if (req.method !== "GET" && req.method !== "HEAD") return undefined;
    if (path === "/config.json") {
      const remote = info?.remoteAddr;
      const host = remote && "hostname" in remote ? remote.hostname : "127.0.0.1";
      // The Host check keeps a DNS-rebound foreign page from reading the credentials.
      const hostHeader = (req.headers.get("host") ?? "127.0.0.1").replace(/:\d+$/, "");
      if (!isLoopback(host) || !isLoopback(hostHeader)) {
        return new Response(
          "config.json is served only to loopback clients asking for a loopback host name\n",
          { status: 403 },
        );
      }
      return Response.json(pageConfig(settings), { headers: { "cache-control": "no-store" } });
    }
    const f = FILES[path];
    if (f === undefined) return undefined;
    try {
      return new Response(await staticFile(f.file), {
        headers: { "content-type": f.type, "cache-control": "no-cache" },
      });
    } catch (e) {
      return new Response(
        `dashboard file ${f.file} is missing (run: deno task build:dashboard): ${e}\n`,
        { status: 500 },
      );
    }
  };
}
