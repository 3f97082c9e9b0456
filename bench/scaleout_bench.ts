/**
 * `deno run -A bench/scaleout_bench.ts [--messages 40000] [--keys 256] [--workers 1,2]`: the cost
 * of partitioned workers. For each worker count, on a fresh nats-server with the partition
 * mapping: the workers (child processes, cpu backend) start and balance, then single-observation
 * JSON messages over `keys` keys are published as fast as they go; reports obs/s from the first score to the last and the
 * CPU time (user + system, from /proc) per observation of the workers and of the server. On a
 * 2-core box the point is the cost per observation, not a speed-up.
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

const { values } = parseArgs({
  args: Deno.args,
  options: {
    messages: { type: "string", default: "40000" },
    keys: { type: "string", default: "256" },
    workers: { type: "string", default: "1,2" },
    partitions: { type: "string", default: "16" },
    /** `--unpartitioned`: no mapping (one worker: the baseline). */
    unpartitioned: { type: "boolean", default: false },
  },
});
const N = Number(values.messages);
const K = Number(values.keys);
const TICK = 100; // clock ticks per second (USER_HZ)

function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}

async function run(workers: number) {
  const dir = await Deno.makeTempDir({ prefix: "mvn-bench-scaleout-" });
  const server = await NatsServerProcess.start({
    storeDir: join(dir, "store"),
    workDir: join(dir, "run"),
    extraConfig: values.unpartitioned
      ? ""
      : partitionMapping("telemetry", Number(values.partitions)),
  });
  const nc = await connect({ servers: server.url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "TELEMETRY", subjects: ["telemetry.obs.>"] });
    const pubs = Array.from({ length: N }, (_, i) => ({
      subject: `telemetry.obs.k${i % K}`,
      data: JSON.stringify({ v: [Math.sin(i), Math.cos(i * 1.3), (i % 17) / 5] }),
      msgID: `m${i}`,
    }));
    const serverPid = server.pid!;
    const cpu0 = cpuSeconds(serverPid);
    const children = Array.from({ length: workers }, () =>
      workerCommand(
        server.url,
        ["--backend", "cpu", "--partitions", values.partitions],
        { stdin: "null", stdout: "null", stderr: "null" },
        ["--v8-flags=--no-allocation-site-pretenuring"],
      ).spawn());
    // Workers first, balanced (a lease round is 2 s), then the input as fast as it goes: the
    // measurement starts at the first score, so it excludes start-up and rebalancing.
    await new Promise((r) => setTimeout(r, 8000));
    const publishing = (async () => {
      for (let i = 0; i < N; i += 5000) {
        await publishAllAcked(jetstream(nc), pubs.slice(i, i + 5000), () => {});
      }
    })();
    let first = 0;
    let last = 0;
    const workerCpuAtFirst: number[] = [];
    let serverCpuAtFirst = cpu0;
    while (true) {
      let n = 0;
      try {
        n = (await jsm.streams.info("TELEMETRY_SCORES")).state.messages;
      } catch {
        // not created yet
      }
      if (n > 0 && first === 0) {
        first = performance.now();
        for (const c of children) workerCpuAtFirst.push(cpuSeconds(c.pid));
        serverCpuAtFirst = cpuSeconds(serverPid);
      }
      if (n >= N) {
        last = performance.now();
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const workerCpu = children.reduce(
      (s, c, i) => s + cpuSeconds(c.pid) - workerCpuAtFirst[i],
      0,
    );
    const serverCpu = cpuSeconds(serverPid) - serverCpuAtFirst;
    await publishing;
    for (const c of children) c.kill("SIGTERM");
    await Promise.all(children.map((c) => c.status));
    const s = (last - first) / 1000;
    return {
      partitions: values.unpartitioned ? 0 : Number(values.partitions),
      workers,
      observations: N,
      keys: K,
      obs_per_s: Math.round(N / s),
      worker_cpu_us_per_obs: Math.round((workerCpu / N) * 1e6 * 10) / 10,
      server_cpu_us_per_obs: Math.round((serverCpu / N) * 1e6 * 10) / 10,
    };
  } finally {
    await nc.close();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

const results = [];
for (const w of values.workers.split(",").map(Number)) {
  console.error(`scale-out bench: ${w} worker(s) …`);
  results.push(await run(w));
}
console.log(JSON.stringify(results, null, 2));
