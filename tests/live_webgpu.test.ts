/**
 * The live worker with its engine on the webgpu backend (here the software llvmpipe adapter),
 * against a real nats-server: every observation scored once, parameters finite.
 */
import assert from "node:assert/strict";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { parseLiveFlags, resolveLiveConfig } from "../src/config/live_config.ts";
import type { LiveScoreRecord } from "../schemas/messages.ts";
import { publishFile } from "../src/nats/file_publisher.ts";
import { startWorker } from "../src/live/worker.ts";
import { BACKENDS } from "./helpers/backends.ts";
import { readStream, startNatsServer, streamCount, waitFor } from "./helpers/nats_server.ts";

const SAMPLE = new URL("../data/sample.ndjson", import.meta.url).pathname;

Deno.test({
  name: "the live worker scores every observation once on the webgpu backend",
  ignore: !BACKENDS.includes("webgpu"),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using srv = await startNatsServer();
    const nc = await connect({ servers: srv.url });
    try {
      const lines: string[] = [];
      const config = resolveLiveConfig(
        parseLiveFlags(["--nats-url", srv.url, "--backend", "webgpu"]),
        {},
      );
      await using _worker = await startWorker(config, { log: (l) => lines.push(l) });
      assert.ok(lines.some((l) => /backend webgpu \(requested\)/.test(l)), lines.join("\n"));
      const summary = await publishFile(jetstream(nc), {
        path: SAMPLE,
        prefix: "telemetry",
        format: "array",
        perMessage: 50,
        log: () => {},
      });
      assert.equal(summary.observations, 5000);
      await waitFor(
        "all scores",
        async () => (await streamCount(nc, "TELEMETRY_SCORES")) >= 5000,
        120_000,
      );
      const records = (await readStream(nc, "TELEMETRY_SCORES")).map((m) =>
        m.json<LiveScoreRecord>()
      );
      assert.equal(records.length, 5000);
      const ids = new Set(records.map((r) => `${r.stream_seq}:${r.index ?? 0}`));
      assert.equal(ids.size, 5000, "each observation scored exactly once");
      for (const r of records) assert.ok(Number.isFinite(r.log_prob) && r.p_value !== null);
      // 53 labelled faults in the sample: float32 scores still flag most of them.
      const anomalies = records.filter((r) => r.anomaly).length;
      assert.ok(anomalies >= 45 && anomalies <= 70, `anomalies: ${anomalies}`);
    } finally {
      await nc.close();
    }
  },
});
