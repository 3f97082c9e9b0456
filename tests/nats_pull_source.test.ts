/**
 * The JetStream pull source (`src/nats/pull_source.ts`) on fake consumers: holes in the delivery
 * sequence and requests left open past their expiry.
 */
import assert from "node:assert/strict";
import type { Consumer, JsMsg } from "@nats-io/jetstream";
import { JetStreamSource } from "../src/nats/pull_source.ts";

Deno.test("pull source: a hole in the delivery sequence re-creates the consumer before anything newer", async () => {
  const fakeMsg = (deliverySequence: number, seq: number): JsMsg =>
    ({
      subject: "telemetry.obs.a",
      seq,
      data: new TextEncoder().encode("[1,2]"),
      headers: undefined,
      info: { deliverySequence },
      ack: () => {},
    }) as unknown as JsMsg;
  // fetch() as the source uses it: messages handed to opts.callback, then closed() resolves
  // (stop() ends it early, as the source does on a hole).
  const consumerOf = (fetches: JsMsg[][]): Consumer =>
    ({
      fetch: (opts: { callback: (m: JsMsg) => void }) => {
        const batch = fetches.shift() ?? [];
        let stopped = false;
        let end = () => {};
        const closed = new Promise<void>((r) => (end = r));
        setTimeout(() => {
          for (const m of batch) if (!stopped) opts.callback(m);
          setTimeout(end, batch.length === 0 ? 5 : 0);
        }, 0);
        return Promise.resolve({
          closed: () => closed,
          stop: () => {
            stopped = true;
            end();
          },
        });
      },
    }) as unknown as Consumer;
  // Old consumer: deliveries 1, 2, then 5 (3 and 4 lost in transit), then 6.
  const old = consumerOf([[fakeMsg(1, 1), fakeMsg(2, 2), fakeMsg(5, 5), fakeMsg(6, 6)]]);
  // Re-created from the ack floor (0): everything again, in order.
  const fresh = consumerOf([[1, 2, 3, 4, 5, 6].map((s) => fakeMsg(s, s))]);
  let resets = 0;
  const source = new JetStreamSource(old, {
    maxMessages: 100,
    expiresMs: 1000,
    reset: () => {
      resets++;
      return Promise.resolve(fresh);
    },
    log: () => {},
  });
  const seqs: number[] = [];
  while (seqs.length < 8) {
    const m = await source.next(100);
    if (m) seqs.push(m.seq);
  }
  await source.close();
  assert.equal(resets, 1);
  assert.deepEqual(seqs, [1, 2, 1, 2, 3, 4, 5, 6]);
});

Deno.test("pull source: a request left open past its expiry does not hold delivery up", async () => {
  const fakeMsg = (seq: number): JsMsg =>
    ({
      subject: "telemetry.obs.a",
      seq,
      data: new TextEncoder().encode("[1,2]"),
      headers: undefined,
      info: { deliverySequence: seq },
      ack: () => {},
    }) as unknown as JsMsg;
  const events: string[] = [];
  let calls = 0;
  // The first request gets deliveries 1-2, then nothing, and ends only by itself after 5 s
  // (no expiry notice: the client's missed heartbeats), with one more delivery (7) just before;
  // every later request gets the next two and ends.
  const consumer = {
    fetch: (opts: { callback: (m: JsMsg) => void }) => {
      const n = calls++;
      let end = () => {};
      const closed = new Promise<void>((r) => (end = r));
      const batch = n === 0 ? [1, 2] : n <= 2 ? [2 * n + 1, 2 * n + 2] : [];
      setTimeout(() => {
        for (const s of batch) opts.callback(fakeMsg(s));
        if (n > 0) setTimeout(end, batch.length === 0 ? 5 : 0);
      }, 0);
      if (n === 0) {
        setTimeout(() => {
          opts.callback(fakeMsg(7));
          events.push("first ended by itself");
          end();
        }, 5_000);
      }
      const stop = () => {
        events.push(`request ${n} stopped`);
        end();
      };
      return Promise.resolve({ closed: () => closed, stop });
    },
  } as unknown as Consumer;
  const source = new JetStreamSource(consumer, { maxMessages: 100, expiresMs: 200, log: () => {} });
  const seqs: number[] = [];
  while (seqs.length < 6) {
    const m = await source.next(1000);
    if (m) seqs.push(m.seq);
  }
  events.push("six delivered");
  await source.close();
  // close() waited for the first request, whose late delivery is still in the queue.
  const rest: number[] = [];
  for (let m = await source.next(0); m; m = await source.next(0)) rest.push(m.seq);
  assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(rest, [7]);
  // Deliveries 3-6 came through other requests while the first was open, and the client never
  // stopped a request (a stopped request's late deliveries would be lost: a hole).
  assert.deepEqual(events, ["six delivered", "first ended by itself"]);
});
