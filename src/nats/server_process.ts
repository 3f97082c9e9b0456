/**
 * Runs a `nats-server` child process with JetStream on loopback: used by the worker when no NATS
 * URL is configured, and by the tests. Ports are read back from the server's ports file, so `-1`
 * (any free port) works; `restart()` brings it back on the same ports and store.
 *
 * @module
 */
import { join } from "node:path";

/** `nats-server` is not installed (or not on PATH). */
export class NatsServerMissingError extends Error {
  constructor(options?: ErrorOptions) {
    super(
      "expected the nats-server binary on PATH, found none: install it with " +
        "`apt-get install -y nats-server` (or from https://github.com/nats-io/nats-server/releases)",
      options,
    );
    this.name = "NatsServerMissingError";
  }
}

/** Options of {@link NatsServerProcess.start}. */
export interface NatsServerOptions {
  /** JetStream store directory (created if missing). */
  readonly storeDir: string;
  /** Directory for the config, ports and log files (created if missing). */
  readonly workDir: string;
  /** Client port; -1 (default) = any free port. */
  readonly port?: number;
  /** Also listen for WebSocket clients (no TLS), on `wsPort` (-1 = any free port). */
  readonly websocket?: boolean;
  readonly wsPort?: number;
  /** Readiness deadline. Default 10 s. */
  readonly readyTimeoutMs?: number;
  /**
   * More configuration appended to the server's file, e.g. the partition mapping
   * (`partitionMapping`, the text of `deploy/nats/partitions.conf`) or a `cluster { … }` block.
   */
  readonly extraConfig?: string;
  /** `server_name` (needed in a JetStream cluster). */
  readonly serverName?: string;
  /**
   * Start the server in its own session, so that a terminal's Ctrl-C reaches only its parent
   * (which then stops the workers before the servers). Default false.
   */
  readonly detached?: boolean;
}

interface PortsFile {
  nats?: string[];
  websocket?: string[];
}

/** A running nats-server child. */
export class NatsServerProcess implements AsyncDisposable {
  #child: Deno.ChildProcess | undefined;
  #opts: NatsServerOptions;
  #port: number;
  #wsPort: number | undefined;

  private constructor(
    opts: NatsServerOptions,
    child: Deno.ChildProcess,
    port: number,
    ws?: number,
  ) {
    this.#opts = opts;
    this.#child = child;
    this.#port = port;
    this.#wsPort = ws;
  }

  /** Starts a server and waits until it accepts connections. */
  static async start(opts: NatsServerOptions): Promise<NatsServerProcess> {
    const { child, port, wsPort } = await launch(opts, opts.port ?? -1, opts.wsPort ?? -1);
    return new NatsServerProcess(opts, child, port, wsPort);
  }

  get port(): number {
    return this.#port;
  }
  /** `nats://127.0.0.1:<port>`. */
  get url(): string {
    return `nats://127.0.0.1:${this.#port}`;
  }
  /** `ws://127.0.0.1:<wsPort>` when started with `websocket`. */
  get wsUrl(): string | undefined {
    return this.#wsPort === undefined ? undefined : `ws://127.0.0.1:${this.#wsPort}`;
  }
  get pid(): number | undefined {
    return this.#child?.pid;
  }
  get running(): boolean {
    return this.#child !== undefined;
  }

  /**
   * Asks the server to stop (SIGTERM) without waiting: for a process about to exit at once (an
   * aborted worker), which must not leave its detached server behind.
   */
  terminate(): void {
    try {
      this.#child?.kill("SIGTERM");
    } catch {
      // already exited
    }
  }

  /** Stops the server (SIGTERM, then SIGKILL after 5 s). Idempotent. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
    }, 5000);
    try {
      await child.status;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops and starts again on the same ports and store. */
  async restart(): Promise<void> {
    await this.stop();
    const { child } = await launch(this.#opts, this.#port, this.#wsPort ?? -1);
    this.#child = child;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

async function launch(
  opts: NatsServerOptions,
  port: number,
  wsPort: number,
): Promise<{ child: Deno.ChildProcess; port: number; wsPort?: number }> {
  await Deno.mkdir(opts.storeDir, { recursive: true });
  await Deno.mkdir(opts.workDir, { recursive: true });
  const portsDir = await Deno.makeTempDir({ dir: opts.workDir, prefix: "ports-" });
  const conf = join(opts.workDir, "nats-server.conf");
  await Deno.writeTextFile(
    conf,
    (opts.serverName !== undefined ? `server_name: ${JSON.stringify(opts.serverName)}\n` : "") +
      (opts.websocket
        ? `websocket {\n  host: "127.0.0.1"\n  port: ${wsPort}\n  no_tls: true\n}\n`
        : "") +
      (opts.extraConfig ?? ""),
  );
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("nats-server", {
      args: [
        "-c",
        conf,
        "-js",
        "-a",
        "127.0.0.1",
        "-p",
        String(port),
        "--ports_file_dir",
        portsDir,
        "-sd",
        opts.storeDir,
        "-l",
        join(opts.workDir, "nats-server.log"),
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
      detached: opts.detached ?? false,
    }).spawn();
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) throw new NatsServerMissingError({ cause });
    throw cause;
  }
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 10_000);
  let exited = false;
  child.status.then(() => (exited = true));
  try {
    const ports = await waitForPorts(portsDir, child.pid, deadline, () => exited);
    const natsUrl = ports.nats?.[0];
    if (natsUrl === undefined) throw new Error(`ports file lists no client URL`);
    const actual = Number(new URL(natsUrl.replace(/^nats:/, "http:")).port);
    const wsUrl = ports.websocket?.find((u) => u.includes("127.0.0.1"));
    const actualWs = wsUrl === undefined ? undefined : Number(new URL(wsUrl).port);
    await waitForTcp(actual, deadline, () => exited);
    return { child, port: actual, wsPort: actualWs };
  } catch (cause) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
    const log = await Deno.readTextFile(join(opts.workDir, "nats-server.log")).catch(() => "");
    throw new Error(
      `expected nats-server to become ready within the deadline: ${(cause as Error).message}\n` +
        log.split("\n").slice(-10).join("\n"),
      { cause },
    );
  } finally {
    await Deno.remove(portsDir, { recursive: true }).catch(() => {});
  }
}

async function waitForPorts(
  dir: string,
  pid: number,
  deadline: number,
  exited: () => boolean,
): Promise<PortsFile> {
  const file = join(dir, `nats-server_${pid}.ports`);
  while (Date.now() < deadline) {
    if (exited()) throw new Error("nats-server exited during start-up");
    try {
      const text = await Deno.readTextFile(file);
      if (text.trim().length > 0) return JSON.parse(text) as PortsFile;
    } catch {
      // not written yet
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no ports file ${file}`);
}

async function waitForTcp(port: number, deadline: number, exited: () => boolean): Promise<void> {
  while (Date.now() < deadline) {
    if (exited()) throw new Error("nats-server exited during start-up");
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`port ${port} did not accept connections`);
}

/** True when nothing listens on 127.0.0.1:port. */
export function isPortFree(port: number): boolean {
  try {
    const l = Deno.listen({ hostname: "127.0.0.1", port });
    l.close();
    return true;
  } catch {
    return false;
  }
}
