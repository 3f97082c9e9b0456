/**
 * Reproduction of the multi-key backlog stall: a fresh local nats-server, `--messages` single
 * observation JSON messages over `--keys` keys preloaded, then the worker (model mode, cpu) drains
 * them; prints the drain time, a per-second trace of the consumer (pending, waiting pulls, ack
 * pending) and every worker log line that is not start-up chatter.
 *
 * `deno run -A src/live/backlog_probe.ts [--keys 10] [--messages 20000] [--runs 3]`
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { z } from "zod";
import { resolveLiveConfig, topologyFor } from "../src/config/live_config.ts";
import { connectNats } from "../src/nats/connect.ts";
import { NatsServerProcess } from "../src/nats/server_process.ts";
import { ensureStreams } from "../src/nats/topology.ts";
import type { Publication } from "../src/nats/acked_publisher.ts";
import { publishAllAcked } from "../src/nats/publish_retry.ts";
import { startWorker } from "../src/live/worker.ts";

const Flags = z.object({
  keys: z.coerce.number().int().min(1).default(10),
  messages: z.coerce.number().int().min(1).default(20_000),
  runs: z.coerce.number().int().min(1).default(3),
  mode: z.enum(["model", "relay"]).default("model"),
});

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function once(keys: number, messages: number, mode: "model" | "relay"): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "mvn-backlog-" });
  await using server = await NatsServerProcess.start({
    storeDir: join(dir, "store"),
    workDir: join(dir, "run"),
    port: -1,
  });
  const nc = await connectNats({ url: server.url }, { name: "probe" });
  try {
    const prefix = "probe";
    const topo = topologyFor(prefix);
    const jsm = await jetstreamManager(nc);
    await ensureStreams(jsm, topo);
    const js = jetstream(nc);
    let state = 1;
    const rnd = () => ((state = (state * 48271) % 2147483647) / 2147483647) * 2 - 1;
    for (let start = 0; start < messages; start += 8192) {
      const pubs: Publication[] = [];
      for (let i = start; i < Math.min(messages, start + 8192); i++) {
        const v = [rnd(), rnd(), rnd()].map((x) => Math.round(x * 1e4) / 1e4);
        pubs.push({
          subject: `${prefix}.obs.k${i % keys}`,
          data: JSON.stringify({ v }),
          msgID: `p-${i}`,
        });
      }
      await publishAllAcked(js, pubs, console.error);
    }
    const config = resolveLiveConfig(
      { "nats-url": server.url, backend: "cpu", prefix, "state-dir": join(dir, "state") },
      {},
    );
    const lines: string[] = [];
    const t0 = performance.now();
    const worker = await startWorker(config, { mode, log: (l) => lines.push(l) });
    let seconds = 0;
    try {
      let lastTrace = t0;
      while (true) {
        await delay(20);
        const n = (await jsm.streams.info(topo.scoresStream)).state.messages;
        const now = performance.now();
        if (n >= messages) {
          seconds = (now - t0) / 1000;
          break;
        }
        if (now - lastTrace >= 1000) {
          lastTrace = now;
          const ci = await jsm.consumers.info(topo.inputStream, config.durable);
          console.log(
            `  t=${((now - t0) / 1000).toFixed(1)}s scores=${n} pending=${ci.num_pending} ` +
              `waiting=${ci.num_waiting} ack_pending=${ci.num_ack_pending} ` +
              `batches=${worker.metrics.batches}`,
          );
        }
        if (now - t0 > 180_000) throw new Error(`expected ${messages} scores, found ${n}`);
      }
    } finally {
      await worker.stop();
    }
    for (const l of lines) {
      if (/^(connecting|engine backend|consuming|no NATS)/.test(l)) continue;
      console.log(`  log: ${l}`);
    }
    return seconds;
  } finally {
    await nc.drain();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      keys: { type: "string" },
      messages: { type: "string" },
      runs: { type: "string" },
      mode: { type: "string" },
    },
  });
  const f = Flags.parse(values);
  for (let r = 1; r <= f.runs; r++) {
    const s = await once(f.keys, f.messages, f.mode);
    console.log(
      `run ${r}: ${f.messages} messages, ${f.keys} keys, ${f.mode}: drained in ${s.toFixed(2)} s ` +
        `(${(f.messages / s).toFixed(0)} obs/s)`,
    );
  }
}
