/**
 * The scoring service against a real nats-server and worker: discoverable with $SRV.PING / INFO /
 * STATS; a reply equals an independent computation from the key's parameters in KV; nothing is
 * learned or counted; bad requests get error replies with codes, counted in the stats. And the
 * typed client: params() yields the stored value first, then an update; score() works.
 */
import assert from "node:assert/strict";
import { jetstream } from "@nats-io/jetstream";
import { headers } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { topologyFor } from "../src/config/live_config.ts";
import { liveConfig } from "./helpers/live_worker.ts";
import { Checkpoint, F32_CONTENT_TYPE, ParamsMessage } from "../schemas/messages.ts";
import { ServiceErrorReply, ServiceScoreReply } from "../schemas/service.ts";
import { startWorker } from "../src/live/worker.ts";
import { encodeKvKey } from "../src/nats/kv_key.ts";
import { encodeF32 } from "../src/wire/decode.ts";
import { MvnClient, ScoreServiceError } from "../src/client/client.ts";
import { readStream, startNatsServer, waitFor } from "./helpers/nats_server.ts";

const PREFIX = "svc-test";
const KEY = "site.pump-7";
const N = 300; // past the default warm-up (256), so anomalies are flagged

/** Independent log N(x; loc, L Lᵀ) and Mahalanobis²: forward substitution of L z = x − loc. */
function mvnLogProb(x: number[], loc: number[], L: number[][]): { logProb: number; m2: number } {
  const d = x.length;
  const z: number[] = [];
  let m2 = 0;
  let logDet = 0;
  for (let a = 0; a < d; a++) {
    let s = x[a] - loc[a];
    for (let b = 0; b < a; b++) s -= L[a][b] * z[b];
    z.push(s / L[a][a]);
    m2 += z[a] * z[a];
    logDet += Math.log(L[a][a]);
  }
  return { logProb: -0.5 * m2 - logDet - 0.5 * d * Math.log(2 * Math.PI), m2 };
}

function close(a: number, b: number, what: string): void {
  assert.ok(
    Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b)),
    `${what}: expected ${b}, found ${a}`,
  );
}

function obs(i: number): number[] {
  return [Math.sin(i) * 2 + 10, Math.cos(i * 0.7) - 3, ((i * 37) % 11) / 5];
}

Deno.test({
  name: "scoring service: discoverable, scores against current parameters without learning",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await using srv = await startNatsServer();
    const nc = await connect({ servers: srv.url });
    const config = liveConfig(srv.url, ["--prefix", PREFIX, "--params-every-ms", "50"]);
    const worker = await startWorker(config, { log: () => {} });
    const topo = topologyFor(PREFIX);
    try {
      const js = jetstream(nc);
      for (let i = 0; i < N; i++) {
        await js.publish(`${PREFIX}.obs.${KEY}`, JSON.stringify({ v: obs(i) }), {
          msgID: `o-${i}`,
        });
      }
      const kvm = new Kvm(nc);
      const paramsKv = await kvm.open(topo.paramsBucket);
      const cpKv = await kvm.open(topo.checkpointBucket);
      let params: ParamsMessage | undefined;
      await waitFor(`parameters and checkpoint of all ${N} observations`, async () => {
        const p = await paramsKv.get(encodeKvKey(KEY));
        const c = await cpKv.get(encodeKvKey(KEY));
        if (p === null || c === null) return false;
        params = ParamsMessage.parse(p.json());
        return params.observations === N && Checkpoint.parse(c.json()).state.observations === N;
      }, 60_000);
      assert.ok(params !== undefined);
      const subject = `${PREFIX}.svc.score.${KEY}`;

      await t.step("$SRV.PING / $SRV.INFO name the service and its endpoint subject", async () => {
        const ping = (await nc.request("$SRV.PING.mvn", "", { timeout: 10_000 })).json<
          { name: string; type: string }
        >();
        assert.equal(ping.name, "mvn");
        assert.equal(ping.type, "io.nats.micro.v1.ping_response");
        const info = (await nc.request("$SRV.INFO.mvn", "", { timeout: 10_000 })).json<
          { name: string; endpoints: { name: string; subject: string }[] }
        >();
        assert.equal(info.name, "mvn");
        assert.deepEqual(
          info.endpoints.map((e) => [e.name, e.subject]),
          [["score", `${PREFIX}.svc.score.>`]],
        );
      });

      const x = [[10.5, -2.5, 1], [40, 40, 40]];
      await t.step("a reply equals the formula on the key's current parameters", async () => {
        const reply = await nc.request(subject, JSON.stringify(x.map((v) => ({ v, t: "now" }))), {
          timeout: 10_000,
        });
        assert.equal(reply.headers?.get("Nats-Service-Error-Code") ?? "", "");
        const records = ServiceScoreReply.parse(reply.json());
        assert.equal(records.length, 2);
        for (let i = 0; i < x.length; i++) {
          const want = mvnLogProb(x[i], params!.loc, params!.scale_tril);
          close(records[i].log_prob!, want.logProb, `log_prob of row ${i}`);
          close(records[i].mahalanobis2!, want.m2, `mahalanobis2 of row ${i}`);
          assert.equal(records[i].key, KEY);
          assert.equal(records[i].index, i);
          assert.equal(records[i].t, "now");
          assert.equal(records[i].seq, N, "seq: the key's observation count, unchanged");
        }
        assert.equal(records[1].anomaly, true);
        // One observation (not an array), and an f32 block of two.
        const one = ServiceScoreReply.parse(
          (await nc.request(subject, JSON.stringify({ v: x[0] }), { timeout: 10_000 })).json(),
        );
        assert.equal(one.length, 1);
        assert.equal(one[0].index, undefined);
        close(one[0].log_prob!, records[0].log_prob!, "single-observation log_prob");
        const h = headers();
        h.set("Content-Type", F32_CONTENT_TYPE);
        const f32 = ServiceScoreReply.parse(
          (await nc.request(subject, encodeF32(x, 3), { timeout: 10_000, headers: h })).json(),
        );
        assert.equal(f32.length, 2);
        const xf = x[0].map((v) => Math.fround(v));
        close(
          f32[0].log_prob!,
          mvnLogProb(xf, params!.loc, params!.scale_tril).logProb,
          "f32 log_prob",
        );
      });

      const errors: [string, Uint8Array | string, string | undefined, number, string][] = [
        ["unknown key", JSON.stringify({ v: [1, 2, 3] }), undefined, 404, "unknown_key"],
        ["wrong dimension", JSON.stringify({ v: [1, 2] }), undefined, 422, "dimension"],
        ["malformed JSON", "{not json", undefined, 400, "malformed"],
        ["f32 of the wrong length", new Uint8Array(10), F32_CONTENT_TYPE, 400, "f32_length"],
        ["non-finite value", "[1, 2, 1e999]", undefined, 422, "non_finite"],
      ];
      await t.step("bad requests get error replies with codes", async () => {
        for (const [what, body, ct, code, reason] of errors) {
          const h = headers();
          if (ct !== undefined) h.set("Content-Type", ct);
          const subj = what === "unknown key" ? `${PREFIX}.svc.score.nobody` : subject;
          const reply = await nc.request(subj, body, { timeout: 10_000, headers: h });
          assert.equal(reply.headers?.get("Nats-Service-Error-Code"), String(code), what);
          assert.ok((reply.headers?.get("Nats-Service-Error") ?? "").length > 0, what);
          const err = ServiceErrorReply.parse(reply.json());
          assert.equal(err.error.code, code, what);
          assert.equal(err.error.reason, reason, what);
        }
      });

      await t.step("stats count requests and errors", async () => {
        const stats = (await nc.request("$SRV.STATS.mvn", "", { timeout: 10_000 })).json<
          { endpoints: { name: string; num_requests: number; num_errors: number }[] }
        >();
        const ep = stats.endpoints.find((e) => e.name === "score");
        assert.ok(ep !== undefined);
        assert.equal(ep.num_requests, 3 + errors.length);
        assert.equal(ep.num_errors, errors.length);
      });

      await t.step("nothing was learned, counted or created", async () => {
        const p = ParamsMessage.parse((await paramsKv.get(encodeKvKey(KEY)))!.json());
        assert.equal(p.observations, N);
        assert.deepEqual(p.loc, params!.loc);
        const cp = Checkpoint.parse((await cpKv.get(encodeKvKey(KEY)))!.json());
        assert.equal(cp.state.observations, N);
        assert.equal(await paramsKv.get(encodeKvKey("nobody")), null);
        // The next observation is the key's (N+1)-th, scored with the parameters from before.
        const next = obs(N);
        await js.publish(`${PREFIX}.obs.${KEY}`, JSON.stringify({ v: next }), { msgID: "next" });
        await waitFor("the next score", async () => {
          const info = await (await js.streams.get(topo.scoresStream)).info();
          return info.state.messages >= N + 1;
        }, 60_000);
        const last = (await readStream(nc, topo.scoresStream)).at(-1)!.json<
          { seq: number; log_prob: number }
        >();
        assert.equal(last.seq, N + 1);
        close(last.log_prob, mvnLogProb(next, params!.loc, params!.scale_tril).logProb, "next");
      });

      await t.step("client: params() yields the stored value first, then an update", async () => {
        const client = new MvnClient(nc, PREFIX);
        const feed = client.params("site.*");
        const it = feed[Symbol.asyncIterator]();
        const first = await it.next();
        assert.equal(first.done, false);
        assert.equal(first.value!.key, KEY);
        assert.ok(first.value!.observations >= N);
        for (let i = 0; i < 5; i++) {
          await js.publish(`${PREFIX}.obs.${KEY}`, JSON.stringify({ v: obs(N + 1 + i) }), {
            msgID: `more-${i}`,
          });
        }
        let update = await it.next();
        while (!update.done && update.value.observations < N + 6) update = await it.next();
        assert.equal(update.done, false);
        assert.equal(update.value!.observations, N + 6);
        await feed.close();
      });

      await t.step("client: score() returns records; an error reply is a typed error", async () => {
        const client = new MvnClient(nc, PREFIX);
        const recs = await client.score(KEY, [{ v: [10, -3, 1] }, [10, -3, 1]]);
        assert.equal(recs.length, 2);
        close(recs[0].log_prob!, recs[1].log_prob!, "same row, two forms");
        const f32 = await client.score(KEY, [[10, -3, 1]], { f32: true });
        close(f32[0].log_prob!, recs[0].log_prob!, "f32 form");
        await assert.rejects(
          client.score("nobody", [[1, 2, 3]]),
          (e) => e instanceof ScoreServiceError && e.code === 404 && e.reason === "unknown_key",
        );
      });

      await t.step("requests served while batches are learned see whole batches only", async () => {
        const before = (await new MvnClient(nc, PREFIX).score(KEY, [[10, -3, 1]]))[0].seq;
        const M = 400;
        const publishing = (async () => {
          for (let i = 0; i < M; i++) {
            await js.publish(`${PREFIX}.obs.${KEY}`, JSON.stringify({ v: obs(2 * N + i) }), {
              msgID: `race-${i}`,
            });
          }
        })();
        const client = new MvnClient(nc, PREFIX);
        let last = before;
        for (let r = 0; r < 40; r++) {
          const recs = await client.score(KEY, [[10, -3, 1], [11, -2, 1.5]]);
          // Both rows scored by one set of parameters: the same seq; never going backwards.
          assert.equal(recs[0].seq, recs[1].seq);
          assert.ok(recs[0].seq >= last, `seq ${recs[0].seq} after ${last}`);
          last = recs[0].seq;
        }
        await publishing;
        await waitFor(`all ${M} more observations counted`, async () => {
          const recs = await client.score(KEY, [[10, -3, 1]]);
          return recs[0].seq === before + M;
        }, 60_000);
      });

      await t.step("client: scores() and anomalies() yield parsed records", async () => {
        const client = new MvnClient(nc, PREFIX);
        const scores = client.scores(KEY);
        const anomalies = client.anomalies(">");
        await nc.flush();
        await js.publish(`${PREFIX}.obs.${KEY}`, JSON.stringify({ v: [99, 99, 99] }), {
          msgID: "outlier",
        });
        const s = await scores[Symbol.asyncIterator]().next();
        const a = await anomalies[Symbol.asyncIterator]().next();
        assert.equal(s.value!.key, KEY);
        assert.equal(s.value!.anomaly, true);
        assert.equal(a.value!.stream_seq, s.value!.stream_seq);
        await scores.close();
        await anomalies.close();
      });

      await t.step("the service stops with the worker", async () => {
        await worker.stop();
        await assert.rejects(nc.request("$SRV.PING.mvn", "", { timeout: 2_000 }));
      });
    } finally {
      await worker.stop();
      await nc.close();
    }
  },
});
