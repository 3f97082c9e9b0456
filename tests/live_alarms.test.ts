/**
 * Alarms and the worst readings against a real nats-server: a finite 1e300 reading is scored
 * (anomaly, saturated values, no dead letter) and raises an alarm episode on
 * `telemetry.alarms.<key>` in stream TELEMETRY_ALARMS, with a Nats-Msg-Id from key and seqs.
 */
import assert from "node:assert/strict";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { liveConfig } from "./helpers/live_worker.ts";
import { LiveScoreRecord } from "../schemas/messages.ts";
import { AlarmEpisode } from "../schemas/alarm.ts";
import type { Publication } from "../src/nats/acked_publisher.ts";
import { publishAllAcked } from "../src/nats/publish_retry.ts";
import { startWorker } from "../src/live/worker.ts";
import { readStream, startNatsServer, streamCount, waitFor } from "./helpers/nats_server.ts";
import { gaussian, rng } from "./helpers/synthetic.ts";

const quiet = () => {};

Deno.test({
  name:
    "live: a 1e300 reading is scored anomalous and saturated, not dead-lettered, and its alarm episode is published once",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using srv = await startNatsServer();
    const config = liveConfig(srv.url, ["--warmup", "50"]);
    await using worker = await startWorker(config, { log: quiet });
    const nc = await connect({ servers: srv.url });
    const g = gaussian(rng(5));
    const pubs: Publication[] = [];
    const N = 300;
    const WILD = 250; // stream sequence WILD + 1
    for (let i = 0; i < N; i++) {
      const v = i === WILD ? [1e300, 0, -1e300] : [g(), g(), g()];
      pubs.push({
        subject: "telemetry.obs.p1",
        data: JSON.stringify({ v, t: i }),
        msgID: `a-${i}`,
      });
    }
    for (let i = 0; i < N; i += 100) {
      await publishAllAcked(jetstream(nc), pubs.slice(i, i + 100), quiet);
    }
    await waitFor(
      "scores and the alarm episode",
      async () =>
        (await streamCount(nc, "TELEMETRY_SCORES")) >= N &&
        (await streamCount(nc, "TELEMETRY_ALARMS")) >= 1,
      60_000,
    );
    assert.equal(await streamCount(nc, "TELEMETRY_DLQ"), 0);
    const records = (await readStream(nc, "TELEMETRY_SCORES")).map((m) =>
      LiveScoreRecord.parse(m.json())
    );
    assert.equal(records.length, N);
    const wild = records.find((r) => r.stream_seq === WILD + 1)!;
    assert.equal(wild.anomaly, true);
    assert.equal(wild.alarm, true);
    assert.equal(wild.p_value, 0);
    assert.equal(wild.mahalanobis2, Number.MAX_VALUE);
    assert.equal(wild.log_prob, -Number.MAX_VALUE);
    assert.ok(wild.contrib.every((c) => c !== null && Number.isFinite(c)));
    // Not learned: the readings after it score as ordinary ones.
    const after = records.filter((r) => r.stream_seq > WILD + 1);
    assert.ok(after.every((r) => r.mahalanobis2! < 100), "later readings stay ordinary");

    const alarms = await readStream(nc, "TELEMETRY_ALARMS");
    const episodes = alarms.map((m) => ({ m, e: AlarmEpisode.parse(m.json()) }));
    const mine = episodes.filter(({ e }) => e.start_seq === wild.seq);
    assert.equal(mine.length, 1, JSON.stringify(episodes.map(({ e }) => e)));
    const { m, e } = mine[0];
    assert.equal(m.subject, "telemetry.alarms.p1");
    assert.equal(m.header("Nats-Msg-Id"), `TELEMETRY:alarm:p1:${e.start_seq}-${e.end_seq}`);
    assert.equal(e.key, "p1");
    assert.equal(e.start_t, WILD);
    assert.ok(e.peak_log_p > 323);
    // Dim 0 overflows first (the others follow through the Cholesky factor's off-diagonals).
    assert.ok(e.top_dims.includes(0), JSON.stringify(e.top_dims));
    // It closed within the records: the first record after end_seq has the alarm off.
    const closing = records.find((r) => r.seq === e.end_seq + 1)!;
    assert.equal(closing.alarm, false);
    await worker.stop();
    await nc.close();
  },
});
