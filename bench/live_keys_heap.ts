/**
 * `deno run -A --v8-flags=--expose-gc bench/live_keys_heap.ts [--keys 20000] [--per-key 20]
 * [--snapshot FILE]`: where the live worker's per-key memory goes, without NATS. One
 * {@link LiveLoop} in this process (the real cpu engine, the real {@link KvCheckpointStore} on an
 * in-memory KV that keeps only revisions, a sink that drops everything) learns `keys × perKey` 3-D
 * observations (messages of 5 rows, keys interleaved), stops; after a full GC prints the JS heap
 * and the array buffers beyond a one-key run in the same process, per key; `--snapshot FILE`
 * also writes a V8 heap snapshot (summarise it with `--summary FILE`: self size by node type and
 * name, largest first).
 *
 * @module
 */
import v8 from "node:v8";
import { parseArgs } from "node:util";
import type { KV } from "@nats-io/kv";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import { createEngine } from "../src/engine/thread/compute_thread.ts";
import { LiveLoop } from "../src/live/loop.ts";
import { LiveMetrics } from "../src/live/metrics.ts";
import type { InputMessage, MessageSource, OutputSink } from "../src/live/ports.ts";
import { KvCheckpointStore } from "../src/nats/checkpoint_store.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    keys: { type: "string", default: "20000" },
    "per-key": { type: "string", default: "20" },
    snapshot: { type: "string" },
    summary: { type: "string" },
  },
});

if (values.summary !== undefined) {
  summarise(values.summary);
  Deno.exit(0);
}

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("expected --v8-flags=--expose-gc");
const ROWS = 5;

/** Messages of `rows` rows, keys interleaved, handed out in order, then null. */
class Source implements MessageSource {
  cumulativeAck = true;
  #m = 0;
  #closed = false;
  constructor(readonly keys: number, readonly total: number) {}
  next(): Promise<InputMessage | undefined | null> {
    if (this.#m >= this.total) {
      return this.#closed
        ? Promise.resolve(null)
        : new Promise((r) => setTimeout(() => r(undefined), 5));
    }
    const m = this.#m++;
    const k = m % this.keys;
    const round = Math.floor(m / this.keys);
    const rows = [];
    for (let r = 0; r < ROWS; r++) {
      const i = k * 7919 + (round * ROWS + r) * 104729;
      const v = [Math.sin(i * 0.37) + k % 5, Math.cos(i * 1.31) * 2, ((i % 1009) / 97) - 5];
      rows.push(`{"v":[${v.join(",")}],"t":${1767225600000 + (round * ROWS + r) * 1000}}`);
    }
    return Promise.resolve({
      subject: `telemetry.obs.k${k}`,
      seq: m + 1,
      data: new TextEncoder().encode(`[${rows.join(",")}]`),
      ack: () => {},
    });
  }
  get done(): boolean {
    return this.#m >= this.total;
  }
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}

const sink: OutputSink = {
  publishScores: () => Promise.resolve(),
  publishDeadLetters: () => Promise.resolve(),
  publishAnomalies: () => {},
  publishParams: () => Promise.resolve(),
  publishAlarms: () => Promise.resolve(),
};

/** A KV that stores nothing but answers with increasing revisions. */
function revisionsKv(): KV {
  let rev = 0;
  const kv = {
    create: () => Promise.resolve(++rev),
    update: () => Promise.resolve(++rev),
    get: () => Promise.resolve(null),
    keys: () => Promise.resolve((async function* () {})()),
  };
  return kv as unknown as KV;
}

async function run(keys: number, perKey: number): Promise<LiveLoop> {
  const config = resolveHeadConfig({ dim: 3, backend: "cpu" });
  const engine = await createEngine(config, { thread: false, log: () => {} });
  const source = new Source(keys, (keys * perKey) / ROWS);
  const loop = new LiveLoop(
    engine,
    source,
    sink,
    new KvCheckpointStore(revisionsKv(), () => {}),
    {
      dim: 3,
      batch: 256,
      maxWaitMs: 5,
      paramsEveryMs: 1000,
      checkpointEveryMs: 100,
      obsPrefix: "telemetry.obs.",
      maxMessageBytes: 1 << 20,
      inputStream: "TELEMETRY",
      alarmArmedFrom: config.warmup + 1,
      metrics: new LiveMetrics(),
      log: (l) => console.error(l),
    },
  );
  await loop.init();
  const done = loop.run();
  while (!source.done) await new Promise((r) => setTimeout(r, 50));
  // Let the last barrier and the parameters pass.
  await new Promise((r) => setTimeout(r, 1500));
  loop.stop();
  await done;
  return loop;
}

function measure(): { heap: number; buffers: number; peak: number } {
  const status = Deno.readTextFileSync("/proc/self/status");
  const peak = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
  for (let i = 0; i < 3; i++) gc!();
  const m = Deno.memoryUsage();
  return { heap: m.heapUsed, buffers: m.external, peak };
}

const keys = Number(values.keys);
const perKey = Number(values["per-key"]);
const keep: LiveLoop[] = [];
const m0 = measure();
keep.push(await run(1, perKey));
const m1 = measure();
keep.push(await run(keys, perKey));
const m2 = measure();
const per = (a: number, b: number) => Math.round((b - a) / keys);
console.log(JSON.stringify({
  keys,
  perKey,
  one_key: { heap: m1.heap - m0.heap, buffers: m1.buffers - m0.buffers },
  heap_per_key: per(m1.heap, m2.heap),
  buffers_per_key: per(m1.buffers, m2.buffers),
  peak_rss_per_key: per(m1.peak, m2.peak),
  peak_rss: [m1.peak, m2.peak],
}));
if (values.snapshot !== undefined) v8.writeHeapSnapshot(values.snapshot);
void keep;

/** Prints self size by (type, name) of a heap snapshot, largest first. */
function summarise(file: string): void {
  const snap = JSON.parse(Deno.readTextFileSync(file));
  const meta = snap.snapshot.meta;
  const fields: string[] = meta.node_fields;
  const types: string[] = meta.node_types[0];
  const nf = fields.length;
  const iType = fields.indexOf("type");
  const iName = fields.indexOf("name");
  const iSize = fields.indexOf("self_size");
  const nodes: number[] = snap.nodes;
  const strings: string[] = snap.strings;
  const by = new Map<string, { n: number; size: number }>();
  for (let i = 0; i < nodes.length; i += nf) {
    const type = types[nodes[i + iType]];
    let name = strings[nodes[i + iName]];
    if (type === "string" || type === "concatenated string" || type === "sliced string") {
      name = "";
    } else if (type === "number") name = "";
    else if (name.length > 40) name = name.slice(0, 40);
    const k = `${type} ${name}`;
    const e = by.get(k) ?? { n: 0, size: 0 };
    e.n++;
    e.size += nodes[i + iSize];
    by.set(k, e);
  }
  const rows = [...by].sort((a, b) => b[1].size - a[1].size).slice(0, 40);
  for (const [k, e] of rows) {
    console.log(`${String(e.size).padStart(11)} ${String(e.n).padStart(9)}  ${k}`);
  }
}
