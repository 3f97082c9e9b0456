/**
 * `deno run -A bench/kv_server_cost.ts [N=100000] [BYTES=1500]`: the nats-server's CPU per message
 * (from /proc/<pid>/stat, Linux) for what the live worker sends with many keys: KV writes (history
 * 1) of new keys, of existing keys and of one key, stream publications with `Nats-Msg-Id` (score
 * records), and core publications; acknowledgements batched as the worker batches them
 * (`KvBatchWriter`, `AckedPublisher`). docs/perf/2026-12-07-live-keys-cpu.md.
 *
 * @module
 */
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { NatsServerProcess } from "../src/nats/server_process.ts";
import { KvBatchWriter } from "../src/nats/kv_writer.ts";
import { AckedPublisher } from "../src/nats/acked_publisher.ts";

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const hz = 100;
function cpu(pid: number): number {
  const s = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / hz;
}
const N = Number(Deno.args[0] ?? "100000");
const size = Number(Deno.args[1] ?? "1500");
const payload = "x".repeat(size);
const dir = await Deno.makeTempDir();
const server = await NatsServerProcess.start({
  storeDir: join(dir, "s"),
  workDir: join(dir, "w"),
  port: -1,
  readyTimeoutMs: 60_000,
});
const nc = await connect({ servers: server.url });
const pid = server.pid;
if (pid === undefined) throw new Error("expected the server's process id, found none");
try {
  const kvm = new Kvm(nc);
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "PLAIN", subjects: ["plain.>"] });
  const w = new KvBatchWriter(nc);
  const ap = new AckedPublisher(nc);
  const CH = 2000;
  for (
    const mode of ["plain", "kv 1 key", "kv N keys", "kv N keys again (updates)", "core publish"]
  ) {
    const kv = await kvm.create(mode.startsWith("kv 1") ? "one" : "many", { history: 1 });
    const c0 = cpu(pid);
    const t0 = performance.now();
    for (let i = 0; i < N; i += CH) {
      if (mode === "plain") {
        const pubs = [];
        for (let j = i; j < i + CH; j++) {
          pubs.push({ subject: `plain.k${j}`, data: payload, msgID: `${mode}${j}` });
        }
        await ap.publishAll(pubs, 10_000);
      } else if (mode === "core publish") {
        for (let j = i; j < i + CH; j++) nc.publish(`core.k${j}`, payload);
        await nc.flush();
      } else {
        const writes = [];
        for (let j = i; j < i + CH; j++) {
          writes.push({ key: mode.startsWith("kv 1") ? "k" : `k${j}`, data: payload });
        }
        const r = await w.writeAll(kv, writes, 10_000);
        if (!r.every((x) => x.ok)) throw new Error("failed");
      }
    }
    await nc.flush();
    await new Promise((r) => setTimeout(r, 300));
    const c1 = cpu(pid);
    const t1 = performance.now();
    console.log(
      `${mode}: ${N} msgs of ${size} B: server ${((c1 - c0) / N * 1e6).toFixed(1)} µs/msg CPU, ${
        ((t1 - t0) / 1000).toFixed(1)
      } s wall`,
    );
  }
} finally {
  await nc.close();
  await server.stop();
  await Deno.remove(dir, { recursive: true });
}
