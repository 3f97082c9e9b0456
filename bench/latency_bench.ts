/**
 * The `latency` section: publish → score of one-observation JSON messages at a fixed moderate
 * rate through the live section's worker, with the CPU time and run-queue wait of the worker and
 * the nats-server over the samples' window (a p99 over the floor on the shared box came with the
 * box's load, not a stalled worker).
 *
 * @module
 */
import type { LatencyRow } from "./schema.ts";
import { latencyAt, type LiveBenchOptions, type LiveVariant } from "./live_bench.ts";

/**
 * The latency floor's rate: JSON, one observation per message, one worker. Fixed rather than half
 * the measured throughput, so that the figure does not move with the throughput (half of a
 * saturating rate on the shared 2-core box measured the saturation as much as the worker).
 */
export const LATENCY_RATE_OBS_PER_S = 5000;

/** The `latency` section: publish → score of JSON observations at a fixed moderate rate. */
export async function benchLatency(
  o: LiveBenchOptions,
  rate: number,
  log: (line: string) => void,
): Promise<LatencyRow> {
  const json: LiveVariant = { format: "json", scoreMessages: "row" };
  log(`latency: json, one worker, ${rate} obs/s …`);
  // CPU and run-queue wait over the samples' window: on the shared box a p99 over the floor came
  // with seconds of run-queue wait (other processes' load), not with a stalled worker.
  let from: { at: number; self: Sched; server: Sched } | undefined;
  let sched: LatencyRow["sched"] = null;
  const lat = await latencyAt(json, rate, o, log, (phase, _worker, serverPid) => {
    const self = _sched("self"), server = _sched(serverPid);
    if (phase === "warm") {
      from = { at: performance.now(), self, server };
      return;
    }
    if (from === undefined) return;
    const d = (a: Sched, b: Sched, k: keyof Sched) => Math.round(a[k] - b[k]);
    sched = {
      window_ms: Math.round(performance.now() - from.at),
      load_avg_1m: _loadAvg(),
      worker_cpu_ms: d(self, from.self, "cpuMs"),
      worker_wait_ms: d(self, from.self, "waitMs"),
      server_cpu_ms: d(server, from.server, "cpuMs"),
      server_wait_ms: d(server, from.server, "waitMs"),
    };
  });
  log(`latency: p50 ${lat.p50_ms.toFixed(2)} ms, p99 ${lat.p99_ms.toFixed(2)} ms`);
  return {
    sched,
    format: "json",
    workers: 1,
    rate_obs_per_s: rate,
    published_obs_per_s: lat.published_obs_per_s,
    samples: lat.samples,
    p50_ms: lat.p50_ms,
    p90_ms: lat.p90_ms,
    p99_ms: lat.p99_ms,
    p999_ms: lat.p999_ms,
    max_ms: lat.max_ms,
  };
}

interface Sched {
  readonly cpuMs: number;
  readonly waitMs: number;
}

/**
 * CPU time and run-queue wait of every thread of a process, summed (`/proc/PID/task/*\/schedstat`:
 * ns on cpu, ns runnable but waiting). Zeros where unknown (not Linux, process gone).
 */
function _sched(pid: number | "self" | undefined): Sched {
  let cpu = 0, wait = 0;
  if (pid === undefined) return { cpuMs: 0, waitMs: 0 };
  try {
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        const [c, w] = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/schedstat`).split(" ");
        cpu += Number(c);
        wait += Number(w);
      } catch {
        // The thread ended meanwhile.
      }
    }
  } catch {
    // No /proc.
  }
  return { cpuMs: cpu / 1e6, waitMs: wait / 1e6 };
}

/** The 1-minute load average, or null where unknown. */
function _loadAvg(): number | null {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return null;
  }
}
