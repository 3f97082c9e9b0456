/**
 * `deno task cluster [--workers N] [--partitions P] [-- worker flags…]`: a local 3-node
 * nats-server cluster (loopback, temp storage, the partition mapping on every node) and N workers
 * (default 2) on it with `--replicas 3`; prints the URLs; Ctrl-C stops the workers (SIGTERM: they
 * hand their partitions over and exit) and then the servers, and removes the storage.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startNatsCluster } from "../src/nats/local_cluster.ts";
import { workerCommand } from "../src/nats/worker_command.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    workers: { type: "string", default: "2" },
    partitions: { type: "string", default: "16" },
    help: { type: "boolean", short: "h" },
  },
  allowPositionals: true,
});
if (values.help) {
  console.log(
    "usage: deno task cluster [--workers N (2)] [--partitions P (16)] [-- worker flags]",
  );
  Deno.exit(0);
}
const workers = Number(values.workers);
const partitions = Number(values.partitions);
if (!Number.isInteger(workers) || workers < 0 || !Number.isInteger(partitions) || partitions < 1) {
  console.error(`expected --workers ≥ 0 and --partitions ≥ 1 integers`);
  Deno.exit(2);
}
// Servers and workers in their own sessions: Ctrl-C reaches only this process, which stops the
// workers first (they hand their partitions over) and the servers after them.
const cluster = await startNatsCluster({ partitions, detached: true });
console.error(
  `3-node cluster up (store ${cluster.dir}, ${partitions} partitions):\n` +
    cluster.urls.map((u, i) => `  n${i}: ${u}`).join("\n") +
    `\n  NATS_URL=${cluster.url}\n` +
    `  publish: deno task publish data/sample.ndjson --server ${cluster.urls[0]}\n` +
    `  add a worker: NATS_URL=${cluster.url} deno task start --replicas 3 --partitions ${partitions}`,
);
const children = Array.from({ length: workers }, (_, i) => {
  const child = workerCommand(
    cluster.url,
    ["--replicas", "3", "--partitions", String(partitions), ...positionals],
    { stdin: "null", stdout: "inherit", stderr: "piped", detached: true },
  ).spawn();
  // Prefix each worker's log lines with its number.
  (async () => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of child.stderr) {
      buf += dec.decode(chunk, { stream: true });
      const lines = buf.split("\n");
      buf = lines.pop()!;
      for (const l of lines) console.error(`w${i} ${l}`);
    }
  })().catch(() => {});
  return child;
});
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.error("stopping the workers, then the servers");
  for (const c of children) {
    try {
      c.kill("SIGTERM");
    } catch {
      // exited already
    }
  }
  await Promise.all(children.map((c) => c.status));
  await cluster[Symbol.asyncDispose]();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
await Promise.all(children.map((c) => c.status));
if (!stopping) {
  console.error("every worker exited; the cluster keeps running until Ctrl-C");
}
