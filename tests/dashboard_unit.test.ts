/**
 * The dashboard without a browser: the page's model (counts, dedup, sorting, filtering, alarm
 * episodes, observation decoding, ellipse geometry), the server's routes (static files,
 * `/config.json` on loopback only) and `deno task dashboard`.
 */
import assert from "node:assert/strict";
import {
  DashboardModel,
  decodeObservations,
  ellipse,
  mahalanobis2,
  negLog10,
  nlpOfMahalanobis2,
  type ParamsLike,
} from "../src/dashboard/app/model.ts";
import { dashboardHandler, isLoopback } from "../src/dashboard/server.ts";
import { runCli, waitFor } from "./helpers/nats_server.ts";

const score = (key: string, seq: number, p: number, anomaly = p < 1e-3) => ({
  key,
  seq,
  p_value: p,
  mahalanobis2: 1,
  anomaly,
});

function params(key: string, steps: number, cov = [[4, 0], [0, 1]]): ParamsLike {
  return {
    key,
    dim: 2,
    loc: [1, 2],
    scale_tril: [[Math.sqrt(cov[0][0]), 0], [
      cov[1][0] / Math.sqrt(cov[0][0]),
      Math.sqrt(cov[1][1] - cov[1][0] ** 2 / cov[0][0]),
    ]],
    covariance: cov,
    observations: steps * 10,
    steps,
    updated_at: new Date(1_767_225_600_000 + steps * 1000).toISOString(),
  };
}

Deno.test("model: scores are counted once per key and seq; last-minute windows expire", () => {
  const m = new DashboardModel();
  const t0 = 1_000_000;
  assert.ok(m.addScore(score("a", 1, 0.5), t0));
  assert.ok(m.addScore(score("a", 2, 1e-6), t0));
  assert.ok(!m.addScore(score("a", 2, 1e-6), t0), "a duplicate seq is dropped");
  assert.ok(m.addScore(score("b", 1, 1e-9), t0 + 30_000));
  const a = m.keys.get("a")!;
  assert.equal(a.anomalies, 1);
  assert.equal(a.scores, 2);
  assert.equal(a.lastNlp, 6);
  assert.equal(a.observations, 2);
  assert.deepEqual(m.lastMinute(a, t0 + 59_000), { anomalies: 1, alarms: 0 });
  assert.deepEqual(m.lastMinute(a, t0 + 61_000), { anomalies: 0, alarms: 0 });
  assert.equal(a.anomalies, 1, "the total stays");
  assert.equal(negLog10(0), 300);
  assert.ok(Number.isNaN(negLog10(null)));
});

Deno.test("model: view filters by name and sorts by any column, ties by key", () => {
  const m = new DashboardModel();
  for (let i = 0; i < 50; i++) {
    const key = `site-${i % 5}.pump-${String(i).padStart(2, "0")}`;
    for (let s = 1; s <= i % 7 + 1; s++) m.addScore(score(key, s, s === 1 ? 1e-5 : 0.5));
  }
  assert.equal(m.view("", "key", false).length, 50);
  assert.equal(m.view("SITE-3", "key", false).length, 10);
  const byObs = m.view("", "observations", true).map((s) => s.observations);
  assert.deepEqual(byObs, byObs.slice().sort((x, y) => y - x));
  const byKey = m.view("", "key", false).map((s) => s.key);
  assert.deepEqual(byKey, byKey.slice().sort());
  const big = new DashboardModel();
  for (let i = 0; i < 10_000; i++) big.addScore(score(`k${i}`, 1, Math.random()));
  assert.equal(big.view("k99", "lastNlp", true).length, 111);
});

Deno.test("model: parameters keep a loc / σ history; older snapshots are ignored", () => {
  const m = new DashboardModel();
  assert.ok(m.addParams(params("a", 2)));
  assert.ok(!m.addParams(params("a", 1)), "older steps");
  assert.ok(m.addParams(params("a", 3)));
  const a = m.keys.get("a")!;
  assert.equal(a.paramsHistory.items.length, 2);
  assert.deepEqual(a.paramsHistory.items[1].sd, [2, 1]);
  assert.equal(a.observations, 30);
});

Deno.test("model: alarm episodes open and close; the log keeps one entry per episode", () => {
  const m = new DashboardModel();
  m.addEpisode({ key: "a", start_seq: 10, start_t: 1 });
  assert.equal(m.keys.get("a")!.openAlarm?.start_seq, 10);
  m.addEpisode({ key: "a", start_seq: 10, end_seq: 14, start_t: 1, end_t: 5, observations: 5 });
  assert.equal(m.keys.get("a")!.openAlarm, undefined);
  assert.equal(m.episodes.items.length, 1);
  assert.equal(m.lastMinute(m.keys.get("a")!).alarms, 1);
});

Deno.test("model: selecting a key merges its older scores before what the table kept", () => {
  const m = new DashboardModel();
  m.ringCapacity = 4;
  for (let s = 1; s <= 10; s++) m.addScore(score("a", s, 0.5));
  m.select("a");
  const older = Array.from({ length: 10 }, (_, i) => score("a", i + 1, 0.5));
  assert.ok(m.mergeHistory("a", older));
  const seqs: number[] = [];
  m.keys.get("a")!.ring.forEach((q) => seqs.push(q));
  assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
});

Deno.test("model: observations decode from every message form", () => {
  const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  assert.deepEqual(decodeObservations(enc({ v: [1, 2, 3] }), 3, false), [[1, 2, 3]]);
  assert.deepEqual(decodeObservations(enc({ x: 1, y: 2, z: 3 }), 3, false), [[1, 2, 3]]);
  assert.deepEqual(decodeObservations(enc([1, 2, 3]), 3, false), [[1, 2, 3]]);
  assert.deepEqual(decodeObservations(enc([[1, 2], { v: [3, 4] }]), 2, false), [[1, 2], [3, 4]]);
  const f32 = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);
  assert.deepEqual(decodeObservations(f32, 2, true), [[1, 2], [3, 4]]);
  assert.deepEqual(decodeObservations(new TextEncoder().encode("{"), 3, false), []);
});

Deno.test("model: Mahalanobis² and the kσ ellipses follow the covariance", () => {
  const p = params("a", 1, [[4, 1.2], [1.2, 1]]);
  // On the 2σ ellipse of a 2-d projection of a 2-d normal, Mahalanobis² is 4.
  for (const [x, y] of ellipse(p.loc, p.covariance, 0, 1, 2, 16)) {
    assert.ok(Math.abs(mahalanobis2(p, [x, y]) - 4) < 1e-9);
  }
  assert.equal(mahalanobis2(p, p.loc), 0);
  assert.ok(Math.abs(nlpOfMahalanobis2(4, 2) - 2 / Math.LN10) < 1e-9, "P(χ²₂ ≥ 4) = e⁻²");
});

Deno.test("server: page, static files, and /config.json only on loopback", async () => {
  const handler = dashboardHandler({
    wsUrl: "ws://127.0.0.1:4223",
    prefix: "plant.a",
    alpha: 1e-4,
    user: "u",
    password: "p",
  });
  const local = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 5 } } as const;
  const remote = { remoteAddr: { transport: "tcp", hostname: "10.0.0.7", port: 5 } } as const;
  const get = (path: string, info: Deno.ServeHandlerInfo, host = "127.0.0.1:8080") =>
    handler(new Request(`http://${host}${path}`, { headers: { host } }), info);
  const page = await get("/", local as unknown as Deno.ServeHandlerInfo);
  assert.equal(page?.status, 200);
  assert.match(await page!.text(), /<script type="module" src="app.js">/);
  for (const f of ["/app.js", "/app.css", "/uplot.css"]) {
    const r = await get(f, local as unknown as Deno.ServeHandlerInfo);
    assert.equal(r?.status, 200, f);
    assert.ok((await r!.text()).length > 100, `${f} is not empty`);
  }
  const cfg = await get("/config.json", local as unknown as Deno.ServeHandlerInfo);
  assert.deepEqual(await cfg!.json(), {
    nats: "ws://127.0.0.1:4223",
    prefix: "plant.a",
    alpha: 1e-4,
    scores_stream: "PLANT_A_SCORES",
    input_stream: "PLANT_A",
    params_bucket: "plant_a_params",
    history_s: 60,
    auth: { user: "u", password: "p" },
  });
  assert.equal(
    (await get("/config.json", remote as unknown as Deno.ServeHandlerInfo))?.status,
    403,
  );
  const rebound = await get(
    "/config.json",
    local as unknown as Deno.ServeHandlerInfo,
    "evil.example:8080",
  );
  assert.equal(rebound?.status, 403, "a foreign Host header (DNS rebinding) is refused");
  assert.equal(await get("/metrics", local as unknown as Deno.ServeHandlerInfo), undefined);
  assert.ok(isLoopback("::1") && isLoopback("127.0.0.9") && isLoopback("[::ffff:127.0.0.1]"));
  assert.ok(!isLoopback("192.168.1.1"));
});

Deno.test({
  name: "deno task dashboard: serves the page alone; refuses a nats:// URL",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    {
      await using cli = runCli(["dashboard", "--nats-url", "ws://127.0.0.1:4999", "--port", "0"]);
      await waitFor(
        "the address",
        () => /dashboard: http:\/\/127\.0\.0\.1:\d+\//.test(cli.stdout()),
      );
      const url = cli.stdout().match(/(http:\/\/127\.0\.0\.1:\d+\/)/)![1];
      const cfg = await (await fetch(`${url}config.json`)).json();
      assert.equal(cfg.nats, "ws://127.0.0.1:4999");
      assert.equal(cfg.prefix, "telemetry");
      assert.equal((await fetch(`${url}nope`)).status, 404);
      await (await fetch(url)).body?.cancel();
    }
    const bad = runCli(["dashboard", "--nats-url", "nats://127.0.0.1:4222"]);
    assert.equal((await bad.status()).code, 2);
    assert.match(bad.stderr(), /expected a ws:\/\/ or wss:\/\/ URL/);
  },
});

Deno.test("the checked-in bundle src/dashboard/static/app.js is current", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const out = await Deno.makeTempFile({ suffix: ".js" });
  try {
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--platform",
        "browser",
        "--minify",
        "--quiet",
        "-o",
        out,
        "src/dashboard/app/main.ts",
      ],
      cwd: root,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(r.success, new TextDecoder().decode(r.stderr));
    const fresh = await Deno.readTextFile(out);
    const checkedIn = await Deno.readTextFile(`${root}src/dashboard/static/app.js`);
    assert.ok(
      fresh === checkedIn,
      "expected src/dashboard/static/app.js to match its sources, found it stale: run `deno task build:dashboard`",
    );
  } finally {
    await Deno.remove(out).catch(() => {});
  }
});
