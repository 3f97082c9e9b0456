/**
 * Every use of nats.js beyond its public API, in one place: the one module to read and fix when
 * the client is upgraded. `deno.json` pins `@nats-io/*` 3.4.0; `tests/nats_client_internals.test.ts`
 * fails loudly when an upgrade breaks any of these.
 *
 * - {@link connectWithTransport}: a connection on our own transport (`deno_transport.ts`).
 * - The transport building blocks re-exported below, which `deno_transport.ts` implements
 *   `Transport` with.
 * - {@link fetchWithCallback}: a pull request whose messages come in a callback, in arrival order.
 * - {@link publishWithHeaderFrame}: a publication whose header block is given as ready bytes.
 * - {@link kvWriteSubject}: the subject a KV bucket writes a key to.
 * - {@link kvReadTarget}: a KV bucket's stream and the subject filter of some of its keys.
 *
 * Nothing else in `src/` imports `@nats-io/nats-core/internal` or casts past the client's types.
 *
 * @module
 */
import type {
  ConsumeCallback,
  Consumer,
  ConsumerMessages,
  FetchOptions,
  JetStreamClient,
  JsMsg,
} from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { MsgHdrs, NatsConnection } from "@nats-io/nats-core";
import {
  type ConnectionOptions,
  NatsConnectionImpl,
  setTransportFactory,
  type Transport,
} from "@nats-io/nats-core/internal";

/**
 * What a `Transport` implementation needs from the client: its option check against the server's
 * INFO, its byte buffer, its deferred promise, its protocol-line splitter and its INFO pattern.
 * The public package exports none of them (nor the `Transport` interface itself), and
 * `deno_transport.ts` must behave exactly as the client's own transports do.
 */
export {
  checkOptions,
  type ConnectionOptions,
  DataBuffer,
  type Deferred,
  deferred,
  extractProtocolMessage,
  INFO,
  type ServerInfo,
  type Transport,
} from "@nats-io/nats-core/internal";

/**
 * Connects with `options` on transports made by `factory` (at the first connect and every
 * reconnect). The public `connect` functions each fix their transport (`node:net`, WebSocket);
 * a transport of our own (Deno's TCP sockets, `deno_transport.ts`) needs the client's
 * process-wide transport factory and `NatsConnectionImpl.connect`, which only
 * `@nats-io/nats-core/internal` exports. The factory is process-wide: the last one set serves
 * every later (re)connect of any connection made this way.
 */
export function connectWithTransport(
  options: ConnectionOptions,
  factory: () => Transport,
): Promise<NatsConnection> {
  setTransportFactory({ factory });
  return NatsConnectionImpl.connect(options);
}

/**
 * One pull request (`consumer.fetch(options)`) whose messages are handed to `callback`
 * synchronously from the subscription, in arrival order across all open requests; the returned
 * messages object is then used only to stop it and to wait for its end (`closed()`). The
 * `callback` option is typed for `consume()` only, but `fetch()` shares its implementation
 * (`@nats-io/jetstream` 3.4) and honours it. The async iterator a plain `fetch` offers would not
 * keep arrival order across the pull source's two overlapping requests.
 */
export function fetchWithCallback(
  consumer: Consumer,
  options: FetchOptions,
  callback: (m: JsMsg) => void,
): Promise<ConsumerMessages> {
  const opts: FetchOptions & ConsumeCallback = { ...options, callback };
  return consumer.fetch(opts);
}

/**
 * Publishes `data` on `subject` with `reply`, its header block given as ready bytes
 * (`NATS/1.0\r\n<Key>: <value>\r\n…\r\n`, CR/LF-free values, as the acked publisher builds them).
 * The client only calls `encode()` on the headers it is given (`@nats-io/nats-core` 3.4) and copies
 * the bytes (views are fine) into its outbound buffer, so an object with just `encode` spares
 * building a `MsgHdrs` and encoding it per message: the hot path of every score record.
 */
export function publishWithHeaderFrame(
  nc: NatsConnection,
  subject: string,
  data: Uint8Array,
  reply: string,
  headerFrame: Uint8Array,
): void {
  const headers = { encode: () => headerFrame } as unknown as MsgHdrs;
  nc.publish(subject, data, { reply, headers });
}

/** What {@link kvWriteSubject} uses of a KV bucket (`@nats-io/kv` 3.4's `Bucket`). */
interface _BucketInternals {
  encodeKey(key: string): string;
  validateKey(key: string): void;
  subjectForKey(key: string, edit: boolean): string;
}

function _isBucket(kv: unknown): kv is _BucketInternals {
  const b = kv as Partial<Record<keyof _BucketInternals, unknown>>;
  return typeof b.encodeKey === "function" && typeof b.validateKey === "function" &&
    typeof b.subjectForKey === "function";
}

/**
 * The subject `kv.put(key, …)` publishes to (`$KV.<bucket>.<key>`, or a mirror's or JS domain's
 * edit subject), with the key checked as `kv.put` checks it (throws when invalid). `KV` exposes
 * no subject, and `kv_writer.ts` publishes the writes itself to batch their acknowledgements.
 */
export function kvWriteSubject(kv: KV, key: string): string {
  if (!_isBucket(kv)) throw new TypeError("expected a @nats-io/kv bucket");
  const ek = kv.encodeKey(key);
  kv.validateKey(ek);
  return kv.subjectForKey(ek, true);
}

/** What {@link kvReadTarget} uses of a KV bucket (`@nats-io/kv` 3.4's `Bucket`). */
interface _BucketStream {
  readonly js: JetStreamClient;
  readonly stream: string;
  encodeKey(key: string): string;
  fullKeyName(key: string): string;
}

function _hasStream(kv: unknown): kv is _BucketStream {
  const b = kv as Partial<Record<keyof _BucketStream, unknown>>;
  return typeof b.js === "object" && b.js !== null && typeof b.stream === "string" &&
    typeof b.encodeKey === "function" && typeof b.fullKeyName === "function";
}

/**
 * The bucket's JetStream client, its stream, and the subject filter of the keys `keyFilter`
 * matches (`p3.>` → `$KV.<bucket>.p3.>`, as `kv.keys(filter)` builds it). `KV` reads values one
 * get at a time; `checkpoint_store.ts` reads a partition's last values in one consumer's batches.
 */
export function kvReadTarget(
  kv: KV,
  keyFilter: string,
): { js: JetStreamClient; stream: string; filterSubject: string } {
  if (!_hasStream(kv)) throw new TypeError("expected a @nats-io/kv bucket");
  return { js: kv.js, stream: kv.stream, filterSubject: kv.fullKeyName(kv.encodeKey(keyFilter)) };
}
