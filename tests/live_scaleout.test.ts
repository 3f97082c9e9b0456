/**
 * Scale-out: the partition mapping and its start-up probe, and several workers sharing the
 * partitions through leases, on one nats-server and on a 3-node cluster (R3): workers added,
 * SIGKILLed and a server node stopped mid-stream; every observation is scored exactly once and
 * every key's checkpoint counts each observation once.
 */
import assert from "node:assert/strict";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { parseLiveFlags, resolveLiveConfig, topologyFor } from "../src/config/live_config.ts";
import { partitionMapping, partitionOf, probePartitions } from "../src/nats/partitions.ts";
import { publishAllAcked } from "../src/nats/publish_retry.ts";
import { startNatsCluster } from "./helpers/nats_cluster.ts";
import {
  type CliProcess,
  readStream,
  startNatsServer,
  streamCount,
  waitFor,
} from "./helpers/nats_server.ts";
import {
  addInputStream,
  assertExactlyOnce,
  type Inputs,
  inputs as inputsOver,
  publishInBatches,
  sigkill as sigkillProcess,
  sigtermExitsZero,
  spawnWorker as spawnCpuWorker,
  waitForScores,
  waitRunning,
} from "./helpers/live_worker.ts";

const quiet = () => {};
const P = 16;
const KEYS = Array.from({ length: 48 }, (_, i) => i % 3 === 0 ? `site${i}.pump-${i}` : `m${i}`);

Deno.test("partitions: deploy/nats/partitions.conf is the mapping of prefix telemetry, P = 16", async () => {
  const text = await Deno.readTextFile(new URL("../deploy/nats/partitions.conf", import.meta.url));
  assert.ok(text.includes(partitionMapping("telemetry", 16)), "generated mapping in the file");
  const c = resolveLiveConfig(
    parseLiveFlags(["--nats-url", "nats://127.0.0.1:1,nats://127.0.0.1:2"]),
    {},
  );
  assert.equal(c.nats.url, "nats://127.0.0.1:1,nats://127.0.0.1:2");
  assert.deepEqual([c.partitions, c.replicas, c.leaseMs], [16, 1, 10_000]);
  assert.throws(
    () => resolveLiveConfig(parseLiveFlags(["--nats-url", "nats://a:1,http://b"]), {}),
    /NATS_URL|--nats-url/,
  );
});

Deno.test({
  name: "partitions: the probe sees the mapping, a different count, or none; partitionOf = server",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    {
      await using srv = await startNatsServer({ partitions: P });
      const nc = await connect({ servers: srv.url });
      try {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.add({ name: "TELEMETRY", subjects: ["telemetry.obs.>"] });
        assert.deepEqual(await probePartitions(nc, "telemetry", P), {
          mode: "partitioned",
          partitions: P,
        });
        const wrong = await probePartitions(nc, "telemetry", 8);
        assert.equal(wrong.mode, "mismatch");
        // Probes are refused by the input stream: nothing stored.
        assert.equal(await streamCount(nc, "TELEMETRY"), 0);
        await publishAllAcked(
          jetstream(nc),
          KEYS.map((k) => ({ subject: `telemetry.obs.${k}`, data: "[1,2,3]", msgID: k })),
          quiet,
        );
        const stored = await readStream(nc, "TELEMETRY");
        assert.deepEqual(
          stored.map((m) => m.subject),
          KEYS.map((k) => `telemetry.obs.${partitionOf(k, P)}.${k}`),
        );
      } finally {
        await nc.close();
      }
    }
    {
      await using srv = await startNatsServer();
      const nc = await connect({ servers: srv.url });
      try {
        assert.deepEqual(await probePartitions(nc, "telemetry", P), { mode: "none" });
      } finally {
        await nc.close();
      }
    }
  },
});

/** `n` input messages over KEYS; every 10th a JSON array of 2 rows. */
function inputs(n: number): Inputs {
  return inputsOver(n, KEYS);
}

/** A worker process with leases of 4 s (`extra` flags). */
function spawnWorker(url: string, extra: string[] = []): CliProcess {
  return spawnCpuWorker(url, ["--lease-ms", "4000", ...extra]);
}

/** Sum of unacked and undelivered messages over the `parts` partition consumers. */
async function pendingTotal(nc: NatsConnection, parts: number): Promise<number> {
  const jsm = await jetstreamManager(nc);
  let total = 0;
  let consumers = 0;
  for await (const ci of jsm.consumers.list("TELEMETRY")) {
    if (!ci.name.startsWith("mvn-worker-p")) continue;
    consumers++;
    total += ci.num_ack_pending + ci.num_pending;
  }
  return consumers === parts ? total : Infinity;
}

const verbose = Deno.env.get("MVN_TEST_VERBOSE") !== undefined;
const note = (what: string) => verbose && console.log(`${new Date().toISOString()} ${what}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Input messages published by one scenario at least, and after its action at least. */
const SCENARIO_MESSAGES = 1_200;
const AFTER_ACTION = 300;
/** While the action is still running, publishing pauses past this many (bounds the run). */
const SCENARIO_CAP = 3_000;
/** Paced publishing (at most ≈ 300 messages/s), so that actions land mid-stream. */
const BATCH = 50;
const PAUSE_MS = 150;

/**
 * Scenarios run one after another on the same server(s), streams and workers. Input message i is
 * always `inputs(∞).pubs[i]`, so after each scenario the input so far is `inputs(published)`:
 * the exactly-once check of a scenario covers everything published until then, and fails on the
 * first scenario that scored or learned an observation twice or never.
 */
class ScaleOutSession {
  readonly workers: CliProcess[];
  #published = 0;
  readonly #pool = inputs(SCENARIO_CAP * 4 + AFTER_ACTION * 4).pubs;

  constructor(
    readonly nc: NatsConnection,
    readonly parts: number,
    workers: CliProcess[],
  ) {
    this.workers = workers;
  }

  /**
   * Publishes input (paced), runs `action` once `at` more observations were scored, goes on
   * publishing until the action is done and {@link AFTER_ACTION} more messages went out (so the
   * action happens mid-stream), then checks exactly-once over everything published so far.
   */
  async scenario(what: string, action: () => Promise<void>, at = 500): Promise<void> {
    const start = this.#published;
    const before = inputs(start).obs;
    let actionDone = false;
    let acting: Promise<void> | undefined;
    let i = start;
    const publishing = (async () => {
      let after = 0;
      while (!(actionDone && i - start >= SCENARIO_MESSAGES && after >= AFTER_ACTION)) {
        if (i - start >= SCENARIO_CAP && !actionDone) {
          await acting?.catch(() => {});
          await sleep(100);
          continue;
        }
        const wasDone = actionDone;
        await publishInBatches(this.nc, this.#pool.slice(i, i + BATCH), BATCH);
        i += BATCH;
        if (wasDone) after += BATCH;
        await sleep(PAUSE_MS);
      }
    })();
    try {
      await waitForScores(this.nc, before + at, `${before + at} scores before: ${what}`, 90_000);
      note(what);
      acting = action();
      await acting;
      note(`${what}: done`);
    } finally {
      actionDone = true;
      await publishing;
    }
    this.#published = i;
    const input = inputs(i);
    note(`published ${i - start} in this scenario (${i} in all)`);
    await waitForScores(this.nc, input.obs, `all ${input.obs} scores`);
    await waitFor(
      "every partition committed",
      async () => (await pendingTotal(this.nc, this.parts)) === 0,
      90_000,
    );
    note("all committed");
    assert.equal(await streamCount(this.nc, "TELEMETRY_SCORES"), input.obs);
    await assertExactlyOnce(this.nc, input, this.parts);
  }

  /** SIGTERM: the workers alive exit 0. */
  async stopSurvivors(): Promise<void> {
    const alive = this.workers.filter((w) => !killed.has(w));
    // (A worker signalled before it is running exits 143: wait until it runs.)
    for (const w of alive) await waitRunning(w);
    await Promise.all(alive.map(sigtermExitsZero));
  }

  dumpLogs(): void {
    for (const [i, w] of this.workers.entries()) {
      console.error(`--- worker ${i}\n${w.stderr().slice(-6000)}`);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const w of this.workers) await w[Symbol.asyncDispose]();
    await this.nc.close();
  }
}

/**
 * Runs the steps of a session, each its own t.step; after a failed one the rest are skipped (they
 * would only wait out their deadlines) and the workers' logs printed.
 */
async function runSteps(
  t: Deno.TestContext,
  session: ScaleOutSession,
  steps: [string, () => Promise<void>][],
): Promise<void> {
  for (const [name, run] of steps) {
    if (!(await t.step(name, run))) {
      session.dumpLogs();
      return;
    }
  }
  if (verbose) session.dumpLogs();
}

/** Starts a worker and waits until it runs. */
async function addWorker(all: CliProcess[], url: string, extra: string[] = []): Promise<void> {
  const w = spawnWorker(url, extra);
  all.push(w);
  await waitRunning(w, "the new worker running");
}

const killed = new WeakSet<CliProcess>();

/** Partitions whose lease the worker holds (read from the lease bucket). */
async function leasesOf(nc: NatsConnection, w: CliProcess): Promise<number> {
  const id = /worker (\S+), leases in/.exec(w.stderr())?.[1];
  if (id === undefined) return 0;
  const kv = await new Kvm(nc).open(topologyFor("telemetry").leaseBucket);
  let n = 0;
  for await (const k of await kv.keys("p.*")) {
    const e = await kv.get(k);
    if (e?.operation === "PUT" && e.json<{ worker: string }>().worker === id) n++;
  }
  return n;
}

/**
 * SIGKILLs the worker holding the most partitions (the balance may leave one with none), so that
 * its death leaves partitions to take over.
 */
async function sigkillAnOwner(url: string, all: CliProcess[]): Promise<void> {
  const nc = await connect({ servers: url.split(",") });
  let victim: CliProcess | undefined;
  try {
    await waitFor("a worker holding a partition", async () => {
      let most = 0;
      for (const w of all.filter((w) => !killed.has(w))) {
        const n = await leasesOf(nc, w);
        if (n > most) [most, victim] = [n, w];
      }
      return most > 0;
    }, 60_000);
  } finally {
    await nc.close();
  }
  await sigkill(victim!);
}

async function sigkill(w: CliProcess): Promise<void> {
  killed.add(w);
  await sigkillProcess(w);
}

Deno.test({
  name: "scale-out, one server: a worker added, then one SIGKILLed, mid-stream: exactly once",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await using srv = await startNatsServer({ partitions: P });
    await using session = new ScaleOutSession(
      await connect({ servers: srv.url, maxReconnectAttempts: -1 }),
      P,
      [spawnWorker(srv.url), spawnWorker(srv.url)],
    );
    await addInputStream(session.nc, { duplicate_window: 30 * 60 * 1e9 });
    const all = session.workers;
    for (const w of all) await waitRunning(w);
    await runSteps(t, session, [
      [
        "a third worker added mid-stream: exactly once",
        () => session.scenario("add a third worker", () => addWorker(all, srv.url)),
      ],
      [
        "a worker holding partitions SIGKILLed mid-stream: exactly once",
        () => session.scenario("SIGKILL a worker", () => sigkillAnOwner(srv.url, all)),
      ],
      ["the survivors exit 0 on SIGTERM", () => session.stopSurvivors()],
    ]);
  },
});

Deno.test({
  name:
    "scale-out, 3-node cluster (R3): a worker added, one SIGKILLed, a server node stopped, each mid-stream: exactly once after each",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    // 4 partitions: each is an R3 consumer (a raft group), and 16 of them on a 2-core box made
    // every request slow while the node stopped. A final ack lost while the node stops is
    // redelivered after the ack wait (then only re-scored): a short one keeps the test short.
    // One cluster for the three scenarios: each is checked on everything published until then,
    // so reusing it loses nothing and saves a cluster start per scenario.
    const parts = 4;
    await using cluster = await startNatsCluster({ partitions: parts });
    const extra = ["--replicas", "3", "--ack-wait-ms", "5000", "--partitions", String(parts)];
    await using session = new ScaleOutSession(
      await connect({ servers: cluster.url.split(","), maxReconnectAttempts: -1 }),
      parts,
      [spawnWorker(cluster.url, extra), spawnWorker(cluster.url, extra)],
    );
    await addInputStream(session.nc, { num_replicas: 3, duplicate_window: 30 * 60 * 1e9 });
    const all = session.workers;
    for (const w of all) await waitRunning(w);
    await runSteps(t, session, [
      [
        "a third worker added mid-stream: exactly once",
        () => session.scenario("add a third worker", () => addWorker(all, cluster.url, extra)),
      ],
      [
        "a worker holding partitions SIGKILLed mid-stream: exactly once",
        () => session.scenario("SIGKILL a worker", () => sigkillAnOwner(cluster.url, all)),
      ],
      [
        "a nats-server node stopped mid-stream: exactly once",
        () => session.scenario("stop server node 1", () => cluster.stopNode(1)),
      ],
      ["the survivors exit 0 on SIGTERM", () => session.stopSurvivors()],
    ]);
  },
});
