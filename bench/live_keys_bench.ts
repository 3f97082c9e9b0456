/**
 * `deno run -A bench/live_keys_bench.ts [--keys 100000] [--per-key 20] [--rows-per-msg 5]
 * [--partitions 0] [--runs 1,N]`: resident memory per key of the LIVE worker.
 *
 * For each run (one key, then `keys` keys, the same `keys × perKey` 3-D observations): a fresh
 * nats-server on loopback (with the partition mapping when `--partitions P` > 0), the whole input
 * published first (JSON arrays of `rowsPerMsg` observations of one key, keys interleaved
 * message by message), then one worker process (`main.ts start`, cpu backend) consumes the
 * backlog; once every observation has its score record stored (`TELEMETRY_SCORES` holds
 * keys × perKey messages) and the last checkpoint barrier has had time to pass, the worker's peak
 * RSS (VmHWM from /proc/<pid>/status) is read. (peak − one-key peak) / keys is the memory a key
 * costs beyond a fixed base; obs/s is from the first score stored to the last.
 *
 * `--worker-flags "…"` passes more flags to the worker (e.g. `--evict-idle-s 5`), `--v8-flags`
 * more V8 flags (e.g. `--trace-gc`), `--log FILE` keeps the worker's output (`FILE.<keys>`).
 * `--cpu-prof FILE` runs the worker through `profiled_worker.ts`: a CPU profile of its main thread
 * (8 s from 2 s after its start; `MVN_PROFILE_*` in the environment change that; the worker is
 * stopped 3 s after the last score, so a profile still running then is lost) in
 * `FILE.<keys>.cpuprofile`.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { parseArgs } from "node:util";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { NatsServerProcess } from "../src/nats/server_process.ts";
import { partitionMapping } from "../src/nats/partitions.ts";
import { publishAllAcked } from "../src/nats/publish_retry.ts";
import { workerCommand } from "../src/nats/worker_command.ts";
import { storedCount } from "./live_harness.ts";
import { V8_FLAGS } from "../src/config/v8_flags.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    keys: { type: "string", default: "100000" },
    "per-key": { type: "string", default: "20" },
    "rows-per-msg": { type: "string", default: "5" },
    partitions: { type: "string", default: "0" },
    runs: { type: "string" },
    "worker-flags": { type: "string", default: "" },
    "v8-flags": { type: "string" },
    log: { type: "string" },
    "cpu-prof": { type: "string" },
  },
});
const keys = Number(values.keys);
const perKey = Number(values["per-key"]);
const rowsPerMsg = Number(values["rows-per-msg"]);
const partitions = Number(values.partitions);
const N = keys * perKey;
if (!(keys >= 1 && perKey >= 1 && rowsPerMsg >= 1 && perKey % rowsPerMsg === 0)) {
  throw new RangeError(
    `expected --keys ≥ 1 and --per-key a multiple of --rows-per-msg, found ${keys}, ${perKey}, ` +
      `${rowsPerMsg}`,
  );
}
const runs = (values.runs ?? `1,${keys}`).split(",").map(Number);
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Peak and current resident memory of a process, bytes (VmHWM, VmRSS). */
function rssOf(pid: number): { peak: number; now: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1]) * 1024;
  return { peak: kb("VmHWM"), now: kb("VmRSS") };
}

/** One observation of key k, row r (deterministic, varied, never exactly repeated). */
function obs(k: number, r: number): string {
  const i = k * 7919 + r * 104729;
  const v = [Math.sin(i * 0.37) + k % 5, Math.cos(i * 1.31) * 2, ((i % 1009) / 97) - 5];
  return `{"v":[${v.join(",")}],"t":${1767225600000 + r * 1000}}`;
}

interface RunResult {
  keys: number;
  obs_per_s: number;
  peak_rss: number;
  rss_at_end: number;
  /** When the peak was first reached: seconds after the first score (negative: before it). */
  peak_at_s: number;
  /** Resident memory every 5 s from the worker's start, MiB. */
  rss_mib: number[];
  load: string;
}

async function run(k: number): Promise<RunResult> {
  const dir = await Deno.makeTempDir({ prefix: "mvn-bench-livekeys-" });
  const server = await NatsServerProcess.start({
    storeDir: join(dir, "store"),
    workDir: join(dir, "run"),
    port: -1,
    readyTimeoutMs: 60_000,
    extraConfig: partitions > 0 ? partitionMapping("telemetry", partitions) : "",
  });
  let child: Deno.ChildProcess | undefined;
  let log: Deno.FsFile | undefined;
  const nc = await connect({ servers: server.url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "TELEMETRY", subjects: ["telemetry.obs.>"] });
    // Input first: messages of rowsPerMsg rows, keys interleaved (round r, key j, …).
    const total = N / rowsPerMsg;
    const enc = new TextEncoder();
    const t0 = performance.now();
    const CHUNK = 20_000;
    for (let m0 = 0; m0 < total; m0 += CHUNK) {
      const pubs = [];
      for (let m = m0; m < Math.min(total, m0 + CHUNK); m++) {
        // Message m: key (m mod keys) of the `keys`-key run; the one-key run has one key.
        const key = m % keys;
        const round = Math.floor(m / keys);
        const kk = k === 1 ? 0 : key;
        const rows = [];
        for (let r = 0; r < rowsPerMsg; r++) {
          rows.push(obs(kk, k === 1 ? m * rowsPerMsg + r : round * rowsPerMsg + r));
        }
        pubs.push({
          subject: `telemetry.obs.k${kk}`,
          data: enc.encode(`[${rows.join(",")}]`),
          msgID: `m${m}`,
        });
      }
      await publishAllAcked(jetstream(nc), pubs, (l) => console.error(l));
    }
    console.error(
      `live_keys: ${k} key(s): ${N} observations in ${total} messages published in ` +
        `${((performance.now() - t0) / 1000).toFixed(1)} s; starting the worker`,
    );
    const logFile = values.log !== undefined ? `${values.log}.${k}` : join(dir, "worker.log");
    const out = log = await Deno.open(logFile, { write: true, create: true, truncate: true });
    const workerFlags = values["worker-flags"].split(" ").filter((s) => s !== "");
    const v8 = [...V8_FLAGS, ...(values["v8-flags"]?.split(",") ?? [])];
    const flags = [
      "--backend",
      "cpu",
      "--partitions",
      String(partitions > 0 ? partitions : 16),
      ...workerFlags,
    ];
    const io = { stdin: "null", stdout: "piped", stderr: "piped" } as const;
    const prof = values["cpu-prof"];
    child = (prof === undefined
      ? workerCommand(server.url, flags, io, [`--v8-flags=${v8.join(",")}`])
      : new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          `--v8-flags=${v8.join(",")}`,
          fromFileUrl(new URL("./profiled_worker.ts", import.meta.url)),
          "start",
          "--nats-url",
          server.url,
          ...flags,
        ],
        env: { MVN_PROFILE_OUT: `${prof}.${k}.cpuprofile` },
        cwd: fromFileUrl(new URL("..", import.meta.url)),
        ...io,
      })).spawn();
    // stdout and stderr into the log file (drained: a full pipe would stall the worker).
    for (const stream of [child.stdout, child.stderr]) {
      (async () => {
        for await (const chunk of stream) {
          await out.write(chunk);
        }
      })().catch(() => {});
    }
    const loadStart = Deno.loadavg()[0];
    const started = performance.now();
    // The worker's resident memory sampled: when the peak comes (start-up, the run, the end).
    let peakSeen = 0;
    let peakAt = 0;
    const series: number[] = [];
    const worker = child;
    const sampler = setInterval(() => {
      try {
        const r = rssOf(worker.pid);
        if (r.peak > peakSeen) {
          peakSeen = r.peak;
          peakAt = performance.now();
        }
        const i = Math.floor((performance.now() - started) / 5000);
        if (series.length <= i) {
          series.push(Math.round(r.now / 2 ** 20));
        }
      } catch {
        // exited
      }
    }, 50);
    let first = 0;
    let last = 0;
    const deadline = performance.now() + 900_000;
    while (true) {
      if (performance.now() > deadline) {
        throw new Error(`expected ${N} scores within 900 s`);
      }
      const n = await storedCount(jsm, "TELEMETRY_SCORES");
      if (n > 0 && first === 0) {
        first = performance.now();
      }
      if (n >= N) {
        last = performance.now();
        break;
      }
      await delay(first === 0 ? 200 : 100);
    }
    // The last barrier (checkpoints every 100 ms) and the parameters (every 1 s) come after the
    // last score: give them time, then read the peak.
    await delay(3000);
    clearInterval(sampler);
    const rss = rssOf(child.pid);
    const s = Math.max(last - first, 100) / 1000;
    return {
      keys: k,
      obs_per_s: Math.round(N / s),
      peak_rss: rss.peak,
      rss_at_end: rss.now,
      peak_at_s: Math.round((peakAt - first) / 100) / 10,
      rss_mib: series,
      load: `${loadStart.toFixed(1)} → ${Deno.loadavg()[0].toFixed(1)}`,
    };
  } finally {
    if (child !== undefined) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already exited
      }
      await child.status;
    }
    log?.close();
    await nc.close();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

const results: RunResult[] = [];
for (const k of runs) {
  const r = await run(k);
  console.error(
    `live_keys: ${k} key(s): ${r.obs_per_s} obs/s, peak RSS ${(r.peak_rss / 2 ** 20).toFixed(1)} ` +
      `MiB at ${r.peak_at_s} s (at end ${(r.rss_at_end / 2 ** 20).toFixed(1)} MiB), load ${r.load}`,
  );
  results.push(r);
}
const one = results.find((r) => r.keys === 1);
const many = results.find((r) => r.keys === keys && keys !== 1);
console.log(JSON.stringify(
  {
    observations: N,
    dim: 3,
    rows_per_message: rowsPerMsg,
    partitions,
    runs: results,
    ...(one !== undefined && many !== undefined
      ? {
        bytes_per_key_beyond_base: Math.round((many.peak_rss - one.peak_rss) / keys),
        rate_ratio: Math.round((many.obs_per_s / one.obs_per_s) * 100) / 100,
      }
      : {}),
  },
  null,
  2,
));
