/**
 * The conditional head in the live path: decoding features (JSON `features`, f32 blocks with
 * `Mvn-Features`), dead letters with reason `features`, and end to end against a real nats-server:
 * every good observation scored, swapped-mode anomalies flagged, parameters carry the network.
 */
import assert from "node:assert/strict";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { headers } from "@nats-io/nats-core";
import { topologyFor } from "../src/config/live_config.ts";
import { F32_CONTENT_TYPE, type LiveScoreRecord, ParamsMessage } from "../schemas/messages.ts";
import { ServiceScoreReply } from "../schemas/service.ts";
import { decodeMessage, encodeF32 } from "../src/wire/decode.ts";
import type { Publication } from "../src/nats/acked_publisher.ts";
import { publishAllAcked } from "../src/nats/publish_retry.ts";
import { startWorker } from "../src/live/worker.ts";
import { encodeKvKey } from "../src/nats/kv_key.ts";
import { readStream, startNatsServer, streamCount, waitFor } from "./helpers/nats_server.ts";
import {
  modePublications,
  MODES_3D,
  modeStream,
  normalSampler,
  sample,
} from "./helpers/conditional.ts";
import { liveConfig, waitForScores } from "./helpers/live_worker.ts";

const enc = new TextEncoder();
/** The conditional head on 3 features. */
const CONDITIONAL = ["--head", "conditional", "--features", "3"];
const S = { dim: 3, obsPrefix: "telemetry.obs.", maxBytes: 1 << 20, features: 2 };

Deno.test("decode: features in JSON and f32 blocks; missing or wrong-length ones are dead letters", () => {
  const msg = (data: string | Uint8Array, extra: object = {}) => ({
    subject: "telemetry.obs.k",
    data: typeof data === "string" ? enc.encode(data) : data,
    ...extra,
  });
  const one = decodeMessage(msg(`{"v":[1,2,3],"features":[0.5,1]}`), S);
  assert.ok(one.ok);
  assert.deepEqual(Array.from(one.rows[0].features!), [0.5, 1]);
  const arr = decodeMessage(
    msg(`[{"v":[1,2,3],"features":[0,1]},{"v":[1,2,3],"features":[1,0]}]`),
    S,
  );
  assert.ok(arr.ok && arr.rows.length === 2);
  for (
    const [data, detail] of [
      [`{"v":[1,2,3]}`, /expected "features": \[2 numbers\], found none/],
      [`{"v":[1,2,3],"features":[1]}`, /found 1/],
      [`[{"v":[1,2,3],"features":[0,1]},{"v":[1,2,3]}]`, /row 1/],
    ] as const
  ) {
    const d = decodeMessage(msg(data), S);
    assert.ok(!d.ok && d.reason === "features", JSON.stringify(d));
    assert.match(d.detail, detail);
  }
  const nonFinite = decodeMessage(msg(`{"v":[1,2,3],"features":[1,1e999]}`), S);
  assert.ok(!nonFinite.ok && nonFinite.reason === "non_finite");
  // f32: rows of d + K floats with Mvn-Features: K.
  const block = encodeF32([[1, 2, 3, 0.25, 4], [4, 5, 6, 1, 0]], 5);
  const f = decodeMessage(msg(block, { contentType: F32_CONTENT_TYPE, features: "2" }), S);
  assert.ok(f.ok);
  assert.deepEqual(Array.from(f.rows[1].values), [4, 5, 6]);
  assert.deepEqual(Array.from(f.rows[0].features!), [0.25, 4]);
  const noHeader = decodeMessage(msg(block, { contentType: F32_CONTENT_TYPE }), S);
  assert.ok(!noHeader.ok && noHeader.reason === "features");
  // Time features: every observation needs a readable t.
  const timed = { ...S, features: 0, timed: true };
  assert.ok(decodeMessage(msg(`{"v":[1,2,3],"t":"2024-01-01T00:00:00Z"}`), timed).ok);
  const noTime = decodeMessage(msg(`{"v":[1,2,3]}`), timed);
  assert.ok(!noTime.ok && noTime.reason === "features");
  // Without a conditional head features are passed on but never required.
  assert.ok(decodeMessage(msg(`{"v":[1,2,3]}`), { ...S, features: 0 }).ok);
});

Deno.test({
  name: "live end to end with --head conditional: scores, dead letters, anomalies, parameters",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using srv = await startNatsServer();
    const config = liveConfig(srv.url, [
      "--params-every-ms",
      "200",
      ...CONDITIONAL,
      "--hidden",
      "32,32",
    ]);
    assert.equal(config.head.head, "conditional");
    await using _worker = await startWorker(config, { log: () => {} });
    const nc = await connect({ servers: srv.url });
    const n = 10_000;
    const s = modeStream(n, MODES_3D, 41);
    const pubs: Publication[] = modePublications(s, 0, n, 100, "telemetry.obs.pump", "m");
    // Bad ones: no features, wrong count, an f32 block without its header.
    pubs.push({ subject: "telemetry.obs.pump", data: `{"v":[1,2,3]}`, msgID: "bad-1" });
    pubs.push({
      subject: "telemetry.obs.pump",
      data: `{"v":[1,2,3],"features":[1]}`,
      msgID: "bad-2",
    });
    pubs.push({
      subject: "telemetry.obs.pump",
      data: encodeF32([[1, 2, 3]], 3),
      msgID: "bad-3",
      headers: { "Content-Type": F32_CONTENT_TYPE },
    });
    // Then anomalies: values drawn from mode (m + 1) mod 3 under mode m's features, as f32 rows
    // with their features (Mvn-Features: 3), and as many normal rows.
    const normal = normalSampler(77);
    const tail: number[][] = [];
    const isAnomaly: boolean[] = [];
    for (let r = 0; r < 300; r++) {
      const m = r % 3;
      const f = [0, 0, 0];
      f[m] = 1;
      const swapped = r % 2 === 0;
      tail.push([...sample(MODES_3D[swapped ? (m + 2) % 3 : m], normal), ...f]);
      isAnomaly.push(swapped);
    }
    pubs.push({
      subject: "telemetry.obs.pump",
      data: encodeF32(tail, 6),
      msgID: "tail",
      headers: { "Content-Type": F32_CONTENT_TYPE, "Mvn-Features": "3" },
    });
    await publishAllAcked(jetstream(nc), pubs, () => {});
    const good = n + tail.length;
    await waitFor(
      "scores and dead letters",
      async () =>
        (await streamCount(nc, "TELEMETRY_SCORES")) >= good &&
        (await streamCount(nc, "TELEMETRY_DLQ")) >= 3,
      120_000,
    );
    const dead = await readStream(nc, "TELEMETRY_DLQ");
    assert.deepEqual(dead.map((d) => d.header("Mvn-Reason")), ["features", "features", "features"]);
    const scores = (await readStream(nc, "TELEMETRY_SCORES")).map((m) => m.json<LiveScoreRecord>());
    assert.equal(scores.length, good);
    const last = scores.slice(n);
    let tp = 0, fp = 0, pos = 0;
    last.forEach((rec, i) => {
      if (isAnomaly[i]) {
        pos++;
        if (rec.anomaly) tp++;
      } else if (rec.anomaly) fp++;
    });
    // Anomalies kept only where truly far: most swapped draws are (mode m + 2 is far from m).
    assert.ok(tp / pos >= 0.8, `recall ${tp}/${pos}`);
    assert.ok(fp <= 3, `false positives ${fp} of ${last.length - pos}`);
    const kv = await new Kvm(nc).open(topologyFor("telemetry").paramsBucket);
    await waitFor("params in KV", async () => {
      const e = await kv.get(encodeKvKey("pump"));
      return e !== null && e.length > 0 && ParamsMessage.parse(e.json()).observations >= good;
    }, 10_000);
    const params = ParamsMessage.parse((await kv.get(encodeKvKey("pump")))!.json());
    assert.equal(params.head, "conditional");
    assert.deepEqual(params.architecture?.hidden, [32, 32]);
    assert.equal(params.context?.length, 3);
    // The scoring service takes the same context: a mode-0 value is normal with mode-0
    // features and an anomaly with mode-2 features; without features it is refused.
    const ask = async (body: unknown) =>
      await nc.request("telemetry.svc.score.pump", JSON.stringify(body), { timeout: 10_000 });
    const reply = ServiceScoreReply.parse(
      (await ask([{ v: [0, 0, 0], features: [1, 0, 0] }, { v: [0, 0, 0], features: [0, 0, 1] }]))
        .json(),
    );
    assert.deepEqual(reply.map((r) => r.anomaly), [false, true]);
    const h = headers();
    h.set("Content-Type", F32_CONTENT_TYPE);
    h.set("Mvn-Features", "3");
    const block = encodeF32([[0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 1]], 6);
    const f32 = ServiceScoreReply.parse(
      (await nc.request("telemetry.svc.score.pump", block, { timeout: 10_000, headers: h })).json(),
    );
    assert.deepEqual(f32.map((r) => r.anomaly), [false, true]);
    const refused = await ask({ v: [0, 0, 0] });
    assert.equal(refused.headers?.get("Nats-Service-Error-Code"), "422");
    await nc.close();
  },
});

Deno.test({
  name: "live --head conditional: a restarted worker resumes the key from its checkpoint",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using srv = await startNatsServer();
    const config = liveConfig(srv.url, ["--params-every-ms", "100", ...CONDITIONAL]);
    const nc = await connect({ servers: srv.url });
    const s = modeStream(3000, MODES_3D, 43);
    const publish = async (from: number, to: number) => {
      const pubs = modePublications(s, from, to, 50, "telemetry.obs.k", "r");
      await publishAllAcked(jetstream(nc), pubs, () => {});
    };
    const kv = await new Kvm(nc).open(topologyFor("telemetry").paramsBucket);
    const paramsAt = async (obs: number) => {
      await waitFor(`params after ${obs} observations`, async () => {
        const e = await kv.get(encodeKvKey("k"));
        return e !== null && e.length > 0 && ParamsMessage.parse(e.json()).observations >= obs;
      }, 60_000);
      return ParamsMessage.parse((await kv.get(encodeKvKey("k")))!.json());
    };
    let first: ParamsMessage;
    {
      await using _w = await startWorker(config, { log: () => {} });
      await publish(0, 1500);
      first = await paramsAt(1500);
    }
    {
      await using _w = await startWorker(config, { log: () => {} });
      await publish(1500, 3000);
      const second = await paramsAt(3000);
      // Resumed: the count went on from the checkpoint and the network kept learning.
      assert.equal(second.observations, 3000);
      assert.ok(second.version! > first.version!, `${second.version} > ${first.version}`);
      assert.equal(second.head, "conditional");
    }
    await waitForScores(nc, 3000, "scores");
    assert.equal(await streamCount(nc, "TELEMETRY_SCORES"), 3000);
    await nc.close();
  },
});
