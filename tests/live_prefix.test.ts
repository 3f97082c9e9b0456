/**
 * Every stream and bucket name follows `--prefix`: two workers with different prefixes on one
 * server share nothing, and `watch` reads the bucket its prefix's worker writes, never creating one.
 */
import assert from "node:assert/strict";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { topologyFor } from "../src/config/live_config.ts";
import { liveConfig } from "./helpers/live_worker.ts";
import { Checkpoint, ParamsMessage } from "../schemas/messages.ts";
import { startWorker } from "../src/live/worker.ts";
import { encodeKvKey } from "../src/nats/kv_key.ts";
import { runCli, startNatsServer, streamCount, waitFor } from "./helpers/nats_server.ts";

const quiet = () => {};

function config(url: string, prefix: string) {
  return liveConfig(url, ["--prefix", prefix]);
}

Deno.test({
  name: "two workers with different prefixes on one server share no stream, bucket or key state",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await using srv = await startNatsServer();
    const nc = await connect({ servers: srv.url });
    const counts = { "plant-a": 120, "plant-b": 70 };
    const workers = await Promise.all(
      Object.keys(counts).map((p) => startWorker(config(srv.url, p), { log: quiet })),
    );
    try {
      const js = jetstream(nc);
      for (const [prefix, n] of Object.entries(counts)) {
        for (let i = 0; i < n; i++) {
          // The same key under both prefixes: its state must not mix.
          await js.publish(`${prefix}.obs.pump-1`, JSON.stringify({ v: [i % 5, (i * 7) % 3, 1] }), {
            msgID: `${prefix}-${i}`,
          });
        }
      }
      for (const [prefix, n] of Object.entries(counts)) {
        const topo = topologyFor(prefix);
        await waitFor(
          `${n} scores in ${topo.scoresStream}`,
          async () => (await streamCount(nc, topo.scoresStream)) >= n,
          60_000,
        );
      }

      await t.step("each prefix has its own streams, with only its own messages", async () => {
        for (const [prefix, n] of Object.entries(counts)) {
          const topo = topologyFor(prefix);
          assert.equal(await streamCount(nc, topo.inputStream), n);
          assert.equal(await streamCount(nc, topo.scoresStream), n);
        }
      });

      await t.step(
        "each prefix checkpoints the key in its own bucket, counting its own observations",
        async () => {
          const kvm = new Kvm(nc);
          for (const [prefix, n] of Object.entries(counts)) {
            const cps = await kvm.open(topologyFor(prefix).checkpointBucket);
            await waitFor(`${prefix} checkpoint of all ${n}`, async () => {
              const e = await cps.get(encodeKvKey("pump-1"));
              return e !== null && Checkpoint.parse(e.json()).state.observations === n;
            }, 60_000);
            const params = await kvm.open(topologyFor(prefix).paramsBucket);
            await waitFor(`${prefix} parameters of all ${n}`, async () => {
              const e = await params.get(encodeKvKey("pump-1"));
              return e !== null && ParamsMessage.parse(e.json()).observations === n;
            }, 60_000);
          }
        },
      );

      await t.step("no bucket outside the two prefixes exists (none shared)", async () => {
        const jsm = await jetstreamManager(nc);
        const names: string[] = [];
        for await (const s of jsm.streams.list()) names.push(s.config.name);
        const expected = Object.keys(counts).flatMap((p) => {
          const topo = topologyFor(p);
          return [
            topo.inputStream,
            topo.scoresStream,
            topo.dlqStream,
            topo.alarmsStream,
            `KV_${topo.paramsBucket}`,
            `KV_${topo.checkpointBucket}`,
          ];
        });
        assert.deepEqual(names.sort(), expected.sort());
      });

      await t.step("watch --prefix reads that prefix's parameters", async () => {
        await using watch = runCli(["watch", "--server", srv.url, "--prefix", "plant-b", "--once"]);
        assert.equal((await watch.status()).code, 0);
        const lines = watch.stdout().trim().split("\n").map((l) =>
          ParamsMessage.parse(JSON.parse(l))
        );
        assert.deepEqual(lines.map((p) => [p.key, p.observations]), [["pump-1", 70]]);
      });

      await t.step(
        "watch of a prefix no worker wrote exits 1 naming the bucket, and creates none",
        async () => {
          await using watch = runCli(["watch", "--server", srv.url, "--once"]);
          const status = await watch.status();
          assert.equal(status.code, 1);
          assert.match(watch.stderr(), /telemetry_params/);
          const jsm = await jetstreamManager(nc);
          for await (const s of jsm.streams.list()) {
            assert.notEqual(s.config.name, "KV_telemetry_params");
          }
        },
      );
    } finally {
      for (const w of workers) await w.stop();
      await nc.close();
    }
  },
});
