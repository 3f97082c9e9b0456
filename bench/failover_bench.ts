/**
 * `deno run -A bench/failover_bench.ts [--rate 500] [--lease-ms 10000] [--workers 2]`: the time
 * from a worker's SIGKILL to its partitions being scored again. A local nats-server with the
 * partition mapping, N workers (child processes), a publisher at a fixed rate over 64 keys
 * (each observation carries its publish time in `t`); one worker is SIGKILLed after a warm-up,
 * and the score latency (arrival − `t`) of every observation published after the kill is
 * recorded. The worst of them is the failover time: the observations of the dead worker's
 * partitions wait until another worker takes the partitions over.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { workerCommand } from "../src/nats/worker_command.ts";
import { startNatsServer } from "../tests/helpers/nats_server.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rate: { type: "string", default: "500" },
    "lease-ms": { type: "string", default: "10000" },
    workers: { type: "string", default: "2" },
    "after-s": { type: "string", default: "25" },
  },
});
const rate = Number(values.rate);
const leaseMs = Number(values["lease-ms"]);
const nWorkers = Number(values.workers);
const afterS = Number(values["after-s"]);
const KEYS = Array.from({ length: 64 }, (_, i) => `k${i}`);

await using srv = await startNatsServer({ partitions: 16 });
const spawn = () =>
  workerCommand(srv.url, ["--backend", "cpu", "--lease-ms", String(leaseMs)], {
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
const nc = await connect({ servers: srv.url });
await (await jetstreamManager(nc)).streams.add({
  name: "TELEMETRY",
  subjects: ["telemetry.obs.>"],
});
const workers = Array.from({ length: nWorkers }, spawn);
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
let stop = false;
const publishing = (async () => {
  while (!stop) {
    const due = Math.floor(((Date.now() - t0) / 1000) * rate);
    const ps: Promise<unknown>[] = [];
    for (; i < due; i++) {
      const key = KEYS[i % KEYS.length];
      ps.push(
        js.publish(`telemetry.obs.${key}`, JSON.stringify({ t: Date.now(), v: [i % 7, 1, 2] })),
      );
    }
    await Promise.all(ps);
    await new Promise((r) => setTimeout(r, 10));
  }
})();
await new Promise((r) => setTimeout(r, 10_000));
killAt = Date.now();
workers[0].kill("SIGKILL");
await workers[0].status;
console.error(
  `SIGKILLed worker 0 at +${((killAt - t0) / 1000).toFixed(1)} s; measuring ${afterS} s`,
);
await new Promise((r) => setTimeout(r, afterS * 1000));
stop = true;
await publishing;
for (const w of workers.slice(1)) w.kill("SIGTERM");
await Promise.all(workers.slice(1).map((w) => w.status));
const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
};
console.log(JSON.stringify(
  {
    rate,
    lease_ms: leaseMs,
    workers: nWorkers,
    before_kill: { n: before.length, p50_ms: q(before, 0.5), p99_ms: q(before, 0.99) },
    after_kill: {
      n: after.length,
      p50_ms: q(after, 0.5),
      max_ms: Math.max(...after),
    },
    failover_ms: Math.max(...after),
  },
  null,
  2,
));
await nc.close();
