/**
 * Publishing until acknowledged: {@link publishAllAcked} retries what the server did not
 * acknowledge, through an {@link AckedPublisher} or a plain JetStream client.
 *
 * @module
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers } from "@nats-io/nats-core";
import { AckedPublisher, type Publication } from "./acked_publisher.ts";

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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
