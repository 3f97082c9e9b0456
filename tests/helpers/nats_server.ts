/**
 * Test helper: a throw-away nats-server (JetStream, loopback, free ports, temp store), optionally
 * with WebSocket. `await using server = await startNatsServer()`; `restart()` keeps ports and store.
 *
 * @module
 */
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { NatsServerProcess } from "../../src/nats/server_process.ts";
import { partitionMapping } from "../../src/nats/partitions.ts";

/** A nats-server for one test, removed with its store on dispose. */
export interface TestNatsServer extends AsyncDisposable {
  readonly url: string;
  readonly wsUrl?: string;
  readonly dir: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

/**
 * Starts nats-server -js -a 127.0.0.1 -p -1 with a temp store (and `websocket` when asked; with
 * `partitions`, the partition mapping of prefix `telemetry` into that many partitions).
 */
export async function startNatsServer(
  opts: { websocket?: boolean; partitions?: number } = {},
): Promise<TestNatsServer> {
  const dir = await Deno.makeTempDir({ prefix: "mvn-nats-" });
  let server: NatsServerProcess;
  try {
    server = await NatsServerProcess.start({
      storeDir: join(dir, "store"),
      workDir: join(dir, "run"),
      port: -1,
      websocket: opts.websocket,
      wsPort: -1,
      readyTimeoutMs: 60_000,
      extraConfig: opts.partitions === undefined
        ? undefined
        : partitionMapping("telemetry", opts.partitions),
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

/**
 * Polls `check` every 50 ms until it returns true; throws after `timeoutMs` with `what`. The
 * deadline only bounds a hang: tests wait for events, never assert how fast they come.
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await Promise.resolve(check()).catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** One stored message of a stream. */
export interface StoredMessage {
  readonly subject: string;
  readonly seq: number;
  readonly data: Uint8Array;
  readonly header: (name: string) => string;
  json<T>(): T;
}

/**
 * Every message of a stream, in order (read with an ordered consumer). Throws when they have not
 * all arrived within `timeoutMs` (a cluster that lost a node may stall a read: callers retry).
 */
export async function readStream(
  nc: NatsConnection,
  stream: string,
  timeoutMs = 60_000,
): Promise<StoredMessage[]> {
  const jsm = await jetstreamManager(nc);
  const n = (await jsm.streams.info(stream)).state.messages;
  const out: StoredMessage[] = [];
  if (n === 0) return out;
  const c = await jetstream(nc).consumers.get(stream);
  const it = await c.consume({ max_messages: 2000 });
  // A stall ends the loop below (then the count check throws).
  const timer = setTimeout(() => it.stop(), timeoutMs);
  try {
    for await (const m of it) {
      const h = m.headers;
      out.push({
        subject: m.subject,
        seq: m.seq,
        data: m.data,
        header: (name) => h?.get(name) ?? "",
        json: <T>() => m.json<T>(),
      });
      if (out.length >= n) break;
    }
  } finally {
    clearTimeout(timer);
  }
  await it.close();
  if (out.length < n) {
    throw new Error(
      `expected ${n} messages of ${stream} within ${timeoutMs} ms, read ${out.length}`,
    );
  }
  return out;
}

/** Number of messages in a stream (0 when it does not exist yet). */
export async function streamCount(nc: NatsConnection, stream: string): Promise<number> {
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(stream)).state.messages;
  } catch {
    // not created yet, or the server is restarting
    return 0;
  }
}

/** A `deno run -A main.ts ...` child whose stderr is collected (so its pipe never fills). */
export interface CliProcess extends AsyncDisposable {
  readonly child: Deno.ChildProcess;
  /** stderr so far. */
  stderr(): string;
  /** stdout so far. */
  stdout(): string;
  /** Exit status (awaits it). */
  status(): Promise<Deno.CommandStatus>;
}

/** Starts `deno run -A main.ts <args>` from the project root. */
export function runCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const root = new URL("../..", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: root,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>, add: (t: string) => void) => {
    const dec = new TextDecoder();
    for await (const chunk of s) add(dec.decode(chunk, { stream: true }));
  };
  const pumps = Promise.all([
    pump(child.stderr, (t) => (err += t)),
    pump(child.stdout, (t) => (out += t)),
  ]);
  const status = async () => {
    const s = await child.status;
    await pumps;
    return s;
  };
  return {
    child,
    stderr: () => err,
    stdout: () => out,
    status,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      await status();
    },
  };
}
