/**
 * `/healthz`, `/readyz` and `/metrics` (Prometheus text) on 127.0.0.1, plus the dashboard page
 * when a handler for it is given (`src/dashboard/server.ts`).
 *
 * @module
 */
import type { LiveMetrics } from "./metrics.ts";

/** Serves the endpoints; `shutdown()` stops the server. */
export function serveHttp(
  port: number,
  metrics: LiveMetrics,
  log: (line: string) => void,
  extra?: (req: Request, info: Deno.ServeHandlerInfo) => Promise<Response | undefined>,
): { shutdown(): Promise<void>; readonly port: number } {
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: (addr) =>
      log(
        `http on http://127.0.0.1:${addr.port} (/healthz /readyz /metrics${
          extra ? "; dashboard at /" : ""
        })`,
      ),
  }, async (req, info) => {
    const path = new URL(req.url).pathname;
    if (extra !== undefined) {
      const res = await extra(req, info);
      if (res !== undefined) return res;
    }
    switch (path) {
      case "/healthz":
        return new Response("ok\n");
      case "/readyz":
        return metrics.ready && metrics.connected
          ? new Response("ready\n")
          : new Response("not ready\n", { status: 503 });
      case "/metrics":
        return new Response(metrics.render(), {
          headers: { "content-type": "text/plain; version=0.0.4" },
        });
      default:
        return new Response("not found\n", { status: 404 });
    }
  });
  return { shutdown: () => server.shutdown(), port: server.addr.port };
}
