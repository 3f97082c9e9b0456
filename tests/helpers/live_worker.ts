/**
 * Test helper for the live tests against a real nats-server: worker configurations and worker
 * processes (spawned, waited for, SIGKILLed), input publications over a set of keys, and the
 * exactly-once check of the scores stream and the checkpoints.
 *
 * @module
 */
import assert from "node:assert/strict";
import { jetstream, jetstreamManager, type StreamConfig } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { Checkpoint, type LiveScoreRecord, ParamsMessage } from "../../schemas/messages.ts";
import {
  type LiveConfig,
  parseLiveFlags,
  resolveLiveConfig,
  topologyFor,
} from "../../src/config/live_config.ts";
import type { Publication } from "../../src/nats/acked_publisher.ts";
import { encodeKvKey } from "../../src/nats/kv_key.ts";
import { partitionOf } from "../../src/nats/partitions.ts";
import { publishAllAcked } from "../../src/nats/publish_retry.ts";
import { type CliProcess, readStream, runCli, streamCount, waitFor } from "./nats_server.ts";

const quiet = () => {};

/** The live configuration of `--nats-url url --backend cpu` and `extra` flags (no environment). */
export function liveConfig(url: string, extra: string[] = []): LiveConfig {
  return resolveLiveConfig(parseLiveFlags(["--nats-url", url, "--backend", "cpu", ...extra]), {});
}

/** `main.ts start` against `url` on the CPU, parameters every 200 ms, batches of 128; `extra` flags. */
export function spawnWorker(url: string, extra: string[] = []): CliProcess {
  return runCli([
    "start",
    "--nats-url",
    url,
    "--backend",
    "cpu",
    "--params-every-ms",
    "200",
    "--batch",
    "128",
    ...extra,
  ]);
}

/** True once the worker process runs (its signal handlers installed). */
export function running(w: CliProcess): boolean {
  return w.stderr().includes("[worker] running");
}

/** Waits until the worker process runs (a worker signalled before that exits 143). */
export async function waitRunning(w: CliProcess, what = "worker running"): Promise<void> {
  await waitFor(what, () => running(w), 150_000);
}

/** SIGKILLs the worker process and waits for its exit. */
export async function sigkill(w: CliProcess): Promise<void> {
  w.child.kill("SIGKILL");
  await w.status();
}

/** SIGTERMs the worker process and asserts it exits 0 (its stderr in the message). */
export async function sigtermExitsZero(w: CliProcess): Promise<void> {
  w.child.kill("SIGTERM");
  assert.equal((await w.status()).code, 0, w.stderr());
}

/** Waits until the scores stream holds at least `n` messages. */
export async function waitForScores(
  nc: NatsConnection,
  n: number,
  what = `${n} scores`,
  timeoutMs = 120_000,
): Promise<void> {
  await waitFor(what, async () => (await streamCount(nc, "TELEMETRY_SCORES")) >= n, timeoutMs);
}

/** Creates the input stream TELEMETRY on `telemetry.obs.>` (with `extra` settings). */
export async function addInputStream(
  nc: NatsConnection,
  extra: Partial<StreamConfig> = {},
): Promise<void> {
  await (await jetstreamManager(nc)).streams.add({
    name: "TELEMETRY",
    subjects: ["telemetry.obs.>"],
    ...extra,
  });
}

/** Publishes `pubs` in order, acked, `size` at a time (`pauseMs` between batches). */
export async function publishInBatches(
  nc: NatsConnection,
  pubs: readonly Publication[],
  size: number,
  pauseMs = 0,
): Promise<void> {
  for (let i = 0; i < pubs.length; i += size) {
    await publishAllAcked(jetstream(nc), pubs.slice(i, i + size), quiet);
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
}

/** Input messages, the observations they hold per key, and in all. */
export interface Inputs {
  readonly pubs: Publication[];
  readonly perKey: Map<string, number>;
  readonly obs: number;
}

/**
 * `n` input messages, message i to key `keys[i % keys.length]` with id `in-i`; every
 * `multiEvery`-th one a JSON array of `multiRows` rows, the others one observation.
 */
export function inputs(
  n: number,
  keys: readonly string[],
  multiEvery = 10,
  multiRows = 2,
): Inputs {
  const pubs: Publication[] = [];
  const perKey = new Map<string, number>();
  let obs = 0;
  for (let i = 0; i < n; i++) {
    const key = keys[i % keys.length];
    const x = [Math.sin(i * 0.7), Math.cos(i * 1.3), ((i * 7919) % 101) / 50];
    const multi = i % multiEvery === multiEvery - 1;
    const data = multi
      ? JSON.stringify(
        Array.from({ length: multiRows }, (_, r) => r === 0 ? { v: x } : x.map((v) => v + r / 10)),
      )
      : JSON.stringify({ v: x });
    const rows = multi ? multiRows : 1;
    perKey.set(key, (perKey.get(key) ?? 0) + rows);
    obs += rows;
    pubs.push({ subject: `telemetry.obs.${key}`, data, msgID: `in-${i}` });
  }
  return { pubs, perKey, obs };
}

/**
 * `f()`, tried again a second after each throw until `timeoutMs` has passed (then its last error):
 * once a cluster node stopped, JetStream requests time out until the raft groups it led have new
 * leaders, which on a loaded 2-core box took over 30 s (5 tries of a 5 s request were not enough).
 */
export async function retried<T>(f: () => Promise<T>, timeoutMs = 180_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await f();
    } catch (e) {
      if (Date.now() >= deadline) throw e;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/**
 * Checks the scores stream holds each input (sequence, index) exactly once, every input message,
 * and that each key's checkpoint and parameters count its observations exactly once. `partitions`:
 * checkpoints are kept per partition (`p<i>.<key>`).
 */
export async function assertExactlyOnce(
  nc: NatsConnection,
  input: Inputs,
  partitions?: number,
): Promise<void> {
  const { pubs, perKey, obs } = input;
  // A stored message is one record, or (--score-messages message) the array of one input's.
  const stored = await retried(() => readStream(nc, "TELEMETRY_SCORES"));
  const scores = stored.flatMap((m) => {
    const j = m.json<LiveScoreRecord | LiveScoreRecord[]>();
    return Array.isArray(j) ? j : [j];
  });
  assert.equal(scores.length, obs, "one score per observation");
  const seen = new Set<string>();
  for (const r of scores) {
    const id = `${r.stream_seq}:${r.index ?? "-"}`;
    assert.ok(!seen.has(id), `score ${id} twice`);
    seen.add(id);
  }
  assert.equal(seen.size, obs, "no observation scored twice");
  assert.equal(new Set(scores.map((r) => r.stream_seq)).size, pubs.length);
  const kvm = new Kvm(nc);
  const cps = await retried(() => kvm.open(topologyFor("telemetry").checkpointBucket));
  const params = await retried(() => kvm.open(topologyFor("telemetry").paramsBucket));
  for (const [key, n] of perKey) {
    const cpKey = partitions === undefined
      ? encodeKvKey(key)
      : `p${partitionOf(key, partitions)}.${encodeKvKey(key)}`;
    const e = await retried(() => cps.get(cpKey));
    assert.ok(e !== null, `checkpoint of ${key}`);
    assert.equal(Checkpoint.parse(e.json()).state.observations, n, `observations of ${key}`);
    await waitFor(`params of ${key}`, async () => {
      const p = await params.get(encodeKvKey(key));
      return p !== null && ParamsMessage.parse(p.json()).observations === n;
    }, 120_000);
  }
}
