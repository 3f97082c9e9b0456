/**
 * The time from a worker's SIGKILL to its partitions being scored again (`failover` section of
 * `deno task bench`; standalone: `deno run -A bench/failover_bench.ts [--rate 500]
 * [--lease-ms 10000] [--workers 2] [--after-s 25]`). A local nats-server with the partition
 * mapping, N workers (child processes), a publisher at a fixed rate over 64 keys (each
 * observation carries its publish time in `t`); one worker is SIGKILLed after a warm-up, and the
 * score latency (arrival − `t`) of every observation published after the kill is recorded. The
 * worst of them is the failover time: the observations of the dead worker's partitions wait until
 * another worker takes the partitions over.
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { NatsServerProcess } from "../src/nats/server_process.ts";
import { partitionMapping } from "../src/nats/partitions.ts";
import { workerCommand } from "../src/nats/worker_command.ts";
import type { FailoverResult } from "./schema.ts";

/** Sizes of the failover measurement. */
export interface FailoverOptions {
  /** Observations per second, one per message. */
  readonly rate: number;
  readonly leaseMs: number;
  readonly workers: number;
  readonly partitions: number;
  /** Publishing before the kill: start-up, balancing, first fits. */
  readonly warmS: number;
  /** Publishing after the kill; must exceed the lease for a takeover to be seen. */
  readonly afterS: number;
}

/** Sizes of `deno task bench` (full) and `--quick`. */
export function failoverSizes(quick: boolean): FailoverOptions {
  return quick
    // The shortest lease the worker accepts is 1 s; 2 s leaves renewals (lease/5) some slack.
    ? { rate: 200, leaseMs: 2000, workers: 2, partitions: 16, warmS: 6, afterS: 6 }
    : { rate: 500, leaseMs: 10_000, workers: 2, partitions: 16, warmS: 10, afterS: 25 };
}

const KEYS = Array.from({ length: 64 }, (_, i) => `k${i}`);
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Bound on waiting for scores that should come in seconds (a hang, not a speed check). */
const READY_BOUND_MS = 180_000;

async function _until(ok: () => boolean, boundMs: number, what: string): Promise<void> {
  const end = Date.now() + boundMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`failover bench: expected ${what} within ${boundMs} ms`);
    await delay(50);
  }
}

/** Nearest-rank percentile; null for no values. */
function _q(xs: readonly number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}

/** Kills one of `o.workers` workers mid-stream and measures how long its partitions wait. */
export async function benchFailover(
  o: FailoverOptions,
  log: (line: string) => void,
): Promise<FailoverResult> {
  const dir = await Deno.makeTempDir({ prefix: "mvn-bench-failover-" });
  const server = await NatsServerProcess.start({
    storeDir: join(dir, "store"),
    workDir: join(dir, "run"),
    port: -1,
    readyTimeoutMs: 60_000,
    extraConfig: partitionMapping("telemetry", o.partitions),
  });
  const workers: Deno.ChildProcess[] = [];
  try {
    const nc = await connect({ servers: server.url });
    try {
      await (await jetstreamManager(nc)).streams.add({
        name: "TELEMETRY",
        subjects: ["telemetry.obs.>"],
      });
      for (let w = 0; w < o.workers; w++) {
        workers.push(
          workerCommand(
            server.url,
            [
              "--backend",
              "cpu",
              "--partitions",
              String(o.partitions),
              "--lease-ms",
              String(o.leaseMs),
            ],
            { stdin: "null", stdout: "null", stderr: "null" },
          ).spawn(),
        );
      }
      const js = jetstream(nc);
      let killAt = Infinity;
      const after: number[] = [];
      const before: number[] = [];
      nc.subscribe("telemetry.scores.>", {
        callback: (_e, m) => {
          const r = m.json<{ t: number }>();
          const lat = Date.now() - r.t;
          if (r.t >= killAt) after.push(lat);
          else before.push(lat);
        },
      });
      const t0 = Date.now();
      let i = 0;
      let publishedAfter = 0;
      let stop = false;
      const publishing = (async () => {
        while (!stop) {
          const due = Math.floor(((Date.now() - t0) / 1000) * o.rate);
          const ps: Promise<unknown>[] = [];
          for (; i < due; i++) {
            const t = Date.now();
            if (t >= killAt) publishedAfter++;
            ps.push(
              js.publish(
                `telemetry.obs.${KEYS[i % KEYS.length]}`,
                JSON.stringify({ t, v: [i % 7, 1, 2] }),
              ),
            );
          }
          await Promise.all(ps);
          await delay(10);
        }
      })();
      // The warm-up counts from the first score: on a busy box the workers' start-up alone can
      // outlast it, and a kill before anything is scored measures start-up, not failover.
      await _until(() => before.length > 0, READY_BOUND_MS, "a first score before the kill");
      await delay(o.warmS * 1000);
      killAt = Date.now();
      workers[0].kill("SIGKILL");
      await workers[0].status;
      log(
        `failover: SIGKILLed worker 0 at +${((killAt - t0) / 1000).toFixed(1)} s; ` +
          `measuring ${o.afterS} s`,
      );
      await delay(o.afterS * 1000);
      // At least one observation published after the kill must be scored again (the result).
      await _until(() => after.length > 0, READY_BOUND_MS, "a score after the kill");
      stop = true;
      await publishing;
      // The last observations' scores are still on their way: a moment for them to arrive.
      await delay(1000);
      const result: FailoverResult = {
        rate_obs_per_s: o.rate,
        lease_ms: o.leaseMs,
        workers: o.workers,
        partitions: o.partitions,
        before_kill: {
          n: before.length,
          p50_ms: _q(before, 0.5),
          p99_ms: _q(before, 0.99),
          max_ms: _q(before, 1),
        },
        after_kill: {
          n: after.length,
          p50_ms: _q(after, 0.5),
          p99_ms: _q(after, 0.99),
          max_ms: _q(after, 1),
        },
        unscored_after_kill: Math.max(0, publishedAfter - after.length),
        failover_ms: _q(after, 1),
      };
      log(`failover: ${result.failover_ms} ms (lease ${o.leaseMs} ms)`);
      return result;
    } finally {
      await nc.close();
    }
  } finally {
    for (const w of workers) {
      try {
        w.kill("SIGTERM");
      } catch {
        // already exited (the killed one)
      }
    }
    await Promise.all(workers.map((w) => w.status));
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rate: { type: "string", default: "500" },
      "lease-ms": { type: "string", default: "10000" },
      workers: { type: "string", default: "2" },
      "after-s": { type: "string", default: "25" },
    },
  });
  const result = await benchFailover({
    ...failoverSizes(false),
    rate: Number(values.rate),
    leaseMs: Number(values["lease-ms"]),
    workers: Number(values.workers),
    afterS: Number(values["after-s"]),
  }, (line) => console.error(line));
  console.log(JSON.stringify(result, null, 2));
}
