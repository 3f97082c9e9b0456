/**
 * A batch's finalisation for the {@link LiveLoop} of `loop.ts`: publishing its score records,
 * dead letters and alarms, and committing a barrier's group (checkpoints, then acks and metrics).
 * Separate from the loop's sequencing so each half reads on its own; the ordering guarantees (the
 * exactly-once argument of `loop.ts`) stay with the loop, which calls these in batch order.
 *
 * @module
 */
import type { ScoringEngine } from "../engine/engine.ts";
import {
  barrierAlarmStates,
  barrierCheckpoints,
  type EngineResult,
  type InFlight,
  type Prepared,
  type Published,
} from "./in_flight.ts";
import type { LoopKeys } from "./loop_keys.ts";
import type { LoopSettings } from "./loop_settings.ts";
import type { AlarmOut, CheckpointStore, MessageSource, OutputSink } from "./ports.ts";
import { deadLetters, scoreOutputs } from "./records.ts";

/** What finalisation reaches: the loop's ports, its per-key state and settings. */
export interface FinalisePorts {
  readonly engine: ScoringEngine;
  readonly source: MessageSource;
  readonly sink: OutputSink;
  readonly store: CheckpointStore;
  readonly keys: LoopKeys;
  readonly s: LoopSettings;
}

/** Builds and publishes the batch's score records and dead letters; resolves once acked. */
export async function publishBatch(
  ports: FinalisePorts,
  p: Prepared,
  r: EngineResult,
): Promise<Published> {
  const { parts, refused, states } = r;
  const stream = ports.s.inputStream;
  const alarmOuts: AlarmOut[] = [];
  const { outs, anomalies, scored, newRows } = scoreOutputs(
    parts,
    stream,
    ports.s.scoreMessages,
    (scores) => ports.engine.release(scores),
    { bank: ports.keys, armedFrom: ports.s.alarmArmedFrom ?? 0, out: alarmOuts },
  );
  // A barrier's checkpoints hold the alarm states right after it (as the heads' states).
  const alarmStates = barrierAlarmStates(ports.keys, p.learned);
  const dead = deadLetters(p.items, refused, stream);
  await Promise.all([
    ports.sink.publishScores(outs),
    ports.sink.publishDeadLetters(dead),
    ports.sink.publishAlarms(alarmOuts),
  ]);
  if (anomalies.length > 0) ports.sink.publishAnomalies(anomalies);
  const msgs = p.items;
  return {
    acks: ports.source.cumulativeAck === true
      ? msgs.slice(-1).map((it) => it.msg)
      : msgs.map((it) => it.msg),
    states,
    alarmStates,
    deadReasons: dead.map((d) => d.reason),
    scored,
    newRows,
    outs: scored,
    anomalies: anomalies.length,
  };
}

/**
 * Commits `group`, the published batches not committed yet up to and including the barrier
 * `last` (its result already awaited): one checkpoint per key learned since the previous barrier,
 * then the input messages of all of them are acked and counted in the metrics.
 */
export async function commitGroup(
  ports: FinalisePorts,
  last: InFlight,
  group: readonly InFlight[],
): Promise<void> {
  const latest = barrierCheckpoints(last.p.learned, last.result!, new Date().toISOString());
  const m = ports.s.metrics;
  ports.s.fence?.();
  if (latest.length > 0) {
    await ports.store.save(latest);
    m.checkpointWrites += latest.length;
  }
  ports.s.fence?.();
  const now = performance.now();
  if (ports.source.cumulativeAck === true) {
    // One ack for the whole group: every earlier delivery is committed by now.
    const acks = group.map((b) => b.result?.acks ?? []).findLast((a) => a.length > 0);
    acks?.at(-1)?.ack();
  }
  for (const b of group) {
    b.committed = true;
    const r = b.result!;
    if (ports.source.cumulativeAck !== true) { for (const msg of r.acks) msg.ack(); }
    // Metrics count first-time observations only.
    m.observations += r.newRows;
    m.scoresPublished += r.outs;
    m.anomalies += r.anomalies;
    for (const reason of r.deadReasons) m.deadLetter(reason);
    if (b.messages > 0) {
      m.batches++;
      m.batchSize.observe(r.scored);
      m.batchLatency.observe((now - b.p.firstAt) / 1000);
    }
  }
}
