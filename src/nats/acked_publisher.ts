/**
 * The acked publisher: JetStream publications acknowledged on one shared reply subscription
 * ({@link AckedPublisher}, {@link Publication}), with the acknowledgement parsing of its hot path.
 *
 * @module
 */
import { createInbox, type NatsConnection, type Subscription } from "@nats-io/nats-core";
import { readPubAck } from "./pub_ack.ts";
import { publishWithHeaderFrame } from "./client_internals.ts";

/** One JetStream publication. */
export interface Publication {
  readonly subject: string;
  readonly data: Uint8Array | string;
  readonly msgID: string;
  readonly headers?: Record<string, string>;
}

/** One `publishAll` call: its results, filled in as acknowledgements arrive. */
interface _Call {
  readonly results: PromiseSettledResult<number>[];
  /** Server responses still expected: one per publication sent. */
  left: number;
  /** Where the next acknowledged sequence goes (publication order within one stream). */
  at: number;
  /** The first failure among the responses: then nothing of the call counts as stored. */
  failure?: Error;
  readonly done: () => void;
}

/**
 * JetStream publishing with acknowledgements on one shared reply subscription and one timer per
 * call: about half the CPU of `js.publish` (a request, timer and reply parse each), which set the
 * latency of a 256-record batch's scores. Close it with the connection's other subscriptions.
 *
 * A call's publications share one reply subject, `<inbox>.<call>`, and a call is stored whole or
 * not at all: it resolves all fulfilled once every publication sent has been acknowledged, and
 * all rejected (with the first failure) when any response is an error, the timeout passes or the
 * connection is re-established first. Which response belongs to which publication is then never
 * needed, only how many came. A retry with the same `Nats-Msg-Id`s stores what was missing and
 * is acknowledged as a duplicate for the rest. The sequences are given in the order the
 * acknowledgements came, which is publication order when the call's subjects are all in one
 * stream (the server answers a stream's publications in order).
 *
 * A reply subject per publication instead cost nats-server 1–2 µs more CPU per acknowledged score
 * record (14.1–15.9 against 13.4–14.6 µs, three interleaved runs of 220,000 publications each,
 * read from `/proc/<pid>/stat`), likely its subject cache missing on every new subject.
 *
 * It is on the hot path of every score record, so it allocates little: no promise per message,
 * headers encoded straight to bytes, and a plain acknowledgement's sequence read without a JSON
 * parse (errors are parsed in full). Allocation was what set the worker's tail latency:
 * garbage-collector pauses of 10–20 ms.
 */
export class AckedPublisher {
  readonly #nc: NatsConnection;
  readonly #inbox = createInbox();
  readonly #sub: Subscription;
  #next = 0;
  readonly #calls = new Map<number, _Call>();
  readonly #enc = new TextEncoder();
  readonly #dec = new TextDecoder();

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    const prefix = this.#inbox.length + 1;
    this.#sub = nc.subscribe(`${this.#inbox}.*`, {
      callback: (err, m) => {
        if (err !== null) return;
        const call = this.#calls.get(Number(m.subject.slice(prefix)));
        if (call === undefined) return;
        let seq = -1;
        if (m.headers?.hasError) {
          call.failure ??= new Error(
            `expected a publish acknowledgement, found status ${m.headers.code}`,
          );
        } else {
          seq = _plainAckSeq(m.data);
          if (seq < 0) {
            const r = _readAck(this.#dec.decode(m.data));
            if (r.status === "fulfilled") seq = r.value;
            else call.failure ??= r.reason;
          }
        }
        if (seq >= 0) {
          while (call.results[call.at] !== undefined) call.at++;
          call.results[call.at++] = { status: "fulfilled", value: seq };
        }
        if (--call.left === 0) this.#finish(call, call.failure);
      },
    });
    // An acknowledgement lost with the old connection would only end in the call's timeout
    // (5 s in the worker, each time the server restarted); once reconnected, what is still
    // unacknowledged fails at once so that the caller re-publishes it (deduplicated by its
    // Nats-Msg-Id if it had been stored).
    (async () => {
      for await (const st of nc.status()) {
        if (st.type !== "reconnect") continue;
        const e = new Error(
          `expected a publish acknowledgement, found the connection re-established (${st.server}) first`,
        );
        for (const call of [...this.#calls.values()]) this.#finish(call, e);
      }
    })().catch(() => {});
  }

  /**
   * Ends a call: with `failure`, every publication sent is rejected, acknowledged or not
   * (which acknowledgement was whose is not known); publications refused before sending keep
   * their own reason.
   */
  #finish(call: _Call, failure: Error | undefined): void {
    const r = call.results;
    for (let i = 0; i < r.length; i++) {
      const x = r[i];
      if (x === undefined || (failure !== undefined && x.status === "fulfilled")) {
        r[i] = { status: "rejected", reason: failure };
      }
    }
    call.done();
  }

  /**
   * Publishes all; resolves with every stream sequence, or with every publication rejected
   * (see the class notes), once acknowledged, failed or past `timeoutMs`.
   */
  publishAll(
    pubs: readonly Publication[],
    timeoutMs: number,
  ): Promise<PromiseSettledResult<number>[]> {
    const id = ++this.#next;
    const results: PromiseSettledResult<number>[] = new Array(pubs.length);
    if (pubs.length === 0) return Promise.resolve(results);
    let timer: ReturnType<typeof setTimeout> | undefined;
    return new Promise<PromiseSettledResult<number>[]>((resolve) => {
      const call: _Call = {
        results,
        left: pubs.length,
        at: 0,
        done: () => {
          clearTimeout(timer);
          this.#calls.delete(id);
          resolve(results);
        },
      };
      this.#calls.set(id, call);
      timer = setTimeout(() => {
        this.#finish(
          call,
          new Error(`expected a publish acknowledgement within ${timeoutMs} ms, found none`),
        );
      }, timeoutMs);
      const reply = `${this.#inbox}.${id}`;
      const frames = this.#encodeAll(pubs);
      for (let i = 0; i < pubs.length; i++) {
        const p = pubs[i];
        try {
          const f = frames?.[i] ?? this.#encodeOne(p);
          publishWithHeaderFrame(this.#nc, p.subject, f.data, reply, f.headers);
        } catch (e) {
          results[i] = {
            status: "rejected",
            reason: e instanceof Error ? e : new Error(String(e)),
          };
          call.left--;
        }
      }
      if (call.left === 0) this.#finish(call, undefined);
    });
  }

  /**
   * Header blocks and payloads of every publication in one string and one encode: views of its
   * bytes are the messages' bytes when it is all ASCII (a byte per character: score records and
   * their ids), which spares two encodes per message (views are fine, see
   * `publishWithHeaderFrame`). Undefined when some value is not ASCII or holds CR/LF: then
   * message by message.
   */
  #encodeAll(pubs: readonly Publication[]): _Frame[] | undefined {
    let text = "";
    let values = "";
    const ends = new Int32Array(2 * pubs.length);
    for (let i = 0; i < pubs.length; i++) {
      const p = pubs[i];
      text += `NATS/1.0\r\nNats-Msg-Id: ${p.msgID}\r\n`;
      values += p.msgID;
      if (p.headers !== undefined) {
        for (const [k, v] of Object.entries(p.headers)) {
          text += `${k}: ${v}\r\n`;
          values += v;
        }
      }
      text += "\r\n";
      ends[2 * i] = text.length;
      if (typeof p.data === "string") text += p.data;
      ends[2 * i + 1] = text.length;
    }
    if (/[\r\n]/.test(values)) return undefined;
    const bytes = this.#enc.encode(text);
    if (bytes.length !== text.length) return undefined;
    const frames: _Frame[] = new Array(pubs.length);
    let at = 0;
    for (let i = 0; i < pubs.length; i++) {
      const h = ends[2 * i], d = ends[2 * i + 1];
      const data = pubs[i].data;
      frames[i] = {
        headers: bytes.subarray(at, h),
        data: typeof data === "string" ? bytes.subarray(h, d) : data,
      };
      at = d;
    }
    return frames;
  }

  /** One publication's header block and payload (refuses header values with CR or LF). */
  #encodeOne(p: Publication): _Frame {
    let text = `NATS/1.0\r\nNats-Msg-Id: ${_headerValue(p.msgID)}\r\n`;
    if (p.headers !== undefined) {
      for (const [k, v] of Object.entries(p.headers)) text += `${k}: ${_headerValue(v)}\r\n`;
    }
    return {
      headers: this.#enc.encode(text + "\r\n"),
      data: typeof p.data === "string" ? this.#enc.encode(p.data) : p.data,
    };
  }

  close(): void {
    this.#sub.unsubscribe();
  }
}

function _headerValue(v: string): string {
  if (/[\r\n]/.test(v)) {
    throw new TypeError(`expected a header value without CR or LF, found ${JSON.stringify(v)}`);
  }
  return v;
}

/** A message's bytes as the client sends them. */
interface _Frame {
  readonly headers: Uint8Array;
  readonly data: Uint8Array;
}

const _SEQ_KEY = new TextEncoder().encode('"seq":');
const _QUOTE = 0x22, _LOWER_E = 0x65, _ZERO = 0x30, _NINE = 0x39;

/**
 * The stream sequence of a plain acknowledgement (`{"stream":..,"seq":N[,"duplicate":true]}`),
 * read from its bytes, or −1 for anything else (an error, or an unexpected shape), which is then
 * parsed in full. One per score record: a decode and a regex each were a visible share of it.
 */
function _plainAckSeq(b: Uint8Array): number {
  let at = -1;
  for (let i = 0; i + _SEQ_KEY.length < b.length; i++) {
    // `"e` starts `"error"`: leave errors to the full parse.
    if (b[i] === _QUOTE && b[i + 1] === _LOWER_E) return -1;
    if (at < 0 && b[i] === _QUOTE) {
      let k = 1;
      while (k < _SEQ_KEY.length && b[i + k] === _SEQ_KEY[k]) k++;
      if (k === _SEQ_KEY.length) at = i + k;
    }
  }
  if (at < 0 || at >= b.length || b[at] < _ZERO || b[at] > _NINE) return -1;
  let seq = 0;
  while (at < b.length && b[at] >= _ZERO && b[at] <= _NINE) seq = seq * 10 + (b[at++] - _ZERO);
  return Number.isSafeInteger(seq) ? seq : -1;
}

/** A publish acknowledgement: `{"stream","seq"[,"duplicate"]}`, or an error (parsed with zod). */
function _readAck(text: string): PromiseSettledResult<number> {
  const ack = readPubAck(text);
  if (ack.ok) return { status: "fulfilled", value: ack.seq };
  return {
    status: "rejected",
    reason: new Error(`expected a publish acknowledgement, found ${text.slice(0, 200)}`),
  };
}
