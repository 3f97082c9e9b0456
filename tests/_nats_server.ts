/**
 * Test helper: a throw-away nats-server (JetStream, loopback, free ports, temp store), optionally
 * with WebSocket. `await using server = await startNatsServer()`; `restart()` keeps ports and store.
 *
 * @module
 */
import { join } from "node:path";
import { NatsServerProcess } from "../src/nats/server_process.ts";

/** A nats-server for one test, removed with its store on dispose. */
export interface TestNatsServer extends AsyncDisposable {
  readonly url: string;
  readonly wsUrl?: string;
  readonly dir: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

/** Starts nats-server -js -a 127.0.0.1 -p -1 with a temp store (and `websocket` when asked). */
export async function startNatsServer(opts: { websocket?: boolean } = {}): Promise<TestNatsServer> {
  const dir = await Deno.makeTempDir({ prefix: "mvn-nats-" });
  let server: NatsServerProcess;
  try {
    server = await NatsServerProcess.start({
      storeDir: join(dir, "store"),
      workDir: join(dir, "run"),
      port: -1,
      websocket: opts.websocket,
      wsPort: -1,
      readyTimeoutMs: 15_000,
    });
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
  return {
    url: server.url,
    wsUrl: server.wsUrl,
    dir,
    stop: () => server.stop(),
    restart: () => server.restart(),
    async [Symbol.asyncDispose]() {
      await server.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** A temp directory removed on dispose. */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "mvn-live-" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}
