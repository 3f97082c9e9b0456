/**
 * Delivery guarantees against a real nats-server: a worker killed with SIGKILL again and again,
 * a nats-server restarted mid-stream, and a graceful SIGTERM. After each, every input sequence is
 * in the scores stream exactly once and every key counted each observation exactly once.
 */
import assert from "node:assert/strict";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { parseLiveFlags, resolveLiveConfig, topologyFor } from "../src/config/live_config.ts";
import { Checkpoint, type LiveScoreRecord, ParamsMessage } from "../schemas/messages.ts";
import type { Publication } from "../src/nats/acked_publisher.ts";
import { publishAllAcked } from "../src/nats/publish_retry.ts";
import { startWorker } from "../src/live/worker.ts";
import { encodeKvKey } from "../src/nats/kv_key.ts";
import {
  type CliProcess,
  readStream,
  runCli,
  startNatsServer,
  streamCount,
  waitFor,
} from "./helpers/nats_server.ts";

const quiet = () => {};
const KEYS = ["m0", "m1", "m2", "m3"];

/** Message i: key KEYS[i % 4], one observation (every 10th message: an array of 2). */
/** `n` input messages; every `multiEvery`-th one is a JSON array of `multiRows` rows. */
function inputs(
  n: number,
  multiEvery = 10,
  multiRows = 2,
): { pubs: Publication[]; perKey: Map<string, number>; obs: number } {
  const pubs: Publication[] = [];
  const perKey = new Map<string, number>();
  let obs = 0;
  for (let i = 0; i < n; i++) {
    const key = KEYS[i % KEYS.length];
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

/** Checks the scores stream holds each input (sequence, index) exactly once, and the counts. */
async function assertExactlyOnce(
  nc: NatsConnection,
  nMessages: number,
  perKey: Map<string, number>,
  obs: number,
): Promise<void> {
  // A stored message is one record, or (--score-messages message) the array of one input's.
  const scores = (await readStream(nc, "TELEMETRY_SCORES")).flatMap((m) => {
    const j = m.json<LiveScoreRecord | LiveScoreRecord[]>();
    return Array.isArray(j) ? j : [j];
  });
  assert.equal(scores.length, obs, "one score per observation");
  const seen = new Set<string>();
  const seqs = new Set<number>();
  for (const r of scores) {
    const id = `${r.stream_seq}:${r.index ?? "-"}`;
    assert.ok(!seen.has(id), `score ${id} twice`);
    seen.add(id);
    seqs.add(r.stream_seq);
  }
  assert.equal(seqs.size, nMessages);
  const kvm = new Kvm(nc);
  const cps = await kvm.open(topologyFor("telemetry").checkpointBucket);
  const params = await kvm.open(topologyFor("telemetry").paramsBucket);
  for (const [key, n] of perKey) {
    const cp = Checkpoint.parse((await cps.get(encodeKvKey(key)))!.json());
    assert.equal(cp.state.observations, n, `checkpoint observations of ${key}`);
    await waitFor(`params of ${key}`, async () => {
      const e = await params.get(encodeKvKey(key));
      return e !== null && ParamsMessage.parse(e.json()).observations === n;
    }, 120_000);
  }
}

async function ackState(nc: NatsConnection) {
  const ci = await (await jetstreamManager(nc)).consumers.info("TELEMETRY", "mvn-worker");
  return { ackPending: ci.num_ack_pending, pending: ci.num_pending };
}

function spawnWorker(url: string, extra: string[] = []): CliProcess {
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

/**
 * Publishes `pubs` in the background while a worker (`extra` flags) is SIGKILLed each time the
 * scores stream holds `kills[i]` messages and started again; then checks that every observation
 * was scored and learned exactly once. `scoreMessages`: messages the scores stream ends with.
 */
async function killedWorkerRun(
  input: ReturnType<typeof inputs>,
  kills: readonly number[],
  scoreMessages: number,
  extra: string[] = [],
): Promise<void> {
  const { pubs, perKey, obs } = input;
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  // Publish in order in the background while the worker comes and goes.
  const publishing = (async () => {
    await (await jetstreamManager(nc)).streams.add({
      name: "TELEMETRY",
      subjects: ["telemetry.obs.>"],
    });
    for (let i = 0; i < pubs.length; i += 1000) {
      await publishAllAcked(jetstream(nc), pubs.slice(i, i + 1000), quiet);
    }
  })();
  let worker = spawnWorker(srv.url, extra);
  try {
    for (const at of kills) {
      await waitFor(
        `${at} score messages`,
        async () => (await streamCount(nc, "TELEMETRY_SCORES")) >= at,
        120_000,
      );
      worker.child.kill("SIGKILL");
      await worker.status();
      worker = spawnWorker(srv.url, extra);
    }
    await publishing;
    await waitFor(
      "all score messages",
      async () => (await streamCount(nc, "TELEMETRY_SCORES")) >= scoreMessages,
      120_000,
    );
    await waitFor("all acked", async () => (await ackState(nc)).ackPending === 0, 120_000);
    assert.equal(await streamCount(nc, "TELEMETRY_SCORES"), scoreMessages);
    await assertExactlyOnce(nc, pubs.length, perKey, obs);
    worker.child.kill("SIGTERM");
    assert.equal((await worker.status()).code, 0);
  } catch (e) {
    console.error(worker.stderr());
    throw e;
  } finally {
    await worker[Symbol.asyncDispose]();
    await nc.close();
  }
}

Deno.test({
  name: "exactly once: a worker SIGKILLed three times during 20,000 observations",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const input = inputs(18_200);
    assert.ok(input.obs >= 20_000);
    // One score message per observation.
    await killedWorkerRun(input, [2_500, 7_000, 12_000], input.obs);
  },
});

Deno.test({
  name: "exactly once with --score-messages message: a worker SIGKILLed twice, arrays of 8 rows",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // Every third message holds 8 rows; one score message per input message.
    const input = inputs(6_000, 3, 8);
    await killedWorkerRun(input, [1_000, 3_500], input.pubs.length, [
      "--score-messages",
      "message",
    ]);
  },
});

Deno.test({
  name: "exactly once: nats-server restarted mid-stream, the worker reconnects and loses nothing",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using srv = await startNatsServer();
    const config = resolveLiveConfig(
      parseLiveFlags([
        "--nats-url",
        srv.url,
        "--backend",
        "cpu",
        "--params-every-ms",
        "200",
        "--ack-wait-ms",
        "2000",
      ]),
      {},
    );
    const logs: string[] = [];
    const t0 = performance.now();
    // Each line with the time since the start: what a failure prints says where the time went.
    const log = (l: string) => logs.push(`${((performance.now() - t0) / 1000).toFixed(2)} s  ${l}`);
    await using worker = await startWorker(config, { log });
    const { pubs, perKey, obs } = inputs(6_000);
    const nc = await connect({
      servers: srv.url,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 200,
    });
    try {
      const publishing = (async () => {
        for (let i = 0; i < pubs.length; i += 500) {
          await publishAllAcked(jetstream(nc), pubs.slice(i, i + 500), quiet);
        }
      })();
      for (const at of [1500, 4000]) {
        await waitFor(
          `${at} scores`,
          async () => (await streamCount(nc, "TELEMETRY_SCORES")) >= at,
          120_000,
        );
        log(`test: ${at} scores, restarting the server`);
        await srv.restart();
        log("test: server restarted");
      }
      await publishing;
      log("test: all published");
      await waitFor(
        "all scores",
        async () => (await streamCount(nc, "TELEMETRY_SCORES")) >= obs,
        120_000,
      );
      log("test: all scored");
      let lastState = "";
      await waitFor("all acked", async () => {
        const ci = await (await jetstreamManager(nc)).consumers.info("TELEMETRY", "mvn-worker");
        const state = `ack pending ${ci.num_ack_pending}, pending ${ci.num_pending}, ` +
          `redelivered ${ci.num_redelivered}, waiting ${ci.num_waiting}, delivered ` +
          `${ci.delivered.stream_seq}, ack floor ${ci.ack_floor.stream_seq}`;
        if (state !== lastState) log(`test: consumer: ${state}`);
        lastState = state;
        return ci.num_ack_pending === 0;
      }, 120_000);
      log("test: all acked");
      await assertExactlyOnce(nc, pubs.length, perKey, obs);
      assert.ok(logs.filter((l) => / s {2}reconnected/.test(l)).length >= 2, "two reconnects");
      if (Deno.env.get("MVN_TEST_VERBOSE")) console.log(logs.join("\n"));
      await worker.stop();
    } catch (e) {
      console.error(logs.join("\n"));
      throw e;
    } finally {
      await nc.close();
    }
  },
});

Deno.test({
  name:
    "SIGTERM: the batch in flight is finished, nothing is left unacked, checkpoints at the last applied sequence",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using srv = await startNatsServer();
    const nc = await connect({ servers: srv.url });
    const { pubs, perKey, obs } = inputs(4_000);
    await (await jetstreamManager(nc)).streams.add({
      name: "TELEMETRY",
      subjects: ["telemetry.obs.>"],
    });
    await publishAllAcked(jetstream(nc), pubs, quiet);
    const lastSeqOf = new Map<string, number>();
    pubs.forEach((p, i) => lastSeqOf.set(p.subject.split(".").pop()!, i + 1));
    const cps = async () => {
      const kv = await new Kvm(nc).open(topologyFor("telemetry").checkpointBucket);
      return new Map(
        await Promise.all(KEYS.map(async (k) => {
          const e = await kv.get(encodeKvKey(k));
          return [k, e === null ? 0 : Checkpoint.parse(e.json()).last_seq] as const;
        })),
      );
    };
    try {
      // Mid-stream: stop while messages are still flowing.
      {
        await using w = spawnWorker(srv.url);
        await waitFor(
          "some scores",
          async () => (await streamCount(nc, "TELEMETRY_SCORES")) >= 800,
          120_000,
        );
        w.child.kill("SIGTERM");
        assert.equal((await w.status()).code, 0, w.stderr());
        assert.equal((await ackState(nc)).ackPending, 0);
        // Each key's checkpoint is the highest input sequence of that key that was scored.
        const scored = new Map<string, number>();
        for (const m of await readStream(nc, "TELEMETRY_SCORES")) {
          const r = m.json<LiveScoreRecord>();
          scored.set(r.key, Math.max(scored.get(r.key) ?? 0, r.stream_seq));
        }
        assert.deepEqual(await cps(), scored);
      }
      // Then to the end.
      {
        await using w = spawnWorker(srv.url);
        await waitFor(
          "all scores",
          async () => (await streamCount(nc, "TELEMETRY_SCORES")) >= obs,
          120_000,
        );
        w.child.kill("SIGTERM");
        assert.equal((await w.status()).code, 0, w.stderr());
        assert.deepEqual(await ackState(nc), { ackPending: 0, pending: 0 });
        assert.deepEqual(await cps(), lastSeqOf);
        await assertExactlyOnce(nc, pubs.length, perKey, obs);
      }
    } finally {
      await nc.close();
    }
  },
});
