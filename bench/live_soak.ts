/**
 * The live soak (`--soak`): the worker at half its sustained rate for minutes, with the RSS of
 * this process (which hosts the worker) and of the nats-server sampled along the way. Its own file
 * because it is a run of its own, built on the live section's measurements.
 *
 * @module
 */
import type { LiveSoakResult } from "./schema.ts";
import { latencyAt, liveBenchSizes, type LiveVariant, sustainedRate } from "./live_bench.ts";

/**
 * Live soak: the worker (cpu, `--engine-thread auto`) under paced one-observation JSON messages
 * at half its sustained rate for `minutes`; RSS of this process (which hosts the worker) and of the
 * nats-server sampled every 2 s, and the publish → score latency over the last nine tenths.
 */
export async function soakLive(
  minutes: number,
  log: (line: string) => void,
): Promise<LiveSoakResult> {
  const o = liveBenchSizes(false);
  const json: LiveVariant = { format: "json", scoreMessages: "row" };
  const { obsPerS } = await sustainedRate(json, "model", o, log);
  const rate = obsPerS / 2;
  const totalMs = minutes * 60_000;
  log(`soak: live worker ${minutes} min at ${Math.round(rate)} obs/s (half its sustained rate)`);
  const t0 = performance.now();
  const samples: { at: number; rss: number; server: number }[] = [];
  let observations = 0;
  const lat = await latencyAt(
    json,
    rate,
    { ...o, latencyWarmMs: totalMs / 10, latencyMs: totalMs - totalMs / 10 },
    log,
    (phase, worker) => {
      if (phase === "end") observations = worker.metrics.observations;
    },
    {
      everyMs: 2000,
      fn: (_worker, serverPid) => {
        samples.push({
          at: performance.now() - t0,
          rss: Deno.memoryUsage().rss / 2 ** 20,
          server: _rssMb(serverPid),
        });
      },
    },
  );
  // RSS saws up and down by tens of MB between collections: troughs compare like with like.
  const window = (from: number, to: number) =>
    samples.filter((x) => x.at >= from * totalMs && x.at < to * totalMs);
  const low = (xs: { rss: number }[]) => Math.min(...xs.map((x) => x.rss));
  const early = window(0.1, 0.2), late = window(0.9, 2);
  if (early.length === 0 || late.length === 0) {
    throw new Error(
      `soak: expected RSS samples early and late in the run, found ${samples.length}`,
    );
  }
  return {
    minutes,
    obs_per_s: rate,
    obs: observations,
    rss_start_mb: low(early),
    rss_end_mb: low(late),
    rss_max_mb: Math.max(...window(0.1, 2).map((x) => x.rss)),
    server_rss_start_mb: early[0].server,
    server_rss_end_mb: late[late.length - 1].server,
    p50_ms: lat.p50_ms,
    p99_ms: lat.p99_ms,
  };
}

/** Resident set of a process in MB (0 when unknown or gone). */
function _rssMb(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m === null ? 0 : Number(m[1]) / 1024;
  } catch {
    return 0;
  }
}
