/**
 * `deno run -A bench/restore_bench.ts [--keys 100000] [--restarts 2]`: how long a live worker
 * takes to restore `keys` checkpoints at start-up, and its peak RSS meanwhile.
 *
 * A fresh nats-server on loopback (unpartitioned), one message of 5 3-D rows per key, a first
 * worker that learns them all (then stopped with SIGTERM: every key checkpointed), then
 * `restarts` × two more workers on the same checkpoints, with `--evict-idle-s 3600` (restored
 * keys set aside) and without. For each: seconds from the process's spawn to its "restored" log
 * line, and its VmHWM then. Lab notes: docs/perf/2026-12-07-restore.md.
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { NatsServerProcess } from "../src/nats/server_process.ts";
import { publishAllAcked } from "../src/nats/publish_retry.ts";
import { workerCommand } from "../src/nats/worker_command.ts";
import { storedCount } from "./live_harness.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    keys: { type: "string", default: "100000" },
    restarts: { type: "string", default: "2" },
  },
});
const K = Number(values.keys);
const restarts = Number(values.restarts);
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const peakMiB = (pid: number) =>
  Number(/VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1]) / 1024;

/** Runs a worker until `done` says so; its seconds to the "restored" line and its peak then. */
async function worker(
  url: string,
  flags: string[],
  done: (restored: boolean) => Promise<boolean>,
): Promise<{ restored_s: number; peak_mib: number }> {
  const io = { stdin: "null", stdout: "piped", stderr: "piped" } as const;
  const child = workerCommand(url, ["--backend", "cpu", ...flags], io).spawn();
  const t0 = performance.now();
  let restoredAt = 0;
  for (const stream of [child.stdout, child.stderr]) {
    (async () => {
      const dec = new TextDecoder();
      for await (const chunk of stream) {
        if (restoredAt === 0 && /checkpoint\(s\) restored/.test(dec.decode(chunk))) {
          restoredAt = performance.now();
        }
      }
    })().catch(() => {});
  }
  while (!(await done(restoredAt > 0))) await delay(50);
  const peak = peakMiB(child.pid);
  child.kill("SIGTERM");
  await child.status;
  return { restored_s: (restoredAt - t0) / 1000, peak_mib: Math.round(peak) };
}

const dir = await Deno.makeTempDir({ prefix: "mvn-bench-restore-" });
const server = await NatsServerProcess.start({
  storeDir: join(dir, "store"),
  workDir: join(dir, "run"),
  port: -1,
  readyTimeoutMs: 60_000,
});
const nc = await connect({ servers: server.url });
try {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "TELEMETRY", subjects: ["telemetry.obs.>"] });
  const enc = new TextEncoder();
  for (let k0 = 0; k0 < K; k0 += 20_000) {
    const pubs = [];
    for (let k = k0; k < Math.min(K, k0 + 20_000); k++) {
      const rows = [];
      for (let r = 0; r < 5; r++) {
        const i = k * 7919 + r * 104729;
        rows.push(`[${Math.sin(i * 0.37) + k % 5},${Math.cos(i * 1.31) * 2},${(i % 1009) / 97}]`);
      }
      pubs.push({
        subject: `telemetry.obs.k${k}`,
        data: enc.encode(`[${rows.join(",")}]`),
        msgID: `m${k}`,
      });
    }
    await publishAllAcked(jetstream(nc), pubs, (l) => console.error(l));
  }
  console.error(`restore: ${K} keys published; the first worker learns them`);
  await worker(
    server.url,
    [],
    async () => (await storedCount(jsm, "TELEMETRY_SCORES")) >= 5 * K && (await delay(5000), true),
  );
  const runs = [];
  for (let i = 0; i < restarts; i++) {
    for (const flags of [["--evict-idle-s", "3600"], []]) {
      const r = await worker(server.url, flags, (restored) => Promise.resolve(restored));
      console.error(`restore: ${flags.join(" ") || "no eviction"}: ${JSON.stringify(r)}`);
      runs.push({ evict: flags.length > 0, ...r });
    }
  }
  console.log(JSON.stringify({ keys: K, runs }, null, 2));
} finally {
  await nc.close();
  await server.stop();
  await Deno.remove(dir, { recursive: true });
}
