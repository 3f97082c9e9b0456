/**
 * Batched KV writes: {@link KvBatchWriter} puts many entries of a KV bucket with their
 * acknowledgements on one shared reply subscription and one timer per call, each entry's own
 * outcome (revision, or error) reported apart.
 *
 * Why: with many keys every input message is another key, so each checkpoint barrier writes one
 * KV entry per message and each parameter round one per key learned. Through `kv.update` /
 * `kv.put` each write is a `nc.request` (a reply subscription entry, a timer, an error object
 * made up front for its stack, promises): with 20,000 keys those took about a third of the
 * worker's main thread and a good part of its garbage collection (docs/perf/2026-12-07-live-keys-cpu.md).
 * The messages on the wire are the ones `kv.put`/`kv.create`/`kv.update` send: the same subject,
 * payload and `Nats-Expected-Last-Subject-Sequence` header.
 *
 * Unlike the acked publisher (`acked_publisher.ts`), whose call is stored whole or not at all, a
 * write's reply subject names its index (`<inbox>.<call>.<index>`): a checkpoint store must know
 * which key's write was refused (a wrong last sequence) and which revision each key got.
 *
 * @module
 */
import type { KV } from "@nats-io/kv";
import { createInbox, type NatsConnection, type Subscription } from "@nats-io/nats-core";
import { kvWriteSubject, publishWithHeaderFrame } from "./client_internals.ts";
import { readPubAck } from "./pub_ack.ts";

/** One KV write: an (encoded) KV key, its value, and for a checked write the expected revision. */
export interface KvWrite {
  readonly key: string;
  readonly data: string | Uint8Array;
  /** `Nats-Expected-Last-Subject-Sequence` (0: the key must not exist, as `kv.create`). */
  readonly expect?: number;
}

/** A write's outcome: its revision, or why not (`wrongLast`: the expected revision was not it). */
export type KvWriteResult =
  | { readonly ok: true; readonly revision: number }
  | { readonly ok: false; readonly error: Error; readonly wrongLast: boolean };

/** JetStream's "wrong last sequence" error codes (as `checkpoint_store.ts` checks them). */
const _WRONG_LAST = new Set([10071, 10164]);

interface _Call {
  readonly results: (KvWriteResult | undefined)[];
  left: number;
  readonly done: () => void;
}

/** KV writes on one connection (see the module notes); its subscription ends with it. */
export class KvBatchWriter {
  readonly #nc: NatsConnection;
  readonly #inbox = createInbox();
  readonly #sub: Subscription;
  readonly #calls = new Map<number, _Call>();
  readonly #enc = new TextEncoder();
  readonly #dec = new TextDecoder();
  #next = 0;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    const prefix = this.#inbox.length + 1;
    this.#sub = nc.subscribe(`${this.#inbox}.*.*`, {
      callback: (err, m) => {
        if (err !== null) return;
        const rest = m.subject.slice(prefix);
        const dot = rest.indexOf(".");
        const call = this.#calls.get(Number(rest.slice(0, dot)));
        const i = Number(rest.slice(dot + 1));
        if (call === undefined || !(i >= 0 && i < call.results.length)) return;
        if (call.results[i] !== undefined) return;
        call.results[i] = m.headers?.hasError
          ? _failure(`expected a KV write acknowledgement, found status ${m.headers.code}`)
          : _readAck(this.#dec.decode(m.data));
        if (--call.left === 0) call.done();
      },
    });
    // An acknowledgement lost with the old connection would only end in the call's timeout:
    // once reconnected, what is still unanswered fails at once (the caller then checks it).
    (async () => {
      for await (const st of nc.status()) {
        if (st.type !== "reconnect") continue;
        for (const call of [...this.#calls.values()]) {
          _fillMissing(call, _failure("expected a KV write acknowledgement, found a reconnect"));
          call.done();
        }
      }
    })().catch(() => {});
  }

  /**
   * Writes every entry of `kv`; resolves with each one's outcome once all are answered, or past
   * `timeoutMs` (those unanswered then fail: they may or may not have been stored).
   */
  writeAll(kv: KV, writes: readonly KvWrite[], timeoutMs: number): Promise<KvWriteResult[]> {
    const results: (KvWriteResult | undefined)[] = new Array(writes.length);
    if (writes.length === 0) return Promise.resolve([]);
    const id = ++this.#next;
    let timer: ReturnType<typeof setTimeout> | undefined;
    return new Promise<KvWriteResult[]>((resolve) => {
      const call: _Call = {
        results,
        left: writes.length,
        done: () => {
          clearTimeout(timer);
          this.#calls.delete(id);
          resolve(results as KvWriteResult[]);
        },
      };
      this.#calls.set(id, call);
      timer = setTimeout(() => {
        _fillMissing(
          call,
          _failure(`expected a KV write acknowledgement within ${timeoutMs} ms, found none`),
        );
        call.done();
      }, timeoutMs);
      const { frames, data } = this.#encode(writes);
      for (let i = 0; i < writes.length; i++) {
        const w = writes[i];
        const reply = `${this.#inbox}.${id}.${i}`;
        try {
          const subject = kvWriteSubject(kv, w.key);
          const frame = frames[i];
          if (frame === undefined) this.#nc.publish(subject, data[i], { reply });
          else publishWithHeaderFrame(this.#nc, subject, data[i], reply, frame);
        } catch (e) {
          const error = e instanceof Error ? e : new Error(String(e));
          results[i] = { ok: false, error, wrongLast: false };
          call.left--;
        }
      }
      if (call.left === 0) call.done();
    });
  }

  /** Each write's header frame (undefined: none) and payload, from one encode of all texts. */
  #encode(writes: readonly KvWrite[]): { frames: (Uint8Array | undefined)[]; data: Uint8Array[] } {
    const texts: string[] = [];
    for (const w of writes) {
      texts.push(
        w.expect === undefined
          ? ""
          : `NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: ${w.expect}\r\n\r\n`,
      );
      texts.push(typeof w.data === "string" ? w.data : "");
    }
    const bytes = encodeEach(this.#enc, texts);
    const frames: (Uint8Array | undefined)[] = new Array(writes.length);
    const data: Uint8Array[] = new Array(writes.length);
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i];
      frames[i] = w.expect === undefined ? undefined : bytes[2 * i];
      data[i] = typeof w.data === "string" ? bytes[2 * i + 1] : w.data;
    }
    return { frames, data };
  }

  close(): void {
    this.#sub.unsubscribe();
  }
}

/**
 * Each text's UTF-8 bytes; when all are ASCII, views of one buffer from one encode (the client
 * copies a payload into its outbound buffer, so views are fine): an encode per checkpoint or
 * parameter message was a visible share of the worker's time with many keys.
 */
export function encodeEach(enc: TextEncoder, texts: readonly string[]): Uint8Array[] {
  const joined = texts.join("");
  const bytes = enc.encode(joined);
  const out: Uint8Array[] = new Array(texts.length);
  if (bytes.length === joined.length) {
    let at = 0;
    for (let i = 0; i < texts.length; i++) {
      out[i] = bytes.subarray(at, at + texts[i].length);
      at += texts[i].length;
    }
  } else for (let i = 0; i < texts.length; i++) out[i] = enc.encode(texts[i]);
  return out;
}

function _failure(message: string): KvWriteResult {
  return { ok: false, error: new Error(message), wrongLast: false };
}

function _fillMissing(call: _Call, failure: KvWriteResult): void {
  for (let i = 0; i < call.results.length; i++) call.results[i] ??= failure;
}

/** A publish acknowledgement: the revision, or the error it carries. */
function _readAck(text: string): KvWriteResult {
  const ack = readPubAck(text);
  if (ack.ok) return { ok: true, revision: ack.seq };
  return {
    ok: false,
    error: new Error(`expected a KV write acknowledgement, found ${text.slice(0, 200)}`),
    wrongLast: (ack.code !== undefined && _WRONG_LAST.has(ack.code)) ||
      /wrong last sequence/i.test(text),
  };
}
