/**
 * `deno task eval`: generates the seeded suite (`suite.ts`), replays every recording through this
 * project with its defaults (`replay()`, as `deno task replay` would) and, side by side, scores it
 * with a fit-once Hotelling T² chart (`hotelling.ts`, same α); then rates `anomaly`, `alarm` and
 * T² against the labels: point F1 / FAR / MAR and episode metrics (`episode_metrics.ts`), overall
 * and per anomaly kind. Rated rows: those after each recording's phase I rows (`fitRows`), for
 * every method alike.
 *
 * @module
 */
import type { EpisodeMetricsOut, ReplayMetrics } from "../../schemas/replay.ts";
import { resolveHeadConfig } from "../config/head_config.ts";
import { DEFAULT_ALARM_THRESHOLD } from "../model/alarm.ts";
import { EpisodeCounter } from "../replay/episode_metrics.ts";
import { Confusion } from "../replay/metrics.ts";
import { replay } from "../replay/replay.ts";
import { HotellingT2 } from "./hotelling.ts";
import { ANOMALY_KINDS, generateSuite, type Recording, type SuiteSpec, toCsv } from "./suite.ts";

/** The outputs compared. */
export const METHODS = ["anomaly", "alarm", "t2"] as const;
export type Method = (typeof METHODS)[number];

/** Point and episode metrics of one method over a set of recordings. */
export interface MethodResult {
  readonly point: ReplayMetrics;
  readonly episodes: EpisodeMetricsOut;
}

/** Results of one group of recordings (all, or one kind). */
export type GroupResult = Record<Method, MethodResult>;

/** What `runEval` resolves to (and `--json` writes). */
export interface EvalResult {
  readonly suite: SuiteSpec;
  readonly recordings: number;
  readonly rated_rows: number;
  readonly alpha: number;
  readonly alarm_threshold: number;
  readonly backend: string;
  readonly seconds: number;
  readonly overall: GroupResult;
  readonly by_kind: Record<string, GroupResult>;
  readonly by_dim: Record<string, GroupResult>;
}

class Group {
  readonly point = new Map<Method, Confusion>(METHODS.map((m) => [m, new Confusion()]));
  readonly episodes = new Map<Method, EpisodeCounter>(
    METHODS.map((m) => [m, new EpisodeCounter()]),
  );
  add(key: string, method: Method, label: 0 | 1, flag: boolean): void {
    this.point.get(method)!.add(label, flag);
    this.episodes.get(method)!.add(key, label, flag);
  }
  result(): GroupResult {
    const out = {} as Record<Method, MethodResult>;
    for (const m of METHODS) {
      out[m] = { point: this.point.get(m)!.metrics(), episodes: this.episodes.get(m)!.metrics() };
    }
    return out;
  }
}

/** Options of {@link runEval}. */
export interface EvalOptions {
  readonly suite: SuiteSpec;
  /** Where the recordings and score records go; default a temporary directory, removed after. */
  readonly dir?: string;
  /** Engine backend (default `auto`, the project's default). */
  readonly backend?: "auto" | "cpu" | "webgpu";
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

/** Generates the suite, scores it both ways and rates the results. */
export async function runEval(opts: EvalOptions): Promise<EvalResult> {
  const started = performance.now();
  const log = opts.log ?? (() => {});
  const alpha = resolveHeadConfig().alpha;
  const keep = opts.dir !== undefined;
  const dir = opts.dir ?? (await Deno.makeTempDir({ prefix: "mvn_eval_" }));
  await Deno.mkdir(dir, { recursive: true });
  const overall = new Group();
  const byKind = new Map<string, Group>();
  const byDim = new Map<string, Group>();
  let rated = 0;
  let backend = "";
  try {
    const recs = generateSuite(opts.suite);
    for (const rec of recs) {
      const csv = `${dir}/${rec.name}.csv`;
      const out = `${dir}/${rec.name}.scores.ndjson`;
      await Deno.writeTextFile(csv, toCsv(rec));
      const summary = await replay({
        input: csv,
        out,
        quiet: true,
        backend: opts.backend ?? "auto",
      }, { stderr: () => {}, progress: false });
      backend = summary.backend;
      const flags = await readFlags(out, rec.n);
      const t2 = t2Flags(rec, alpha);
      const groups = [
        overall,
        mapGet(byKind, rec.kind),
        mapGet(byDim, `d${rec.d}`),
      ];
      for (let t = rec.fitRows; t < rec.n; t++) {
        const label = rec.labels[t] as 0 | 1;
        for (const g of groups) {
          g.add(rec.name, "anomaly", label, flags.anomaly[t] === 1);
          g.add(rec.name, "alarm", label, flags.alarm[t] === 1);
          g.add(rec.name, "t2", label, t2[t] === 1);
        }
        rated++;
      }
      log(
        `eval: ${rec.name}: ${summary.observations} rows, ${summary.alarm_episodes} alarm episodes`,
      );
    }
  } finally {
    if (!keep) await Deno.remove(dir, { recursive: true });
  }
  const by = (m: Map<string, Group>) => Object.fromEntries([...m].map(([k, g]) => [k, g.result()]));
  return {
    suite: opts.suite,
    recordings: opts.suite.dims.length * ANOMALY_KINDS.length,
    rated_rows: rated,
    alpha,
    alarm_threshold: DEFAULT_ALARM_THRESHOLD,
    backend,
    seconds: (performance.now() - started) / 1000,
    overall: overall.result(),
    by_kind: by(byKind),
    by_dim: by(byDim),
  };
}

function mapGet(m: Map<string, Group>, k: string): Group {
  let g = m.get(k);
  if (g === undefined) m.set(k, g = new Group());
  return g;
}

/** `anomaly` and `alarm` per row from replay's score records (one key, input order). */
async function readFlags(
  path: string,
  n: number,
): Promise<{ anomaly: Uint8Array; alarm: Uint8Array }> {
  const anomaly = new Uint8Array(n);
  const alarm = new Uint8Array(n);
  const lines = (await Deno.readTextFile(path)).split("\n");
  let i = 0;
  for (const line of lines) {
    if (line === "") continue;
    const r = JSON.parse(line) as { anomaly: boolean; alarm: boolean };
    anomaly[i] = r.anomaly ? 1 : 0;
    alarm[i] = r.alarm ? 1 : 0;
    i++;
  }
  if (i !== n) throw new Error(`expected ${n} score records in ${path}, found ${i}`);
  return { anomaly, alarm };
}

/** The fit-once T² chart's flags: phase I = the first fitRows rows. */
function t2Flags(rec: Recording, alpha: number): Uint8Array {
  const h = HotellingT2.fit(rec.values, rec.fitRows, rec.d, alpha);
  const out = new Uint8Array(rec.n);
  for (let t = rec.fitRows; t < rec.n; t++) out[t] = h.t2(rec.values, t * rec.d) > h.limit ? 1 : 0;
  return out;
}

const LABEL: Record<Method, string> = {
  anomaly: "`anomaly` (per observation)",
  alarm: "`alarm` (episodes)",
  t2: "Hotelling T², fit once",
};

function f(x: number | null, digits = 3): string {
  return x === null ? "–" : x.toFixed(digits);
}

/** The results as markdown tables. */
export function markdown(r: EvalResult): string {
  const lines: string[] = [];
  const s = r.suite;
  lines.push(
    `Suite: seed ${s.seed}, d ∈ {${
      s.dims.join(", ")
    }}, ${r.recordings} recordings × ${s.rows} rows ` +
      `(${s.segments} segments each; the first ${s.fitRows} rows are T²'s phase I and not rated), ` +
      `${r.rated_rows} rated rows; α = ${r.alpha}, alarm threshold ${r.alarm_threshold}, ` +
      `backend ${r.backend}.`,
  );
  lines.push("");
  lines.push(
    "| output | F1 | FAR | MAR | segments detected | missed | median delay (obs) | false episodes / 10k obs |",
  );
  lines.push("|---|---|---|---|---|---|---|---|");
  for (const m of METHODS) {
    const { point: p, episodes: e } = r.overall[m];
    lines.push(
      `| ${LABEL[m]} | ${f(p.f1)} | ${f(p.far, 4)} | ${f(p.mar)} | ${e.detected}/${e.segments} | ` +
        `${e.missed} | ${f(e.median_delay, 1)} | ${f(e.false_per_10k, 2)} |`,
    );
  }
  for (const [title, group] of [["anomaly kind", r.by_kind], ["dimension", r.by_dim]] as const) {
    lines.push("");
    lines.push(`By ${title} (F1 / FAR / MAR; segments detected; median delay):`);
    lines.push("");
    lines.push(`| ${title} | ${METHODS.map((m) => LABEL[m]).join(" | ")} |`);
    lines.push(`|---|${METHODS.map(() => "---").join("|")}|`);
    for (const [k, g] of Object.entries(group)) {
      const cells = METHODS.map((m) => {
        const { point: p, episodes: e } = g[m];
        return `${f(p.f1)} / ${f(p.far, 4)} / ${f(p.mar)}; ${e.detected}/${e.segments}; ` +
          `${f(e.median_delay, 0)}`;
      });
      lines.push(`| ${k} | ${cells.join(" | ")} |`);
    }
  }
  return lines.join("\n") + "\n";
}
