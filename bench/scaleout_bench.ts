/**
 * The cost of partitioned workers (`scaleout` section of `deno task bench`; standalone:
 * `deno run -A bench/scaleout_bench.ts [--messages 40000] [--keys 256] [--workers 1,2]
 * [--partitions 16] [--unpartitioned]`). For each worker count, on a fresh nats-server with the
 * partition mapping: the workers (child processes, cpu backend) start and balance, then
 * single-observation JSON messages over `keys` keys are published as fast as they go; reports
 * obs/s from the first score to the last and the CPU time (user + system, from /proc) per
 * observation of the workers and of the server. On a 2-core box the point is the cost per
 * observation, not a speed-up.
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { NatsServerProcess } from "../src/nats/server_process.ts";
import { partitionMapping } from "../src/nats/partitions.ts";
import { publishAllAcked } from "../src/nats/publish_retry.ts";
import { workerCommand } from "../src/nats/worker_command.ts";
import { storedCount } from "./live_harness.ts";
import type { ScaleoutRow } from "./schema.ts";

/** Sizes of one scale-out measurement. */
export interface ScaleoutOptions {
  /** Single-observation messages per worker count. */
  readonly messages: number;
  readonly keys: number;
  /** Worker counts, each measured on its own fresh server. */
  readonly workers: readonly number[];
  readonly partitions: number;
  /** No mapping (one worker: the baseline). */
  readonly unpartitioned: boolean;
  /** Wait after spawning the workers, before publishing: start-up and balancing. */
  readonly settleMs: number;
}

/** Sizes of `deno task bench` (full) and `--quick`. */
export function scaleoutSizes(quick: boolean): ScaleoutOptions {
  return quick
    ? {
      messages: 2_000,
      keys: 64,
      workers: [1, 2],
      partitions: 16,
      unpartitioned: false,
      settleMs: 5000,
    }
    : {
      messages: 40_000,
      keys: 256,
      workers: [1, 2],
      partitions: 16,
      unpartitioned: false,
      // A lease round is 2 s; workers start in 1–3 s on the shared box: 8 s sees them balanced.
      settleMs: 8000,
    };
}

const TICK = 100; // clock ticks per second (USER_HZ)

/** User + system CPU seconds of a process (from /proc/PID/stat). */
export function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function _one(o: ScaleoutOptions, workers: number): Promise<ScaleoutRow> {
  const N = o.messages;
  const K = o.keys;
  const dir = await Deno.makeTempDir({ prefix: "mvn-bench-scaleout-" });
  const server = await NatsServerProcess.start({
    storeDir: join(dir, "store"),
    workDir: join(dir, "run"),
    port: -1,
    readyTimeoutMs: 60_000,
    extraConfig: o.unpartitioned ? "" : partitionMapping("telemetry", o.partitions),
  });
  const children: Deno.ChildProcess[] = [];
  const nc = await connect({ servers: server.url }).catch(async (e) => {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
    throw e;
  });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "TELEMETRY", subjects: ["telemetry.obs.>"] });
    const pubs = Array.from({ length: N }, (_, i) => ({
      subject: `telemetry.obs.k${i % K}`,
      data: JSON.stringify({ v: [Math.sin(i), Math.cos(i * 1.3), (i % 17) / 5] }),
      msgID: `m${i}`,
    }));
    const serverPid = server.pid;
    if (serverPid === undefined) throw new Error("expected the nats-server's pid, found none");
    for (let w = 0; w < workers; w++) {
      children.push(
        workerCommand(
          server.url,
          ["--backend", "cpu", "--partitions", String(o.partitions)],
          { stdin: "null", stdout: "null", stderr: "null" },
        ).spawn(),
      );
    }
    // Workers first, balanced, then the input as fast as it goes: the measurement starts at the
    // first score, so it excludes start-up and rebalancing.
    await delay(o.settleMs);
    const publishing = (async () => {
      for (let i = 0; i < N; i += 5000) {
        await publishAllAcked(jetstream(nc), pubs.slice(i, i + 5000), () => {});
      }
    })();
    let first = 0;
    let last = 0;
    const workerCpuAtFirst: number[] = [];
    let serverCpuAtFirst = cpuSeconds(serverPid);
    const deadline = performance.now() + 300_000;
    while (true) {
      if (performance.now() > deadline) {
        throw new Error(`scaleout ${workers} worker(s): expected ${N} scores within 300 s`);
      }
      const n = await storedCount(jsm, "TELEMETRY_SCORES");
      if (n > 0 && first === 0) {
        first = performance.now();
        for (const c of children) workerCpuAtFirst.push(cpuSeconds(c.pid));
        serverCpuAtFirst = cpuSeconds(serverPid);
      }
      if (n >= N) {
        last = performance.now();
        break;
      }
      await delay(50);
    }
    const workerCpu = children.reduce(
      (s, c, i) => s + cpuSeconds(c.pid) - workerCpuAtFirst[i],
      0,
    );
    const serverCpu = cpuSeconds(serverPid) - serverCpuAtFirst;
    await publishing;
    // At least one poll interval: a `--quick` run can be scored between two polls.
    const s = Math.max(last - first, 50) / 1000;
    return {
      partitions: o.unpartitioned ? 0 : o.partitions,
      workers,
      observations: N,
      keys: K,
      obs_per_s: Math.round(N / s),
      worker_cpu_us_per_obs: Math.round((workerCpu / N) * 1e6 * 10) / 10,
      server_cpu_us_per_obs: Math.round((serverCpu / N) * 1e6 * 10) / 10,
    };
  } finally {
    for (const c of children) {
      try {
        c.kill("SIGTERM");
      } catch {
        // already exited
      }
    }
    await Promise.all(children.map((c) => c.status));
    await nc.close();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Measures each worker count of `o` on its own fresh server. */
export async function benchScaleout(
  o: ScaleoutOptions,
  log: (line: string) => void,
): Promise<ScaleoutRow[]> {
  const rows: ScaleoutRow[] = [];
  for (const w of o.workers) {
    log(`scaleout: ${w} worker(s), ${o.messages} observations …`);
    const row = await _one(o, w);
    log(
      `scaleout: ${w} worker(s): ${row.obs_per_s} obs/s, worker ${row.worker_cpu_us_per_obs} ` +
        `µs/obs, server ${row.server_cpu_us_per_obs} µs/obs`,
    );
    rows.push(row);
  }
  return rows;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      messages: { type: "string", default: "40000" },
      keys: { type: "string", default: "256" },
      workers: { type: "string", default: "1,2" },
      partitions: { type: "string", default: "16" },
      unpartitioned: { type: "boolean", default: false },
    },
  });
  const rows = await benchScaleout({
    ...scaleoutSizes(false),
    messages: Number(values.messages),
    keys: Number(values.keys),
    workers: values.workers.split(",").map(Number),
    partitions: Number(values.partitions),
    unpartitioned: values.unpartitioned,
  }, (line) => console.error(line));
  console.log(JSON.stringify(rows, null, 2));
}
