/**
 * The live worker against a real nats-server: scores and parameters end to end (TCP and
 * WebSocket), the watch CLI, a barrage of bad input, configuration errors.
 */
import assert from "node:assert/strict";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { topologyFor } from "../src/config/live_config.ts";
import { liveConfig, running, spawnWorker, waitForScores } from "./helpers/live_worker.ts";
import { type LiveScoreRecord, ParamsMessage } from "../schemas/messages.ts";
import { encodeF32 } from "../src/wire/decode.ts";
import { publishFile } from "../src/nats/file_publisher.ts";
import type { Publication } from "../src/nats/acked_publisher.ts";
import { publishAllAcked } from "../src/nats/publish_retry.ts";
import { startWorker } from "../src/live/worker.ts";
import { encodeKvKey } from "../src/nats/kv_key.ts";
import {
  readStream,
  runCli,
  startNatsServer,
  streamCount,
  waitFor,
} from "./helpers/nats_server.ts";

const SAMPLE = new URL("../data/sample.ndjson", import.meta.url).pathname;
const quiet = () => {};

function config(url: string, extra: string[] = []) {
  return liveConfig(url, ["--params-every-ms", "200", ...extra]);
}

interface SampleRow {
  key: string;
  t: number;
  values: number[];
}

async function sampleRows(): Promise<SampleRow[]> {
  const text = await Deno.readTextFile(SAMPLE);
  return text.trim().split("\n").map((l) => {
    const o = JSON.parse(l);
    return { key: o.key, t: o.t, values: o.v ?? [o.x, o.y, o.z] };
  });
}

Deno.test({
  name:
    "end to end: a recorded stream gives one score per observation, parameters in KV and on the subject, watch prints them",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await using srv = await startNatsServer();
    const nc = await connect({ servers: srv.url });
    const paramsSeen = new Map<string, ParamsMessage>();
    const sub = nc.subscribe("telemetry.params.>", {
      callback: (_e, m) => {
        paramsSeen.set(m.subject, ParamsMessage.parse(m.json()));
      },
    });
    await using worker = await startWorker(config(srv.url), { log: quiet });
    const rows = await sampleRows();
    const summary = await publishFile(jetstream(nc), {
      path: SAMPLE,
      prefix: "telemetry",
      format: "json",
      perMessage: 1,
      log: quiet,
    });
    assert.equal(summary.observations, rows.length);
    await waitForScores(nc, rows.length, "all scores");
    const scores = await readStream(nc, "TELEMETRY_SCORES");

    await t.step(
      "one score per input message, with its time echoed and consecutive seq per key",
      () => {
        assert.equal(scores.length, rows.length);
        const bySeq = new Map<number, LiveScoreRecord>();
        for (const m of scores) {
          const r = m.json<LiveScoreRecord>();
          assert.equal(m.subject, `telemetry.scores.${r.key}`);
          bySeq.set(r.stream_seq, r);
        }
        assert.equal(bySeq.size, rows.length);
        const perKey = new Map<string, number>();
        for (let i = 0; i < rows.length; i++) {
          const r = bySeq.get(i + 1)!;
          assert.equal(r.key, rows[i].key);
          assert.equal(r.t, rows[i].t);
          const n = (perKey.get(r.key) ?? 0) + 1;
          perKey.set(r.key, n);
          assert.equal(r.seq, n);
        }
      },
    );

    await t.step("scores are consistent: contrib sums to mahalanobis2, p_value in [0, 1]", () => {
      for (const m of scores) {
        const r = m.json<LiveScoreRecord>();
        const sum = r.contrib.reduce((a: number, b) => a + (b ?? NaN), 0);
        assert.ok(Math.abs(sum - r.mahalanobis2!) <= 1e-9 * Math.max(1, r.mahalanobis2!));
        assert.ok(r.p_value! >= 0 && r.p_value! <= 1);
        assert.equal(r.contrib.length, 3);
      }
    });

    await t.step(
      "parameters in KV count every observation and sit near each key's sample mean",
      async () => {
        const kv = await new Kvm(nc).open(topologyFor("telemetry").paramsBucket);
        await waitFor("final parameters", async () => {
          for (const key of ["pump-a", "pump-b"]) {
            const e = await kv.get(encodeKvKey(key));
            if (e === null || ParamsMessage.parse(e.json()).observations !== 2500) return false;
          }
          return true;
        }, 120_000);
        for (const key of ["pump-a", "pump-b"]) {
          const p = ParamsMessage.parse((await kv.get(encodeKvKey(key)))!.json());
          const xs = rows.filter((r) => r.key === key).map((r) => r.values);
          for (let j = 0; j < 3; j++) {
            const mean = xs.reduce((a, x) => a + x[j], 0) / xs.length;
            const sd = Math.sqrt(xs.reduce((a, x) => a + (x[j] - mean) ** 2, 0) / xs.length);
            assert.ok(
              Math.abs(p.loc[j] - mean) < 0.5 * sd,
              `${key} loc[${j}] ${p.loc[j]} vs ${mean}`,
            );
            // covariance = L Lᵀ
            for (let k = 0; k < 3; k++) {
              let s = 0;
              for (let m = 0; m < 3; m++) s += p.scale_tril[j][m] * p.scale_tril[k][m];
              assert.ok(Math.abs(s - p.covariance[j][k]) <= 1e-6 * Math.max(1, Math.abs(s)));
            }
          }
        }
      },
    );

    await t.step("parameters are published on telemetry.params.<key>", async () => {
      await waitFor("params messages", () => paramsSeen.size >= 2, 120_000);
      assert.ok(paramsSeen.has("telemetry.params.pump-a"));
      assert.ok(paramsSeen.has("telemetry.params.pump-b"));
    });

    await t.step("the watch CLI prints the current parameters of every key", async () => {
      await using watch = runCli(["watch", "--server", srv.url]);
      await waitFor(
        "watch output",
        () => watch.stdout().includes('"pump-a"') && watch.stdout().includes('"pump-b"'),
        120_000,
      );
      const lines = watch.stdout().trim().split("\n").map((l) =>
        ParamsMessage.parse(JSON.parse(l))
      );
      assert.deepEqual(new Set(lines.map((p) => p.key)), new Set(["pump-a", "pump-b"]));
    });
    await t.step("the publish CLI plays a file as f32 blocks under one key", async () => {
      await using pub = runCli([
        "publish",
        SAMPLE,
        "--server",
        srv.url,
        "--format",
        "f32",
        "--per-message",
        "100",
        "--key",
        "blk",
      ]);
      assert.equal((await pub.status()).code, 0, pub.stderr());
      assert.match(pub.stderr(), /published 5000 observations in 50 messages/);
      await waitForScores(nc, 2 * rows.length, "block scores");
      const blk = (await readStream(nc, "TELEMETRY_SCORES"))
        .map((m) => m.json<LiveScoreRecord>())
        .filter((r) => r.key === "blk");
      assert.equal(blk.length, rows.length);
      const first = blk.filter((r) => r.stream_seq === blk[0].stream_seq);
      assert.deepEqual(first.map((r) => r.index), Array.from({ length: 100 }, (_, i) => i));
      assert.deepEqual(blk.map((r) => r.seq), Array.from({ length: rows.length }, (_, i) => i + 1));
    });

    sub.unsubscribe();
    await worker.stop();
    await nc.close();
  },
});

Deno.test({
  name: "a WebSocket (ws://) connection scores end to end",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using srv = await startNatsServer({ websocket: true });
    assert.ok(srv.wsUrl);
    await using worker = await startWorker(config(srv.wsUrl!), { log: quiet });
    const nc = await connect({ servers: srv.url });
    const pubs: Publication[] = Array.from({ length: 300 }, (_, i) => ({
      subject: `telemetry.obs.ws-${i % 2}`,
      data: JSON.stringify({ v: [i % 7, (i * 3) % 5, 1 + (i % 2)] }),
      msgID: `ws-${i}`,
    }));
    await publishAllAcked(jetstream(nc), pubs, quiet);
    await waitForScores(nc, 300, "300 scores");
    const recs = (await readStream(nc, "TELEMETRY_SCORES")).map((m) => m.json<LiveScoreRecord>());
    assert.deepEqual(new Set(recs.map((r) => r.stream_seq)).size, 300);
    await worker.stop();
    await nc.close();
  },
});

Deno.test({
  name:
    "a barrage of bad input all lands in the DLQ with reasons; every good observation is scored",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using srv = await startNatsServer();
    await using worker = await startWorker(config(srv.url, ["--max-message-bytes", "4096"]), {
      log: quiet,
    });
    const nc = await connect({ servers: srv.url });
    const kinds = ["malformed", "shape", "dimension", "non_finite", "oversize", "f32_length"];
    const bad = new Map<string, number>(kinds.map((k) => [k, 0]));
    const pubs: Publication[] = [];
    let good = 0;
    const badSeqs: number[] = [];
    for (let i = 0; i < 3000; i++) {
      const key = `k${i % 3}`;
      const subject = `telemetry.obs.${key}`;
      const x = [Math.sin(i), Math.cos(i), (i % 11) / 11];
      let data: string | Uint8Array;
      let headers: Record<string, string> | undefined;
      let kind: string | undefined;
      switch (i % 12) {
        case 1:
          data = `{"v":[1,2,`;
          kind = "malformed";
          break;
        case 3:
          data = i % 24 === 3 ? `{"w":[1,2,3]}` : `[{"v":[1,2,3]},"nope"]`;
          kind = "shape";
          break;
        case 5:
          data = i % 24 === 5 ? `{"v":[1,2]}` : `[[1,2,3],[1,2,3,4]]`;
          kind = "dimension";
          break;
        case 7:
          if (i % 24 === 7) {
            data = `{"v":[1,1e999,3]}`;
          } else {
            data = encodeF32([[1, NaN, 2]], 3);
            headers = { "Content-Type": "application/vnd.mvn.f32" };
          }
          kind = "non_finite";
          break;
        case 9:
          data = JSON.stringify({ v: x, pad: "x".repeat(5000) });
          kind = "oversize";
          break;
        case 11:
          data = new Uint8Array(14);
          headers = { "Content-Type": "application/vnd.mvn.f32" };
          kind = "f32_length";
          break;
        case 2:
          data = JSON.stringify([{ v: x }, x, { x: x[0], y: x[1], z: x[2] }]);
          good += 3;
          break;
        case 4:
          data = encodeF32([x, x], 3);
          headers = { "Content-Type": "application/vnd.mvn.f32" };
          good += 2;
          break;
        default:
          data = JSON.stringify({ v: x });
          good += 1;
      }
      if (kind !== undefined) {
        bad.set(kind, bad.get(kind)! + 1);
        badSeqs.push(i + 1);
      }
      pubs.push({ subject, data, msgID: `b-${i}`, headers });
    }
    // In order, so stream sequence i+1 is message i.
    for (let i = 0; i < pubs.length; i += 500) {
      await publishAllAcked(jetstream(nc), pubs.slice(i, i + 500), quiet);
    }
    const nBad = badSeqs.length;
    await waitFor(
      "dead letters and scores",
      async () =>
        (await streamCount(nc, "TELEMETRY_DLQ")) >= nBad &&
        (await streamCount(nc, "TELEMETRY_SCORES")) >= good,
      120_000,
    );
    const dead = await readStream(nc, "TELEMETRY_DLQ");
    assert.equal(dead.length, nBad);
    const reasons = new Map<string, number>();
    for (const d of dead) {
      const r = d.header("Mvn-Reason");
      reasons.set(r, (reasons.get(r) ?? 0) + 1);
      assert.match(d.header("Mvn-Subject"), /^telemetry\.obs\.k[012]$/);
      assert.ok(d.header("Mvn-Detail").length > 0);
      assert.equal(d.subject, d.header("Mvn-Subject").replace(".obs.", ".dlq."));
    }
    assert.deepEqual(Object.fromEntries(reasons), Object.fromEntries(bad));
    assert.deepEqual(
      dead.map((d) => Number(d.header("Mvn-Stream-Seq"))).sort((a, b) => a - b),
      badSeqs,
    );
    assert.equal(await streamCount(nc, "TELEMETRY_SCORES"), good);
    await worker.stop();
    const kv = await new Kvm(nc).open(topologyFor("telemetry").paramsBucket);
    let observed = 0;
    for (const key of ["k0", "k1", "k2"]) {
      const p = ParamsMessage.parse((await kv.get(encodeKvKey(key)))!.json());
      observed += p.observations;
      for (const v of [...p.loc, ...p.covariance.flat()]) assert.ok(Number.isFinite(v));
    }
    assert.equal(observed, good);
    const ci = await (await jetstreamManager(nc)).consumers.info("TELEMETRY", "mvn-worker");
    assert.equal(ci.num_ack_pending, 0);
    await nc.close();
  },
});

Deno.test("start: a bad environment value exits 2 naming the setting", async () => {
  await using bad = runCli(["start"], { NATS_URL: "http://127.0.0.1:1" });
  const st = await bad.status();
  assert.equal(st.code, 2);
  assert.match(bad.stderr(), /NATS_URL="http:\/\/127\.0\.0\.1:1"/);
  assert.match(bad.stderr(), /expected a nats:\/\//);
  await using flag = runCli(["start", "--batch", "many"], { NATS_URL: "nats://127.0.0.1:1" });
  assert.equal((await flag.status()).code, 2);
  assert.match(flag.stderr(), /--batch="many"/);
});

Deno.test({
  name:
    "start: one stop signal delivered twice at once (Ctrl-C under deno task) still stops gracefully",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using srv = await startNatsServer();
    await using w = spawnWorker(srv.url);
    await waitFor("the worker running", () => Promise.resolve(running(w)), 120_000);
    // The terminal signals the worker and `deno task`, which passes it on: the same signal again
    // a moment later (sent back to back, the two would be merged into one by the kernel).
    w.child.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 100));
    w.child.kill("SIGINT");
    assert.equal((await w.status()).code, 0, w.stderr());
    assert.match(w.stderr(), /stopped after \d+ observations/);
  },
});
