/**
 * Opens a NATS connection from {@link NatsSettings}: plain TCP (`nats://`) on Deno's own sockets
 * (`deno_transport.ts`), TLS (`tls://`, or a CA / client certificate given) through
 * `@nats-io/transport-node`, WebSocket (`ws://`, `wss://`) through `wsconnect`. Reconnects forever.
 *
 * @module
 */
import {
  type Authenticator,
  type ConnectionOptions,
  credsAuthenticator,
  type NatsConnection,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
  wsconnect,
} from "@nats-io/nats-core";
import { connect, type NodeConnectionOptions } from "@nats-io/transport-node";
import { connectWithTransport } from "./client_internals.ts";
import { DenoTcpTransport } from "./deno_transport.ts";
import type { NatsSettings } from "../config/live_config.ts";

/** Extra options for {@link connectNats}. */
export interface ConnectExtras {
  /** Client name shown by the server. */
  readonly name?: string;
  /** Give up after this many reconnect attempts; default -1 (never). */
  readonly maxReconnectAttempts?: number;
  /** Keep retrying while the first connection fails (the worker); default true. */
  readonly waitOnFirstConnect?: boolean;
}

const _SOCKET_CODES = new Set(["ECONNRESET", "EPIPE", "ECONNREFUSED", "ETIMEDOUT", "ECONNABORTED"]);
let _guarded = false;

/**
 * `@nats-io/transport-node` removes its socket listeners before destroying a socket, so a late
 * `ECONNRESET` (e.g. after an authorization error, or while the server restarts) is emitted with
 * no listener and would end the process as an uncaught exception. The client already handles the
 * connection loss itself (it reconnects or rejects), so such socket errors are swallowed.
 */
function _guardSocketErrors(): void {
  if (_guarded) return;
  _guarded = true;
  globalThis.addEventListener("error", (ev) => {
    const code = (ev.error as { code?: unknown } | undefined)?.code;
    if (typeof code === "string" && _SOCKET_CODES.has(code)) ev.preventDefault();
  });
}

/** True for ws:// and wss:// URLs. */
export function isWebSocketUrl(url: string): boolean {
  return /^wss?:\/\//i.test(url);
}

/** Connects to `settings.url` (required here) with its authentication and TLS settings. */
export async function connectNats(
  settings: NatsSettings,
  extras: ConnectExtras = {},
): Promise<NatsConnection> {
  const url = settings.url;
  if (url === undefined) throw new TypeError("expected a NATS URL, found none");
  _guardSocketErrors();
  const authenticators: Authenticator[] = [];
  if (settings.creds !== undefined) {
    authenticators.push(credsAuthenticator(await Deno.readFile(settings.creds)));
  }
  if (settings.user !== undefined) {
    authenticators.push(usernamePasswordAuthenticator(settings.user, settings.password));
  }
  if (settings.token !== undefined) authenticators.push(tokenAuthenticator(settings.token));
  const base: ConnectionOptions = {
    // A comma-separated list: the servers of one cluster (the client also learns the others).
    servers: url.split(",").map((u) => u.trim()).filter((u) => u.length > 0),
    name: extras.name ?? "mvn-online",
    maxReconnectAttempts: extras.maxReconnectAttempts ?? -1,
    reconnectTimeWait: 500,
    // Keep trying while the first connection is refused (server restarting).
    waitOnFirstConnect: extras.waitOnFirstConnect ?? true,
    pingInterval: 10_000,
    // An Error (stack capture) per request costs ~40 µs: with a JetStream publish per score
    // record that alone held a 256-record batch's first score back by ~10 ms.
    noAsyncTraces: true,
    authenticator: authenticators.length > 0 ? authenticators : undefined,
  };
  if (isWebSocketUrl(url)) {
    // Deno's WebSocket uses the system trust store (DENO_CERT adds a CA); no client certificates.
    return await wsconnect(base);
  }
  const wantsTls = url.startsWith("tls://") || settings.tlsCa !== undefined ||
    settings.tlsCert !== undefined;
  if (!wantsTls) {
    // The client takes its transport from a process-wide factory, at every (re)connect.
    return await connectWithTransport(base, () => new DenoTcpTransport());
  }
  const opts: NodeConnectionOptions = {
    ...base,
    tls: wantsTls
      ? {
        caFile: settings.tlsCa,
        certFile: settings.tlsCert,
        keyFile: settings.tlsKey,
      }
      : undefined,
  };
  return await connect(opts);
}

/**
 * {@link connectNats} for a command line tool: when it fails, reports
 * `<command>: cannot connect to <url>: <why>` on stderr and returns null.
 */
export async function connectOrReport(
  command: string,
  settings: NatsSettings,
  extras: ConnectExtras = {},
): Promise<NatsConnection | null> {
  try {
    return await connectNats(settings, extras);
  } catch (e) {
    console.error(
      `${command}: cannot connect to ${settings.url}: ${e instanceof Error ? e.message : e}`,
    );
    return null;
  }
}
