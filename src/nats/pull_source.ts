/**
 * The JetStream pull source: a {@link MessageSource} over a pull consumer, with two overlapping
 * fetch requests and delivery-hole detection ({@link JetStreamSource}, {@link PullSettings}).
 *
 * @module
 */
import { F32_FEATURES_HEADER } from "../../schemas/messages.ts";
import type { Consumer, ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import type { InputMessage, MessageSource } from "../live/ports.ts";
import { fetchWithCallback } from "./client_internals.ts";

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
        if (this.#s.reset !== undefined && _consumerDeleted(e) && !this.#needsReset) {
          // Someone deleted the consumer (a worker that lost this partition's lease while it
          // was re-creating it): re-create it from its ack floor, like after a hole.
          this.#s.log("the consumer was deleted under us; re-creating it from its ack floor");
          this.#needsReset = true;
          this.#generation++;
          for (const it of this.#active) it.stop();
          continue;
        }
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
      // Messages come synchronously from the subscription, in arrival order across all
      // requests, which async iterators would not keep (see fetchWithCallback).
      it = await fetchWithCallback(
        this.#consumer,
        { max_messages: this.#s.maxMessages, expires: this.#s.expiresMs },
        (m: JsMsg) => this.#deliver(m, generation),
      );
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

/** The pull ended because the consumer was deleted (status 409 "consumer deleted"). */
function _consumerDeleted(e: unknown): boolean {
  return e instanceof Error && /consumer deleted/i.test(e.message);
}

function wrap(m: JsMsg): InputMessage {
  const ct = m.headers?.get("Content-Type");
  return {
    subject: m.subject,
    data: m.data,
    contentType: ct ? ct : undefined,
    features: m.headers?.get(F32_FEATURES_HEADER) || undefined,
    seq: m.seq,
    ack: () => m.ack(),
  };
}
