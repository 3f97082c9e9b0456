/// <reference lib="dom" />
/**
 * The dashboard page's entry (bundled for the browser into `../static/app.js` by
 * `deno task build:dashboard`). It reads `/config.json` from the server that served it, connects
 * to NATS over WebSocket (`?nats=ws://host:port` overrides the URL, `?prefix=` the prefix) and
 * feeds the model from:
 *
 * - `<prefix>.scores.>`: live (core subscription), after the last minute of the scores stream;
 * - `<prefix>_params` (KV, latest value of every key) and `<prefix>.params.>`;
 * - `<prefix>.alarms.>`: alarm episodes as they open and close (nothing arrives when no worker
 *   publishes them);
 * - `<prefix>.obs.<key>` for the selected key: its raw observations, for the ellipse plots (the
 *   last minute of the input stream first).
 *
 * @module
 */
import { type Msg, type NatsConnection, type Subscription, wsconnect } from "@nats-io/nats-core";
import { DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import {
  type AlarmEpisode,
  DashboardModel,
  decodeObservations,
  type ParamsLike,
  type ScoreLike,
} from "./model.ts";
import { DashboardView } from "./view.ts";

/** What `/config.json` serves (see `src/dashboard/server.ts`). */
interface PageConfig {
  nats: string | null;
  prefix: string;
  alpha: number;
  scores_stream: string;
  input_stream: string;
  params_bucket: string;
  history_s: number;
  auth?: { user?: string; password?: string; token?: string };
}

const F32 = "application/vnd.mvn.f32";
const MAX_HISTORY = 200_000;
const MAX_POINTS = 1000;

function topology(prefix: string) {
  const base = prefix.toUpperCase().replace(/[^A-Z0-9_-]/g, "_");
  const bucket = prefix.toLowerCase().replace(/[^a-z0-9_-]/g, "_");
  return {
    scores_stream: `${base}_SCORES`,
    input_stream: base,
    params_bucket: `${bucket}_params`,
  };
}

async function loadConfig(): Promise<PageConfig> {
  const q = new URLSearchParams(location.search);
  let cfg: Partial<PageConfig> = {};
  try {
    const r = await fetch("config.json", { cache: "no-store" });
    if (r.ok) cfg = await r.json();
  } catch {
    // served without a config endpoint: query parameters only
  }
  const prefix = q.get("prefix") ?? cfg.prefix ?? "telemetry";
  const topo = q.get("prefix") !== null ? topology(prefix) : { ...topology(prefix), ...cfg };
  return {
    nats: q.get("nats") ?? cfg.nats ?? null,
    prefix,
    alpha: Number(q.get("alpha") ?? cfg.alpha ?? 1e-3),
    scores_stream: topo.scores_stream!,
    input_stream: topo.input_stream!,
    params_bucket: topo.params_bucket!,
    history_s: Number(q.get("history") ?? cfg.history_s ?? 60),
    auth: cfg.auth,
  };
}

function setStatus(state: string, text: string, reconnected = false): void {
  const s = document.getElementById("status")!;
  s.dataset.state = state;
  s.textContent = text;
  if (reconnected) s.dataset.reconnects = String(Number(s.dataset.reconnects ?? 0) + 1);
}

/** Reads a stream (filtered) from `since` on, in order, until caught up; calls `each` per message. */
async function readHistory(
  nc: NatsConnection,
  stream: string,
  since: Date,
  each: (m: JsMsg) => void,
  filter?: string,
  max = MAX_HISTORY,
): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream).catch(() => undefined);
  if (info === undefined || info.state.messages === 0) return 0;
  if (info.state.last_ts !== undefined && Date.parse(info.state.last_ts) < since.getTime()) {
    return 0;
  }
  const c = await jetstream(nc).consumers.get(stream, {
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: since.toISOString(),
    // A string is sent as `filter_subject` (an array needs nats-server 2.10).
    ...(filter ? { filter_subjects: filter } : {}),
  });
  let n = 0;
  while (n < max) {
    const it = await c.fetch({ max_messages: 1000, expires: 2000 });
    let got = 0;
    let caughtUp = false;
    for await (const m of it) {
      got++;
      n++;
      each(m);
      if (m.info.pending === 0 || n >= max) {
        // Leaving the loop stops the fetch (it would otherwise wait out `expires`).
        caughtUp = true;
        break;
      }
    }
    if (got === 0 || caughtUp) break;
  }
  await c.delete().catch(() => {});
  return n;
}

function scoresOf(data: unknown): ScoreLike[] {
  return Array.isArray(data) ? data as ScoreLike[] : [data as ScoreLike];
}

async function main(): Promise<void> {
  const cfg = await loadConfig();
  const threshold = -Math.log10(cfg.alpha);
  const model = new DashboardModel();
  const view = new DashboardView(model, threshold);
  (globalThis as Record<string, unknown>).__mvnDashboard = { model, view, config: cfg };
  setInterval(() => view.schedule(), 1000);
  document.getElementById("prefix")!.textContent = cfg.prefix;
  if (cfg.nats === null) {
    setStatus(
      "error",
      "no WebSocket URL: open this page with ?nats=ws://host:port (the server has none configured)",
    );
    return;
  }
  setStatus("connecting", `connecting to ${cfg.nats}…`);
  const nc = await wsconnect({
    servers: cfg.nats.split(",").map((s) => s.trim()),
    name: "mvn-dashboard",
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    waitOnFirstConnect: true,
    user: cfg.auth?.user,
    pass: cfg.auth?.password,
    token: cfg.auth?.token,
  });
  setStatus("connected", `connected to ${cfg.nats}`);
  let lostAt = 0;
  (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        lostAt = Date.now();
        setStatus("disconnected", `disconnected; reconnecting…`);
      } else if (s.type === "reconnecting") setStatus("reconnecting", "reconnecting…");
      else if (s.type === "reconnect") {
        setStatus("connected", `connected to ${cfg.nats} (reconnected)`, true);
        void watchParams(nc, cfg, model, view);
        // Scores published while the page was away, from the stream.
        void catchUp(new Date((lostAt || Date.now()) - 2000));
      }
    }
  })().catch(() => {});
  const p = cfg.prefix;

  // Scores: subscribe first, buffer while the stream is read from `since`, then apply (the
  // model drops what it has already seen by each key's seq). On load: the last minute; after a
  // reconnect: from the disconnect on.
  let buffered: ScoreLike[] | undefined;
  async function catchUp(since: Date): Promise<void> {
    if (buffered !== undefined) return;
    buffered = [];
    try {
      await readHistory(nc, cfg.scores_stream, since, (m) => {
        try {
          const at = m.info.timestampNanos / 1e6;
          for (const r of scoresOf(m.json())) model.addScore(r, at);
        } catch {
          // not JSON
        }
      });
    } catch (e) {
      console.warn("reading the scores stream failed", e);
    } finally {
      const b = buffered;
      buffered = undefined;
      for (const r of b) model.addScore(r);
      view.schedule();
    }
  }
  buffered = [];
  nc.subscribe(`${p}.scores.>`, {
    callback: (err, m) => {
      if (err) return;
      let recs: ScoreLike[];
      try {
        recs = scoresOf(m.json());
      } catch {
        return;
      }
      if (buffered !== undefined) buffered.push(...recs);
      else {
        for (const r of recs) model.addScore(r);
        view.schedule();
      }
    },
  });
  nc.subscribe(`${p}.params.>`, {
    callback: (err, m) => {
      if (err) return;
      try {
        if (model.addParams(m.json<ParamsLike>())) view.schedule();
      } catch {
        // not JSON: ignored
      }
    },
  });
  nc.subscribe(`${p}.alarms.>`, {
    callback: (err, m) => {
      if (err) return;
      try {
        const e = m.json<AlarmEpisode | AlarmEpisode[]>();
        for (const x of Array.isArray(e) ? e : [e]) model.addEpisode(x);
        view.schedule();
      } catch {
        // not JSON: ignored
      }
    },
  });
  // The selected key's raw observations, for the ellipse plots.
  let obsSub: Subscription | undefined;
  let selection = 0;
  view.onSelect = (key) => {
    obsSub?.unsubscribe();
    obsSub = undefined;
    const mine = ++selection;
    if (key === undefined) return;
    const dimOf = () => model.keys.get(key)?.params?.dim ?? 0;
    const take = (data: Uint8Array, f32: boolean) => {
      for (const row of decodeObservations(data, dimOf(), f32)) view.points.push(row);
      if (view.points.length > MAX_POINTS) view.points.splice(0, view.points.length - MAX_POINTS);
      view.pointsDirty = true;
      view.schedule();
    };
    const live: Msg[] = [];
    let replaying = true;
    obsSub = nc.subscribe(`${p}.obs.${key}`, {
      callback: (err, m) => {
        if (err || mine !== selection) return;
        if (replaying) live.push(m);
        else take(m.data, m.headers?.get("Content-Type") === F32);
      },
    });
    const since = new Date(Date.now() - cfg.history_s * 1000);
    // The key's recent scores beyond what the table kept for it.
    const older: ScoreLike[] = [];
    readHistory(
      nc,
      cfg.scores_stream,
      since,
      (m) => {
        try {
          older.push(...scoresOf(m.json()));
        } catch {
          // not JSON
        }
      },
      `${p}.scores.${key}`,
      model.selectedCapacity * 2,
    )
      .then(() => {
        if (mine === selection && model.mergeHistory(key, older)) view.schedule();
      })
      .catch((e) => console.warn("score history", e));
    readHistory(
      nc,
      cfg.input_stream,
      since,
      (m) => {
        if (mine === selection) take(m.data, m.headers?.get("Content-Type") === F32);
      },
      `${p}.obs.${key}`,
      5 * MAX_POINTS,
    ).catch((e) => console.warn("observation history", e))
      .finally(() => {
        replaying = false;
        // Observations both replayed and received live are few (the overlap of a second).
        for (const m of live) take(m.data, m.headers?.get("Content-Type") === F32);
      });
  };
  void watchParams(nc, cfg, model, view);
  buffered = undefined;
  await catchUp(new Date(Date.now() - cfg.history_s * 1000));

  const want = new URLSearchParams(location.search).get("key");
  if (want !== null) view.select(want);
}

let watching = false;

/** Latest parameters of every key from the KV bucket (retried until the bucket exists). */
async function watchParams(
  nc: NatsConnection,
  cfg: PageConfig,
  model: DashboardModel,
  view: DashboardView,
): Promise<void> {
  if (watching) return;
  watching = true;
  try {
    for (let attempt = 0; !nc.isClosed(); attempt++) {
      try {
        const kv = await new Kvm(nc).open(cfg.params_bucket);
        const it = await kv.watch();
        for await (const e of it) {
          if (e.operation !== "PUT") continue;
          try {
            if (model.addParams(e.json<ParamsLike>())) view.schedule();
          } catch {
            // not JSON
          }
        }
        return;
      } catch {
        await new Promise((r) => setTimeout(r, Math.min(5000, 500 * (attempt + 1))));
      }
    }
  } finally {
    watching = false;
  }
}

main().catch((e) => {
  console.error(e);
  setStatus("error", `error: ${e instanceof Error ? e.message : e}`);
});
