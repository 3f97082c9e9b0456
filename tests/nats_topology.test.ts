/**
 * The worker's durable consumer is re-created from its ack floor: delivery resumes right after
 * the last acknowledged input, also when the consumer being replaced has acknowledged nothing yet
 * and the server restarted in between (nats-server then reports its ack floor as 0).
 */
import assert from "node:assert/strict";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { topologyFor } from "../src/config/live_config.ts";
import {
  ensureStreams,
  filterCovers,
  LEGACY_BUCKETS,
  openBuckets,
  resetConsumer,
} from "../src/nats/topology.ts";
import { Kvm } from "@nats-io/kv";
import { startNatsServer } from "./helpers/nats_server.ts";

Deno.test("the consumer is re-created right after its ack floor, across server restarts", async (t) => {
  await using srv = await startNatsServer();
  const topo = topologyFor("topo");
  const settings = { durable: "w", ackWaitMs: 2000 };
  const session = async <T>(fn: (nc: Awaited<ReturnType<typeof connect>>) => Promise<T>) => {
    const nc = await connect({ servers: srv.url });
    try {
      return await fn(nc);
    } finally {
      await nc.close();
    }
  };
  /** Fetches `n` messages and acks the last (AckPolicy.All); returns their stream sequences. */
  const consume = (n: number) =>
    session(async (nc) => {
      const c = await jetstream(nc).consumers.get(topo.inputStream, settings.durable);
      const seqs: number[] = [];
      const it = await c.fetch({ max_messages: n, expires: 2000 });
      for await (const m of it) {
        seqs.push(m.seq);
        if (seqs.length === n) await m.ackAck();
      }
      return seqs;
    });

  await session(async (nc) => {
    const jsm = await jetstreamManager(nc);
    await ensureStreams(jsm, topo);
    const js = jetstream(nc);
    for (let i = 1; i <= 20; i++) await js.publish(`topo.obs.k`, `{"v":[${i},0,0]}`);
  });
  const reset = () =>
    session(async (nc) => await resetConsumer(await jetstreamManager(nc), topo, settings));

  await t.step("a new consumer starts at the first message", async () => {
    assert.equal(await reset(), 1);
    assert.deepEqual(await consume(5), [1, 2, 3, 4, 5]);
  });
  await t.step("re-created after acking 5: starts at 6", async () => {
    assert.equal(await reset(), 6);
  });
  await t.step("re-created again before any ack, after a server restart: still 6", async () => {
    await srv.restart();
    assert.equal(await reset(), 6);
    assert.deepEqual(await consume(3), [6, 7, 8]);
  });
  await t.step("and after acking 8 and a restart: 9", async () => {
    await srv.restart();
    assert.equal(await reset(), 9);
  });
  await t.step("the consumer acks everything before an ack (AckPolicy.All)", async () => {
    const info = await session(async (nc) =>
      await (await jetstreamManager(nc)).consumers.info(topo.inputStream, settings.durable)
    );
    assert.equal(info.config.ack_policy, AckPolicy.All);
  });
});

Deno.test("output streams get the configured duplicate window; a shorter existing one is kept and warned about", async (t) => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  try {
    const jsm = await jetstreamManager(nc);
    const topo = topologyFor("win");
    await t.step("created with 120 s: the three output streams hold 120 s", async () => {
      const lines: string[] = [];
      await ensureStreams(jsm, topo, (l) => lines.push(l), 120e9);
      for (const name of [topo.scoresStream, topo.dlqStream, topo.alarmsStream]) {
        assert.equal((await jsm.streams.info(name)).config.duplicate_window, 120e9);
      }
      assert.deepEqual(lines, []);
    });
    await t.step("asked for 1800 s later: left at 120 s, with a warning per stream", async () => {
      const lines: string[] = [];
      await ensureStreams(jsm, topo, (l) => lines.push(l), 1800e9);
      assert.equal((await jsm.streams.info(topo.scoresStream)).config.duplicate_window, 120e9);
      assert.equal(lines.length, 3);
      assert.match(lines[0], /duplicate window of 120 s.*expected ≥ 1800 s/);
    });
  } finally {
    await nc.close();
  }
});

Deno.test("a new checkpoint bucket of the default prefix is seeded from the legacy shared bucket", async () => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  try {
    const kvm = new Kvm(nc);
    const legacy = await kvm.create(LEGACY_BUCKETS.checkpoints, { history: 1 });
    await legacy.put("pump_2d7", '{"last_seq":7}');
    const lines: string[] = [];
    const { checkpoints } = await openBuckets(nc, topologyFor("telemetry"), (l) => lines.push(l));
    assert.equal((await checkpoints.get("pump_2d7"))?.string(), '{"last_seq":7}');
    assert.equal(lines.length, 1);
    assert.match(lines[0], /copied 1 checkpoints/);
    // Another prefix never reads the legacy bucket: it was shared by every prefix.
    const other = await openBuckets(nc, topologyFor("plant"), (l) => lines.push(l));
    assert.equal(await other.checkpoints.get("pump_2d7"), null);
    assert.equal(lines.length, 1);
  } finally {
    await nc.close();
  }
});

Deno.test("subject filter coverage", () => {
  assert.ok(filterCovers("telemetry.obs.>", "telemetry.obs.>"));
  assert.ok(filterCovers("telemetry.>", "telemetry.obs.>"));
  assert.ok(filterCovers(">", "telemetry.obs.>"));
  assert.ok(!filterCovers("telemetry.obs.*", "telemetry.obs.>"));
  assert.ok(!filterCovers("telemetry.obs.a", "telemetry.obs.>"));
  assert.ok(!filterCovers("other.>", "telemetry.obs.>"));
});
