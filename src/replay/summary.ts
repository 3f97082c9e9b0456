/**
 * Replay's summary: the {@link ReplaySummary} built from a run's totals, options, engine and
 * alarm tally, and its one line on stderr ({@link summaryLine}).
 *
 * @module
 */
import { ReplaySummary } from "../../schemas/replay.ts";
import type { DegenerateEntry, ReplayOptions, SkipReason } from "../../schemas/replay.ts";
import type { AlarmTally } from "./alarms.ts";

/** What a replay counted as it read and scored. */
export interface RunTotals {
  readonly files: number;
  readonly dim: number;
  readonly observations: number;
  readonly anomalies: number;
  readonly keys: number;
  readonly skipped: ReadonlyMap<SkipReason, number>;
  readonly blank: number;
  readonly badLabels: number;
  readonly degenerate: readonly DegenerateEntry[];
  readonly stopped: boolean;
  readonly seconds: number;
}

/** The run's summary (validated against its schema). */
export function buildSummary(
  opts: ReplayOptions,
  engine: { readonly backend: string; readonly backendReason: string },
  t: RunTotals,
  tally: AlarmTally,
): ReplaySummary {
  const { observations, seconds, skipped } = t;
  const { confusion, alarmConfusion, anomalyEpisodes, alarmEpisodes } = tally;
  let skippedTotal = 0;
  for (const c of skipped.values()) skippedTotal += c;
  return ReplaySummary.parse({
    input: opts.input,
    files: t.files,
    dim: t.dim,
    observations,
    anomalies: t.anomalies,
    keys: t.keys,
    skipped: skippedTotal,
    skipped_by_reason: Object.fromEntries([...skipped].sort((a, b) => (a[0] < b[0] ? -1 : 1))),
    blank_lines: t.blank,
    bad_labels: t.badLabels,
    degenerate_columns: t.degenerate,
    stopped: t.stopped,
    seconds,
    obs_per_s: seconds > 0 ? observations / seconds : 0,
    backend: engine.backend,
    backend_reason: engine.backendReason,
    seed: opts.seed ?? null,
    batch: opts.batch,
    freeze: opts.freeze,
    train_rows: opts.train_rows ?? null,
    metrics: confusion.labelled > 0 ? confusion.metrics() : null,
    alarm_threshold: opts.alarm_threshold,
    alarm_episodes: tally.episodes,
    alarm_metrics: alarmConfusion.labelled > 0 ? alarmConfusion.metrics() : null,
    episode_metrics: confusion.labelled > 0
      ? { anomaly: anomalyEpisodes.metrics(), alarm: alarmEpisodes.metrics() }
      : null,
  });
}

/** The one-line summary printed on stderr. */
export function summaryLine(s: ReplaySummary): string {
  const reasons = Object.entries(s.skipped_by_reason).map(([r, c]) => `${r} ${c}`).join(", ");
  let line = `replay: ${s.observations} observations, ${s.keys} keys, ${s.anomalies} anomalies, ` +
    `${s.skipped} skipped${reasons ? ` (${reasons})` : ""}, ` +
    `${s.bad_labels > 0 ? `${s.bad_labels} unreadable labels (scored unlabelled), ` : ""}` +
    `${
      s.degenerate_columns.length > 0 ? `${s.degenerate_columns.length} degenerate columns, ` : ""
    }` +
    `${s.seconds.toFixed(2)} s, ` +
    `${Math.round(s.obs_per_s)} obs/s, backend ${s.backend}`;
  if (s.metrics !== null) {
    const m = s.metrics;
    const f = (x: number | null) => (x === null ? "n/a" : x.toFixed(4));
    line += `; TP ${m.tp} FP ${m.fp} FN ${m.fn} TN ${m.tn} F1 ${f(m.f1)} FAR ${f(m.far)} ` +
      `MAR ${f(m.mar)}`;
  }
  line += `; ${s.alarm_episodes} alarm episodes`;
  if (s.alarm_metrics !== null && s.episode_metrics !== null) {
    const m = s.alarm_metrics;
    const e = s.episode_metrics.alarm;
    const f = (x: number | null) => (x === null ? "n/a" : x.toFixed(4));
    line += ` (alarm F1 ${f(m.f1)} FAR ${f(m.far)} MAR ${f(m.mar)}; segments detected ` +
      `${e.detected}/${e.segments}, false episodes ${f(e.false_per_10k)} per 10k)`;
  }
  if (s.stopped) line += "; stopped at the first bad line (--strict)";
  return line;
}
