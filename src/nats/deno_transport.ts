/**
 * A NATS transport on Deno's own TCP sockets (`Deno.connect`), for plain `nats://` connections.
 *
 * `@nats-io/transport-node` goes through Deno's `node:net` layer: streams, `Buffer`s and a
 * write request per flush. On these machines a socket round trip through it cost about twice the
 * CPU of the same round trip on a `Deno.TcpConn` (src/bench/, `deno task bench`), and the live
 * worker makes thousands per second. TLS connections keep using `@nats-io/transport-node`, which
 * supports client certificates.
 *
 * @module
 */
import {
  checkOptions,
  type ConnectionOptions,
  DataBuffer,
  type Deferred,
  deferred,
  extractProtocolMessage,
  INFO,
  type ServerInfo,
  type Transport,
} from "./client_internals.ts";
import { errors } from "@nats-io/nats-core";

/** Bytes read per socket read at most; each read's bytes are copied out at their own size. */
const _READ_SIZE = 256 * 1024;

/** {@link Transport} over a `Deno.TcpConn`. */
export class DenoTcpTransport implements Transport {
  readonly version = "mvn-deno-tcp-1";
  readonly lang = "nats.js";
  closeError?: Error;
  #conn: Deno.TcpConn | undefined;
  #options: ConnectionOptions = {};
  readonly #readBuf = new Uint8Array(_READ_SIZE);
  /** What arrived with the server's INFO, handed to the client first. */
  #first: Uint8Array = new Uint8Array(0);
  #done = false;
  #connected = false;
  readonly #closed: Deferred<void | Error> = deferred();
  /** Frames waiting for the write in progress; written together as one. */
  #queue: Uint8Array[] = [];
  #queued = 0;
  #writing: Promise<void> | null = null;

  get isClosed(): boolean {
    return this.#done;
  }

  async connect(
    hp: { hostname: string; port: number; tlsName: string },
    options: ConnectionOptions,
  ): Promise<void> {
    this.#options = options;
    try {
      const conn = await Deno.connect({ hostname: hp.hostname, port: hp.port });
      this.#conn = conn;
      conn.setNoDelay(true);
      const info = await this.#peekInfo(conn);
      checkOptions(info, options);
      if (info.tls_required === true) {
        throw new errors.ConnectionError(
          "expected a server without TLS on this transport, found tls_required (use tls://)",
        );
      }
      this.#connected = true;
    } catch (e) {
      this.#safeClose();
      if (e instanceof Deno.errors.ConnectionRefused) {
        throw new errors.ConnectionError("connection refused", { cause: e });
      }
      throw e;
    }
  }

  async #peekInfo(conn: Deno.TcpConn): Promise<ServerInfo> {
    const inbound = new DataBuffer();
    while (true) {
      const n = await conn.read(this.#readBuf);
      if (n === null) throw new errors.ConnectionError("socket closed while expecting INFO");
      inbound.fill(this.#readBuf.slice(0, n));
      const pm = extractProtocolMessage(inbound.peek());
      if (pm === "") continue;
      // The client parses INFO itself too: it gets everything read so far.
      this.#first = inbound.drain();
      const m = INFO.exec(pm);
      if (m === null) throw new errors.ConnectionError(`expected INFO, found ${pm.slice(0, 80)}`);
      return JSON.parse(m[1]) as ServerInfo;
    }
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array> {
    return this.#iterate();
  }

  async *#iterate(): AsyncIterableIterator<Uint8Array> {
    let reason: Error | undefined;
    if (this.#first.length > 0) yield this.#first;
    this.#first = new Uint8Array(0);
    const conn = this.#conn;
    while (!this.#done && conn !== undefined) {
      let n: number | null;
      try {
        n = await conn.read(this.#readBuf);
      } catch (e) {
        if (!this.#done) reason = e instanceof Error ? e : new Error(String(e));
        break;
      }
      if (n === null) break;
      // A copy at its own size: the client keeps views of message payloads.
      if (n > 0) yield this.#readBuf.slice(0, n);
    }
    this.#finish(reason);
  }

  send(frame: Uint8Array): void {
    if (this.#done || this.#conn === undefined || frame.length === 0) return;
    this.#queue.push(frame);
    this.#queued += frame.length;
    this.#writing ??= this.#pump(this.#conn);
  }

  /** Writes queued frames until none are left; frames queued meanwhile go out as one write. */
  async #pump(conn: Deno.TcpConn): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const frames = this.#queue;
        const size = this.#queued;
        this.#queue = [];
        this.#queued = 0;
        let data: Uint8Array;
        if (frames.length === 1) data = frames[0];
        else {
          data = new Uint8Array(size);
          let at = 0;
          for (const f of frames) {
            data.set(f, at);
            at += f.length;
          }
        }
        for (let at = 0; at < data.length;) at += await conn.write(data.subarray(at));
      }
    } catch {
      // A failed write shows as a failed read too; the client reconnects from there.
      this.#queue = [];
      this.#queued = 0;
    } finally {
      this.#writing = null;
    }
  }

  isEncrypted(): boolean {
    return false;
  }

  close(err?: Error): Promise<void> {
    this.#finish(err);
    return Promise.resolve();
  }

  disconnect(): void {
    this.#finish(undefined);
  }

  /**
   * Closes once and tells the client (which reconnects unless it is closing itself). Queued
   * writes are dropped, as `@nats-io/transport-node` does: a client that closes on purpose has
   * flushed with a PING first, and a stale socket may never take them.
   */
  #finish(err: Error | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.closeError = err;
    this.#queue = [];
    this.#queued = 0;
    this.#safeClose();
    if (this.#connected) this.#closed.resolve(err);
  }

  #safeClose(): void {
    try {
      this.#conn?.close();
    } catch {
      // Already closed.
    }
    this.#conn = undefined;
  }

  closed(): Promise<void | Error> {
    return this.#closed;
  }

  discard(): void {
    this.#done = true;
    this.#safeClose();
  }
}
