/**
 * JetStream implementations of the loop's I/O: a pull-consumer {@link MessageSource}, a publishing
 * {@link OutputSink} and a KV {@link CheckpointStore}.
 *
 * @module
 */
import {
  type ConsumeCallback,
  type Consumer,
  type ConsumerMessages,
  type FetchOptions,
  JetStreamApiError,
  type JetStreamClient,
  type JsMsg,
} from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import {
  createInbox,
  headers,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from "@nats-io/nats-core";
import { Checkpoint, DLQ_HEADERS, type ParamsMessage, PubAck } from "../../schemas/messages.ts";
import { encodeKvKey } from "./kv_key.ts";
import type {
  CheckpointStore,
  DeadLetterOut,
  InputMessage,
  MessageSource,
  OutputSink,
  RecordOut,
  ScoreOut,
} from "../live/loop.ts";

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A pull request still open this long past its expiry no longer holds its lane up. */
const _EXPIRY_MARGIN_MS = 250;

/** Settings of {@link JetStreamSource}. */
export interface PullSettings {
  /** Messages per pull request; at least the batch size. */
  readonly maxMessages: number;
  /** Pull request expiry (≥ 1000 ms); bounds how long `close()` waits. */
  readonly expiresMs: number;
  /**
   * Re-creates the consumer from its ack floor and returns it (see `resetConsumer`); called when
   * deliveries were lost in transit. Without it a gap is only logged.
   */
  readonly reset?: () => Promise<Consumer>;
  readonly log: (line: string) => void;
}

/**
 * Pulls with two overlapping `fetch` requests, half an expiry apart, each handing its messages
 * over in its subscription callback, in arrival order: while one ends (filled or expired) the other
 * is open, so delivery never pauses between requests. With one request at a time, each expiry was
 * a gap, and an expiry whose notice never came (nats-server 2.9 sometimes sends none) held
 * delivery up for the client's two missed heartbeats, a full second; a lane now makes its next
 * request shortly after the expiry whatever became of the last. `close()` lets every request end
 * before it resolves, so everything the server delivered is in the queue: nothing is left
 * delivered but unprocessed.
 *
 * Deliveries must arrive without holes: the loop learns a message only if its sequence is above
 * its key's last applied one, so a message lost in transit (connection dropped while the server
 * was delivering) followed by a later one of the same key would never be learned. The consumer's
 * delivery sequence is consecutive over everything it sends us (redeliveries included), so a jump
 * means a loss: later messages are dropped unprocessed, both requests are stopped and the
 * consumer is re-created from its ack floor, which redelivers the lost ones, in stream order,
 * before anything newer.
 */
export class JetStreamSource implements MessageSource {
  /** The consumer acks cumulatively (`AckPolicy.All`, see `resetConsumer`). */
  readonly cumulativeAck = true;
  #consumer: Consumer;
  #lastDelivery = 0;
  /** Bumped by a delivery hole: requests of an older generation hand nothing over. */
  #generation = 0;
  #needsReset = false;
  #resetting: Promise<void> | undefined;
  /** Fetch requests in progress (stopped together when a hole is found). */
  readonly #active = new Set<ConsumerMessages>();
  /** Fetch calls not finished (made, or open); the reset waits for none. */
  #fetching = 0;
  #quiet: (() => void)[] = [];
  /** Deliveries lost in transit and consumers re-created because of it. */
  resets = 0;
  readonly #s: PullSettings;
  #queue: (InputMessage | undefined)[] = [];
  #head = 0;
  #wake: (() => void) | undefined;
  #drained: (() => void)[] = [];
  #closing = false;
  #done = false;
  readonly #loop: Promise<void>;

  constructor(consumer: Consumer, settings: PullSettings) {
    this.#consumer = consumer;
    this.#s = settings;
    // The second lane starts half an expiry later, so the two requests never expire together.
    const staggered = delay(settings.expiresMs / 2).then(() => this.#lane());
    this.#loop = Promise.all([this.#lane(), staggered]).then(() => {}).finally(() => {
      this.#done = true;
      this.#wake?.();
    });
  }

  get #size(): number {
    return this.#queue.length - this.#head;
  }

  /** One of the two request loops: a fetch, wait for its end, repeat. */
  async #lane(): Promise<void> {
    let failures = 0;
    while (!this.#closing) {
      if (this.#size >= this.#s.maxMessages) {
        await new Promise<void>((r) => this.#drained.push(r));
        continue;
      }
      try {
        if (this.#needsReset) {
          await this.#reset();
          continue;
        }
        await this.#fetchOnce();
        failures = 0;
      } catch (e) {
        if (this.#closing) break;
        failures++;
        if (failures === 1 || failures % 20 === 0) {
          this.#s.log(`pull failed (retrying): ${e instanceof Error ? e.message : e}`);
        }
        await delay(Math.min(2000, 100 * failures));
      }
    }
  }

  /**
   * One pull request, until it is filled, expires, fails or is stopped — or until it is overdue:
   * then the lane makes the next request and this one is left to end on its own.
   */
  async #fetchOnce(): Promise<void> {
    const generation = this.#generation;
    this.#fetching++;
    let it: ConsumerMessages;
    try {
      // `callback` is typed for consume() only, but fetch() shares its implementation
      // (@nats-io/jetstream 3.4, pinned): messages come synchronously from the subscription,
      // in arrival order across all requests, which async iterators would not keep.
      const opts: FetchOptions & ConsumeCallback = {
        max_messages: this.#s.maxMessages,
        expires: this.#s.expiresMs,
        callback: (m: JsMsg) => this.#deliver(m, generation),
      };
      it = await this.#consumer.fetch(opts);
    } catch (e) {
      this.#fetched();
      throw e;
    }
    // A hole found while this request was being made: it belongs to the consumer being
    // replaced, and nothing it gets may be handed over.
    if (generation !== this.#generation) it.stop();
    else this.#active.add(it);
    const closed = it.closed().finally(() => {
      this.#active.delete(it);
      this.#fetched();
    });
    // The server ends a request at its expiry with a 408 notice, but nats-server 2.9 sometimes
    // drops expired requests without one; the client then ends it only after two missed
    // heartbeats (a full second at the shortest), and until then this lane would make no new
    // request. Past its expiry the lane goes on; the old request stays subscribed (a delivery
    // the server still makes to it is handed over, so stopping it cannot open a hole) and ends
    // by itself.
    let overdue: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"overdue">((r) => {
      overdue = setTimeout(() => r("overdue"), this.#s.expiresMs + _EXPIRY_MARGIN_MS);
    });
    const first = await Promise.race([closed, late]);
    clearTimeout(overdue);
    if (first instanceof Error && generation === this.#generation) throw first;
  }

  /** A fetch call or request finished; a reset waiting for quiet may go. */
  #fetched(): void {
    if (--this.#fetching === 0) { for (const w of this.#quiet.splice(0)) w(); }
  }

  /** Resolves once no fetch call or request is open here. */
  async #whenQuiet(): Promise<void> {
    while (this.#fetching > 0) await new Promise<void>((r) => this.#quiet.push(r));
  }

  /** A delivered message, in arrival order; a hole stops every request (see {@link #reset}). */
  #deliver(m: JsMsg, generation: number): void {
    if (generation !== this.#generation) return;
    const ds = m.info.deliverySequence;
    if (ds !== this.#lastDelivery + 1) {
      this.#s.log(
        `delivery ${this.#lastDelivery + 1} lost in transit (got ${ds}, stream sequence ` +
          `${m.seq})` + (this.#s.reset ? "; re-creating the consumer from its ack floor" : ""),
      );
      if (this.#s.reset !== undefined) {
        this.#needsReset = true;
        this.#generation++;
        for (const it of this.#active) it.stop();
        return;
      }
    }
    this.#lastDelivery = ds;
    this.#push(wrap(m));
  }

  /**
   * Re-creates the consumer once for both lanes, when no request is open here any more: every
   * request was sent before the old consumer's deletion and dies with it, so none can take
   * deliveries of the new one (they would be dropped, and lost until the ack wait).
   */
  #reset(): Promise<void> {
    const reset = this.#s.reset;
    if (reset === undefined) return Promise.resolve();
    this.#resetting ??= (async () => {
      await this.#whenQuiet();
      for (let attempt = 1; !this.#closing; attempt++) {
        try {
          this.#consumer = await reset();
          this.#lastDelivery = 0;
          this.#needsReset = false;
          this.resets++;
          return;
        } catch (e) {
          this.#s.log(`re-creating the consumer failed (retrying): ${e}`);
          await delay(Math.min(2000, 100 * attempt));
        }
      }
    })().finally(() => (this.#resetting = undefined));
    return this.#resetting;
  }

  #push(m: InputMessage): void {
    this.#queue.push(m);
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  #shift(): InputMessage {
    const m = this.#queue[this.#head]!;
    // Drop the reference at once: consumed messages kept until the next compaction lived long
    // enough to be promoted to the old generation, lengthening every garbage collection.
    this.#queue[this.#head++] = undefined;
    if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    if (this.#size < this.#s.maxMessages / 2 && this.#drained.length > 0) {
      for (const d of this.#drained.splice(0)) d();
    }
    return m;
  }

  async next(timeoutMs: number): Promise<InputMessage | undefined | null> {
    if (this.#size > 0) return this.#shift();
    if (this.#done) return null;
    if (timeoutMs <= 0) return undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
      timer = setTimeout(resolve, timeoutMs);
    });
    clearTimeout(timer);
    this.#wake = undefined;
    if (this.#size > 0) return this.#shift();
    return this.#done ? null : undefined;
  }

  interrupt(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  async close(): Promise<void> {
    this.#closing = true;
    for (const d of this.#drained.splice(0)) d();
    await this.#loop;
    // Overdue requests the lanes left behind end on their own (missed heartbeats) before this
    // resolves, so that what they still deliver is in the queue too.
    await this.#whenQuiet();
  }
}

function wrap(m: JsMsg): InputMessage {
  const ct = m.headers?.get("Content-Type");
  return {
    subject: m.subject,
    data: m.data,
    contentType: ct ? ct : undefined,
    seq: m.seq,
    ack: () => m.ack(),
  };
}

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
          const headers = { encode: () => f.headers } as unknown as MsgHdrs;
          this.#nc.publish(p.subject, f.data, { reply, headers });
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
   * their ids), which spares two encodes per message. The client only calls `encode()` on the
   * headers it is given (`@nats-io/nats-core` 3.4, pinned) and copies views into its outbound
   * buffer. Undefined when some value is not ASCII or holds CR/LF: then message by message.
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

const _ACK_SEQ = /"seq":(\d+)/;
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
  if (!text.includes('"error"')) {
    const seq = _ACK_SEQ.exec(text);
    if (seq !== null) return { status: "fulfilled", value: Number(seq[1]) };
  }
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Reported below with the text.
  }
  const ack = PubAck.safeParse(json);
  if (ack.success && ack.data.error === undefined && ack.data.seq !== undefined) {
    return { status: "fulfilled", value: ack.data.seq };
  }
  return {
    status: "rejected",
    reason: new Error(`expected a publish acknowledgement, found ${text.slice(0, 200)}`),
  };
}

/**
 * Publishes everything concurrently and resolves once the server acknowledged every message,
 * retrying failures (same `Nats-Msg-Id`, so a retry of a message that did land is dropped as a
 * duplicate). Transient errors never escape; `isAborted` ends the retries.
 */
export async function publishAllAcked(
  js: JetStreamClient | AckedPublisher,
  pubs: readonly Publication[],
  log: (line: string) => void,
  isAborted: () => boolean = () => false,
  window = 4096,
): Promise<void> {
  let pending = pubs;
  for (let attempt = 1; pending.length > 0; attempt++) {
    const failed: Publication[] = [];
    let lastError: unknown;
    for (let i = 0; i < pending.length; i += window) {
      const chunk = pending.slice(i, i + window);
      const results = js instanceof AckedPublisher
        ? await js.publishAll(chunk, 5_000)
        : await Promise.allSettled(chunk.map((p) => {
          let h;
          if (p.headers !== undefined) {
            h = headers();
            for (const [k, v] of Object.entries(p.headers)) h.set(k, v);
          }
          return js.publish(p.subject, p.data, { msgID: p.msgID, timeout: 5_000, headers: h });
        }));
      results.forEach((r, j) => {
        if (r.status === "rejected") {
          failed.push(chunk[j]);
          lastError = r.reason;
        }
      });
    }
    pending = failed;
    if (pending.length === 0) return;
    if (isAborted()) {
      throw new Error(`gave up publishing ${pending.length} messages`, { cause: lastError });
    }
    if (attempt === 1 || attempt % 10 === 0) {
      log(`${pending.length} publications not acknowledged (retrying): ${lastError}`);
    }
    await delay(Math.min(2000, 100 * attempt));
  }
}

function headerValue(s: string): string {
  const flat = s.replace(/[\r\n]+/g, " ");
  return flat.length > 500 ? `${flat.slice(0, 497)}...` : flat;
}

/** Publishes results of the loop on NATS. */
export class NatsSink implements OutputSink {
  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly paramsKv: KV,
    private readonly prefix: string,
    private readonly log: (line: string) => void,
  ) {}

  // Created on first use; its reply subscription ends with the connection.
  #acked: AckedPublisher | undefined;
  get #pub(): AckedPublisher {
    return (this.#acked ??= new AckedPublisher(this.nc));
  }

  async publishScores(items: readonly ScoreOut[]): Promise<void> {
    await publishAllAcked(
      this.#pub,
      items.map((it) => ({
        subject: `${this.prefix}.scores.${it.key}`,
        data: JSON.stringify("record" in it ? it.record : it.records),
        msgID: it.msgId,
      })),
      this.log,
    );
  }

  async publishDeadLetters(items: readonly DeadLetterOut[]): Promise<void> {
    // The headers must fit too: a message right at the server's limit is cut (and says so).
    const limit = (this.nc.info?.max_payload ?? 1_048_576) - 4096;
    await publishAllAcked(
      this.#pub,
      items.map((it) => ({
        subject: `${this.prefix}.dlq.${it.key}`,
        data: it.data.length > limit ? it.data.subarray(0, limit) : it.data,
        msgID: it.msgId,
        headers: {
          ...(it.data.length > limit ? { [DLQ_HEADERS.truncated]: String(it.data.length) } : {}),
          [DLQ_HEADERS.reason]: it.reason,
          [DLQ_HEADERS.detail]: headerValue(it.detail),
          [DLQ_HEADERS.subject]: it.subject,
          [DLQ_HEADERS.streamSeq]: String(it.streamSeq),
          ...(it.contentType !== undefined ? { "Content-Type": it.contentType } : {}),
        },
      })),
      this.log,
    );
  }

  publishAnomalies(items: readonly RecordOut[]): void {
    for (const it of items) {
      this.nc.publish(`${this.prefix}.anomalies.${it.key}`, JSON.stringify(it.record));
    }
  }

  async publishParams(items: readonly ParamsMessage[]): Promise<void> {
    await Promise.all(items.map(async (p) => {
      const json = JSON.stringify(p);
      this.nc.publish(`${this.prefix}.params.${p.key}`, json);
      await this.paramsKv.put(encodeKvKey(p.key), json);
    }));
  }
}

/** Another writer changed a checkpoint under us: two workers on one consumer, or a stale state. */
export class CheckpointConflictError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CheckpointConflictError";
  }
}

function isWrongLastSequence(e: unknown): boolean {
  return (e instanceof JetStreamApiError && (e.code === 10071 || e.code === 10164)) ||
    (e instanceof Error && /wrong last sequence/i.test(e.message));
}

/** Checkpoints in a KV bucket, one entry per (encoded) model key, revision-checked. */
export class KvCheckpointStore implements CheckpointStore {
  readonly #revisions = new Map<string, number>();

  constructor(private readonly kv: KV, private readonly log: (line: string) => void) {}

  async loadAll(): Promise<Checkpoint[]> {
    const out: Checkpoint[] = [];
    const keys: string[] = [];
    for await (const k of await this.kv.keys()) keys.push(k);
    for (const k of keys) {
      const e = await this.kv.get(k);
      if (e === null || e.operation !== "PUT") continue;
      const parsed = Checkpoint.safeParse(e.json());
      if (!parsed.success) {
        throw new TypeError(
          `expected a checkpoint in KV key '${k}', found an invalid one: ${
            parsed.error.issues[0]?.message
          }`,
        );
      }
      this.#revisions.set(parsed.data.state.key, e.revision);
      out.push(parsed.data);
    }
    return out;
  }

  async save(items: readonly Checkpoint[]): Promise<void> {
    await Promise.all(items.map((cp) => this.#saveOne(cp)));
  }

  async #saveOne(cp: Checkpoint): Promise<void> {
    const key = cp.state.key;
    const k = encodeKvKey(key);
    const data = JSON.stringify(cp);
    for (let attempt = 1;; attempt++) {
      const rev = this.#revisions.get(key);
      try {
        const next = rev === undefined
          ? await this.kv.create(k, data)
          : await this.kv.update(k, data, rev);
        this.#revisions.set(key, next);
        return;
      } catch (e) {
        if (isWrongLastSequence(e)) {
          // Our own earlier attempt may have landed with its reply lost.
          const cur = await this.kv.get(k).catch(() => undefined);
          if (cur === undefined) continue;
          if (cur !== null && cur.string() === data) {
            this.#revisions.set(key, cur.revision);
            return;
          }
          throw new CheckpointConflictError(
            `expected checkpoint '${key}' at revision ${rev ?? "none"}, found revision ${
              cur?.revision ?? "none"
            } written by someone else (is another worker using this consumer?)`,
            { cause: e },
          );
        }
        if (attempt === 1 || attempt % 10 === 0) {
          this.log(`checkpoint '${key}' not written (retrying): ${e}`);
        }
        await delay(Math.min(2000, 100 * attempt));
      }
    }
  }
}
