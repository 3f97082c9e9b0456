/**
 * Counters, gauges and histograms of the live worker, rendered as Prometheus text.
 *
 * @module
 */

/** A cumulative histogram with fixed upper bounds. */
export class Histogram {
  readonly counts: number[];
  count = 0;
  sum = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array(bounds.length).fill(0);
  }
  observe(v: number): void {
    this.count++;
    this.sum += v;
    for (let i = 0; i < this.bounds.length; i++) if (v <= this.bounds[i]) this.counts[i]++;
  }
}

/** Everything `/metrics` reports. */
export class LiveMetrics {
  observations = 0;
  scoresPublished = 0;
  anomalies = 0;
  readonly deadLetters = new Map<string, number>();
  batches = 0;
  readonly batchSize = new Histogram([1, 8, 32, 64, 128, 256, 512, 1024, 4096]);
  /** Seconds from a batch's first message to its acks. */
  readonly batchLatency = new Histogram([
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
  ]);
  consumerPending = 0;
  consumerAckPending = 0;
  backend = "unknown";
  connected = false;
  ready = false;
  reconnects = 0;
  checkpointWrites = 0;
  paramsPublished = 0;
  /** Idle keys dropped from memory, and evicted keys reloaded from their checkpoint. */
  keysEvicted = 0;
  keysReloaded = 0;

  deadLetter(reason: string): void {
    this.deadLetters.set(reason, (this.deadLetters.get(reason) ?? 0) + 1);
  }

  get deadLettersTotal(): number {
    let n = 0;
    for (const v of this.deadLetters.values()) n += v;
    return n;
  }

  /** Prometheus text exposition format 0.0.4. */
  render(): string {
    const out: string[] = [];
    const counter = (name: string, help: string, v: number) =>
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${v}`);
    const gauge = (name: string, help: string, v: number) =>
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${v}`);
    counter("mvn_observations_total", "Observations scored.", this.observations);
    counter(
      "mvn_scores_published_total",
      "Score records acknowledged by JetStream.",
      this.scoresPublished,
    );
    counter("mvn_anomalies_total", "Observations flagged as anomalies.", this.anomalies);
    out.push("# HELP mvn_dead_letters_total Input messages sent to the dead-letter stream.");
    out.push("# TYPE mvn_dead_letters_total counter");
    if (this.deadLetters.size === 0) out.push("mvn_dead_letters_total 0");
    for (const [reason, v] of this.deadLetters) {
      out.push(`mvn_dead_letters_total{reason="${reason}"} ${v}`);
    }
    counter("mvn_batches_total", "Mini-batches processed.", this.batches);
    counter("mvn_checkpoint_writes_total", "Checkpoint KV writes.", this.checkpointWrites);
    counter("mvn_params_published_total", "Parameter snapshots published.", this.paramsPublished);
    counter("mvn_keys_evicted_total", "Idle keys dropped from memory.", this.keysEvicted);
    counter(
      "mvn_keys_reloaded_total",
      "Evicted keys reloaded from their checkpoint.",
      this.keysReloaded,
    );
    counter("mvn_reconnects_total", "Reconnections to NATS.", this.reconnects);
    histogram(out, "mvn_batch_size", "Observations per mini-batch.", this.batchSize);
    histogram(
      out,
      "mvn_batch_latency_seconds",
      "Time from a batch's first message to its acknowledgement.",
      this.batchLatency,
    );
    gauge(
      "mvn_consumer_pending",
      "Messages not yet delivered to the worker.",
      this.consumerPending,
    );
    gauge(
      "mvn_consumer_ack_pending",
      "Messages delivered but not yet acked.",
      this.consumerAckPending,
    );
    gauge("mvn_connected", "1 while connected to NATS.", this.connected ? 1 : 0);
    out.push("# HELP mvn_backend_info Backend of the engine in use.");
    out.push("# TYPE mvn_backend_info gauge");
    out.push(`mvn_backend_info{backend="${this.backend}"} 1`);
    return out.join("\n") + "\n";
  }
}

function histogram(out: string[], name: string, help: string, h: Histogram): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
  h.bounds.forEach((b, i) => out.push(`${name}_bucket{le="${b}"} ${h.counts[i]}`));
  out.push(
    `${name}_bucket{le="+Inf"} ${h.count}`,
    `${name}_sum ${h.sum}`,
    `${name}_count ${h.count}`,
  );
}
