/// <reference lib="dom" />
/**
 * The dashboard in a real browser: headless Chromium (Debian package `chromium`, driven by
 * playwright-core) against a worker (`--http 0`, cpu backend) and a nats-server with WebSocket.
 * Observations with injected anomalies go to three keys; the page must list them with the
 * anomaly counts of the scores stream, draw the selected key's series and ellipses, and pick up
 * new scores after the nats-server restarts. Screenshots of each view go to `$MVN_ARTIFACTS`
 * (default `tests/artifacts/`, git-ignored).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { parseLiveFlags, resolveLiveConfig } from "../src/config/live_config.ts";
import { startWorker } from "../src/live/worker.ts";
import { mulberry32 } from "../src/model/prng.ts";
import type { LiveScoreRecord } from "../schemas/messages.ts";
import { readStream, startNatsServer, streamCount, waitFor } from "./helpers/nats_server.ts";

const CHROMIUM = "/usr/bin/chromium";
const KEYS = ["pump-a", "pump-b", "site.fan-c"];
const PER_KEY = 300;
const ARTIFACTS = Deno.env.get("MVN_ARTIFACTS") ??
  new URL("./artifacts/", import.meta.url).pathname;
const LONG = Number(Deno.env.get("MVN_BROWSER_TIMEOUT_MS") ?? 90_000);

function gaussian(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** Observations of one key: N(mean, diag(1, 4, 0.25)) with a +12σ jump every 37th after 100. */
function observations(k: number): { v: number[]; t: number }[] {
  const rand = mulberry32(1234 + k);
  const mean = [10 * k, -5 + k, 100];
  const sd = [1, 2, 0.5];
  const out = [];
  for (let i = 0; i < PER_KEY; i++) {
    const jump = i >= 100 && i % 37 === 0 ? 12 : 0;
    out.push({
      v: mean.map((m, j) => m + sd[j] * (gaussian(rand) + jump * (j === 0 ? 1 : 0.5))),
      t: 1_767_225_600_000 + i * 100,
    });
  }
  return out;
}

/** What the page shows, for failure messages. */
const DIAGNOSE = () => {
  const ds = (sel: string) =>
    JSON.stringify({ ...document.querySelector<HTMLElement>(sel)?.dataset });
  return [
    `status ${ds("#status")} ${document.querySelector("#status")?.textContent}`,
    `rows ${
      [...document.querySelectorAll<HTMLElement>("#tbody .row[data-key]")].map((r) =>
        JSON.stringify({ ...r.dataset })
      ).join(" ")
    }`,
    `series ${ds("#series")} loc ${ds("#loc-chart")} sd ${ds("#sd-chart")}`,
    `canvases ${
      [...document.querySelectorAll<HTMLElement>("#ellipses canvas")].map((c) =>
        JSON.stringify({ ...c.dataset })
      ).join(" ")
    }`,
  ].join("\n");
};

Deno.test({
  name:
    "dashboard in Chromium: lists the keys with the stream's anomaly counts, draws a key's series and ellipses, reconnects after a nats-server restart",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    try {
      await Deno.stat(CHROMIUM);
    } catch {
      throw new Error(
        `expected Chromium at ${CHROMIUM} for the dashboard browser test, found none: install it ` +
          "with `apt-get install -y chromium` (bin/test does it: ensure_chromium)",
      );
    }
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    await using srv = await startNatsServer({ websocket: true });
    assert.ok(srv.wsUrl, "the test nats-server has a WebSocket listener");
    const config = resolveLiveConfig(
      parseLiveFlags([
        "--nats-url",
        srv.url,
        "--ws-url",
        srv.wsUrl!,
        "--backend",
        "cpu",
        "--http",
        "0",
        "--params-every-ms",
        "200",
      ]),
      {},
    );
    await using worker = await startWorker(config, { log: () => {} });
    assert.ok(worker.httpPort, "the worker serves http");
    const base = `http://127.0.0.1:${worker.httpPort}/`;
    const nc = await connect({
      servers: srv.url,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    const js = jetstream(nc);
    const profile = await Deno.makeTempDir({ prefix: "mvn-chromium-" });
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 1100 },
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
      ],
    });
    const pageErrors: string[] = [];
    const consoleLines: string[] = [];
    try {
      const page = await browser.newPage();
      page.on("pageerror", (e) => pageErrors.push(String(e)));
      page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
      /** page.waitForFunction, saying what the page showed when it times out. */
      const until = async <A>(what: string, fn: (arg: A) => boolean, arg?: A) => {
        try {
          await page.waitForFunction(fn as (a: unknown) => boolean, arg, { timeout: LONG });
        } catch (e) {
          const shown = await page.evaluate(DIAGNOSE).catch((x) => String(x));
          await page.screenshot({ path: join(ARTIFACTS, "dashboard-failure.png"), fullPage: true })
            .catch(() => {});
          throw new Error(
            `timed out waiting for ${what}: ${(e as Error).message}\n${shown}\nconsole:\n` +
              consoleLines.slice(-20).join("\n") + `\npage errors: ${pageErrors.join("; ")}`,
          );
        }
      };
      // Nothing but loopback: any other request is refused.
      await page.route("**/*", (route) => {
        const u = new URL(route.request().url());
        return u.hostname === "127.0.0.1" ? route.continue() : route.abort();
      });
      await page.goto(base);
      await page.waitForSelector('#status[data-state="connected"]', { timeout: LONG });

      let total = 0;
      for (const [k, key] of KEYS.entries()) {
        for (const o of observations(k)) {
          await js.publish(`telemetry.obs.${key}`, JSON.stringify(o));
          total++;
        }
      }
      // An alarm episode opening (as the alarm builder will publish them).
      nc.publish(
        "telemetry.alarms.pump-b",
        JSON.stringify({
          key: "pump-b",
          start_seq: 148,
          start_t: 1_767_225_614_800,
          observations: 3,
          peak_log_p: -42.5,
          top_dims: [0],
        }),
      );
      await waitFor(
        "every observation scored",
        async () => (await streamCount(nc, "TELEMETRY_SCORES")) >= total,
        LONG,
      );
      const expected: Record<string, { anomalies: number; scores: number }> = {};
      for (const m of await readStream(nc, "TELEMETRY_SCORES")) {
        const r = m.json<LiveScoreRecord>();
        expected[r.key] ??= { anomalies: 0, scores: 0 };
        expected[r.key].scores++;
        if (r.anomaly) expected[r.key].anomalies++;
      }
      assert.deepEqual(Object.keys(expected).sort(), [...KEYS].sort());
      for (const key of KEYS) assert.ok(expected[key].anomalies > 0, `${key} has anomalies`);

      await t.step(
        "the page lists the three keys with the scores stream's anomaly counts",
        async () => {
          await until("the three keys with the stream's counts", (exp) => {
            const rows = [...document.querySelectorAll<HTMLElement>("#tbody .row[data-key]")];
            return Object.entries(exp as Record<string, { anomalies: number; scores: number }>)
              .every(([key, e]) =>
                rows.some((r) =>
                  r.dataset.key === key && r.dataset.scores === String(e.scores) &&
                  r.dataset.anomalies === String(e.anomalies)
                )
              ) && rows.length === 3;
          }, expected);
          const shown = await page.$$eval(
            "#tbody .row[data-key]",
            (rows) =>
              rows.map((
                r,
              ) => [(r as HTMLElement).dataset.key, (r as HTMLElement).dataset.anomalies]),
          );
          assert.deepEqual(
            Object.fromEntries(shown),
            Object.fromEntries(KEYS.map((k) => [k, String(expected[k].anomalies)])),
          );
          await page.waitForSelector('#alarm-list .episode.open[data-key="pump-b"]', {
            timeout: LONG,
          });
          await page.screenshot({
            path: join(ARTIFACTS, "dashboard-overview.png"),
            fullPage: true,
          });
        },
      );

      await t.step("filtering by name and sorting by a column", async () => {
        await page.fill("#filter", "fan");
        await until(
          "only site.fan-c",
          () =>
            document.querySelectorAll("#tbody .row[data-key]").length === 1 &&
            document.querySelector<HTMLElement>("#tbody .row[data-key]")!.dataset.key ===
              "site.fan-c",
        );
        await page.fill("#filter", "");
        await page.click('#thead [data-sort="anomalies"]');
        await until("rows sorted by anomalies", () => {
          const rows = [...document.querySelectorAll<HTMLElement>("#tbody .row[data-key]")]
            .sort((a, b) =>
              new DOMMatrix(a.style.transform).f - new DOMMatrix(b.style.transform).f
            );
          const n = rows.map((r) => Number(r.dataset.anomalies));
          return n.length === 3 && n[0] >= n[1] && n[1] >= n[2];
        });
      });

      await t.step("selecting a key draws its series, ellipses and parameter history", async () => {
        await page.click('#tbody .row[data-key="pump-a"]');
        await until("series, ellipses and parameter history drawn", (scores) => {
          const n = (sel: string) =>
            Number(document.querySelector<HTMLElement>(sel)?.dataset.points ?? 0);
          const canvases = [...document.querySelectorAll<HTMLCanvasElement>("#ellipses canvas")];
          return n("#series") === scores &&
            Number(document.querySelector<HTMLElement>("#series")!.dataset.anomalies) > 0 &&
            n("#loc-chart") > 0 && n("#sd-chart") > 0 && canvases.length === 3 &&
            canvases.every((c) => Number(c.dataset.points) > 0 && c.dataset.ellipses === "3");
        }, expected["pump-a"].scores);
        const series = await page.$eval("#series", (e) => (e as HTMLElement).dataset.points);
        assert.equal(series, String(expected["pump-a"].scores));
        assert.equal(await page.locator("#series .uplot canvas").count(), 1);
        await page.locator("#detail").scrollIntoViewIfNeeded();
        await page.screenshot({ path: join(ARTIFACTS, "dashboard-key.png"), fullPage: true });
      });

      await t.step(
        "after the nats-server restarts, the page reconnects and shows new scores",
        async () => {
          await srv.restart();
          await page.waitForSelector('#status[data-state="connected"][data-reconnects]', {
            timeout: LONG,
          });
          await waitFor("the worker reconnected", () => worker.metrics.connected, LONG);
          const before = expected["pump-a"].scores;
          const o = observations(0)[5];
          await waitFor("a publish after the restart", async () => {
            try {
              await js.publish("telemetry.obs.pump-a", JSON.stringify({ ...o, t: o.t + 1e6 }));
              return true;
            } catch {
              return false;
            }
          }, LONG);
          await until("a new score after the restart", (n) => {
            const r = document.querySelector<HTMLElement>('#tbody .row[data-key="pump-a"]');
            return r !== null && Number(r.dataset.scores) > (n as number) &&
              Number(document.querySelector<HTMLElement>("#series")!.dataset.points) >
                (n as number);
          }, before);
          // Again, publishing at once: the score may reach NATS before the page is back, and
          // then comes from the page's catch-up read of the scores stream.
          const reconnects = Number(
            await page.$eval("#status", (e) => (e as HTMLElement).dataset.reconnects),
          );
          const beforeB = expected["pump-b"].scores;
          await srv.restart();
          await waitFor("a publish right after the restart", async () => {
            try {
              await js.publish("telemetry.obs.pump-b", JSON.stringify(observations(1)[5]));
              return true;
            } catch {
              return false;
            }
          }, LONG);
          await until("the page reconnected again and shows pump-b's new score", (a) => {
            const [n, rc] = a as number[];
            const r = document.querySelector<HTMLElement>('#tbody .row[data-key="pump-b"]');
            return r !== null && Number(r.dataset.scores) > n &&
              Number(document.querySelector<HTMLElement>("#status")!.dataset.reconnects) > rc;
          }, [beforeB, reconnects]);
          await page.screenshot({
            path: join(ARTIFACTS, "dashboard-reconnected.png"),
            fullPage: true,
          });
        },
      );
      await t.step(
        "10,000 keys: the table stays virtualised, filterable and sortable",
        async () => {
          // Fed through the page's own handlers (what NATS callbacks call): 10,000 keys, then
          // 10 keys at 1,000 scores/s each for two seconds.
          const frames = await page.evaluate(async () => {
            const d = (globalThis as unknown as Record<string, unknown>).__mvnDashboard as {
              model: { addScore(r: unknown): boolean };
              view: { schedule(): void };
            };
            for (let i = 0; i < 10_000; i++) {
              d.model.addScore({
                key: `load-${String(i).padStart(5, "0")}`,
                seq: 1,
                p_value: (i % 1000) / 1000,
                mahalanobis2: 1,
                anomaly: i % 1000 === 0,
              });
            }
            d.view.schedule();
            let n = 0;
            const count = () => {
              n++;
              if (n < 1e9) requestAnimationFrame(count);
            };
            requestAnimationFrame(count);
            for (let tick = 0; tick < 20; tick++) {
              for (let k = 0; k < 10; k++) {
                for (let j = 0; j < 100; j++) {
                  d.model.addScore({
                    key: `hot-${k}`,
                    seq: tick * 100 + j + 1,
                    p_value: Math.random(),
                    mahalanobis2: 1,
                    anomaly: false,
                  });
                  d.view.schedule();
                }
              }
              await new Promise((r) => setTimeout(r, 100));
            }
            return n;
          });
          console.log(`  ${frames} animation frames while 10 keys took 1,000 scores/s each`);
          assert.ok(frames > 0, "the page kept rendering");
          await until(
            "10,013 keys counted",
            () => /^10013 of 10013 keys$/.test(document.getElementById("count")!.textContent ?? ""),
          );
          const rendered = await page.locator("#tbody .row[data-key]").count();
          assert.ok(
            rendered > 0 && rendered < 60,
            `only the visible rows exist (found ${rendered})`,
          );
          await page.fill("#filter", "load-09999");
          await until("one row for load-09999", () => {
            const rows = document.querySelectorAll<HTMLElement>("#tbody .row[data-key]");
            return rows.length === 1 && rows[0].dataset.key === "load-09999";
          });
          await page.fill("#filter", "load-");
          await page.click('#thead [data-sort="key"]');
          await page.$eval("#tbody", (e) => (e.scrollTop = e.scrollHeight));
          await until(
            "the last key rendered after scrolling to the end",
            () =>
              document.querySelector('#tbody .row[data-key="load-09999"]') !== null ||
              document.querySelector('#tbody .row[data-key="load-00000"]') !== null,
          );
          await page.screenshot({
            path: join(ARTIFACTS, "dashboard-10k-keys.png"),
            fullPage: true,
          });
        },
      );
      assert.deepEqual(pageErrors, [], "no uncaught errors in the page");
    } finally {
      await browser.close();
      await nc.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});
