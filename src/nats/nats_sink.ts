/**
 * The NATS sink: the loop's {@link OutputSink} on NATS ({@link NatsSink}): scores and dead letters
 * published until acknowledged, alarm episodes likewise, anomalies on core NATS, parameters on core NATS and in KV.
 *
 * @module
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { DLQ_HEADERS, type ParamsMessage } from "../../schemas/messages.ts";
import type { AlarmOut, DeadLetterOut, OutputSink, RecordOut, ScoreOut } from "../live/ports.ts";
import { AckedPublisher } from "./acked_publisher.ts";
import { encodeKvKey } from "./kv_key.ts";
import { encodeEach, KvBatchWriter } from "./kv_writer.ts";
import { publishAllAcked } from "./publish_retry.ts";

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

  async publishAlarms(items: readonly AlarmOut[]): Promise<void> {
    if (items.length === 0) return;
    await publishAllAcked(
      this.#pub,
      items.map((it) => ({
        subject: `${this.prefix}.alarms.${it.key}`,
        data: JSON.stringify(it.episode),
        msgID: it.msgId,
      })),
      this.log,
    );
  }

  // Created on first use, as the acked publisher.
  #kvWriter: KvBatchWriter | undefined;
  readonly #enc = new TextEncoder();

  /**
   * Each key's parameters on core NATS and in the parameter bucket (`kv.put`'s message; the
   * writes' acknowledgements batched: with many keys a round has a write per key learned);
   * rejects when any write is not confirmed (the caller publishes the round's keys again).
   */
  async publishParams(items: readonly ParamsMessage[]): Promise<void> {
    const bytes = encodeEach(this.#enc, items.map((p) => JSON.stringify(p)));
    const writes = items.map((p, i) => {
      this.nc.publish(`${this.prefix}.params.${p.key}`, bytes[i]);
      return { key: encodeKvKey(p.key), data: bytes[i] };
    });
    this.#kvWriter ??= new KvBatchWriter(this.nc);
    const results = await this.#kvWriter.writeAll(this.paramsKv, writes, 5_000);
    for (const r of results) if (!r.ok) throw r.error;
  }
}
