/**
 * The dashboard's state, free of DOM and NATS (so it is testable in Deno): one {@link KeyState}
 * per model key, fed with score records, parameter snapshots, alarm episodes and raw observations.
 * Message handlers only mutate this state and mark it dirty; the page renders once per animation
 * frame.
 *
 * @module
 */
import {
  type AlarmEpisode,
  Bounded,
  type KeyState,
  negLog10,
  type ParamsLike,
  type ScoreLike,
  ScoreRing,
} from "./key_state.ts";

export {
  type AlarmEpisode,
  Bounded,
  type KeyState,
  MAX_NLP,
  negLog10,
  type ParamsLike,
  type ParamsPoint,
  type ScoreLike,
  ScoreRing,
} from "./key_state.ts";
export { ellipse, mahalanobis2, nlpOfMahalanobis2 } from "./gaussian.ts";
export { decodeObservations } from "./decode.ts";

/** Columns of the key table, in order; `sortable` by all of them. */
export const COLUMNS = [
  { id: "key", label: "key" },
  { id: "lastNlp", label: "−log₁₀ p", title: "−log₁₀ p-value of the last score" },
  { id: "anomalies", label: "anomalies", title: "anomalies since the page loaded" },
  { id: "anomalies1m", label: "anom/min", title: "anomalies in the last minute" },
  { id: "alarms1m", label: "alarms/min", title: "alarm episodes opened in the last minute" },
  { id: "open", label: "alarm", title: "open alarm episode" },
  { id: "observations", label: "obs.", title: "observations learned from" },
  { id: "updatedAt", label: "updated", title: "last update received" },
] as const;
export type ColumnId = (typeof COLUMNS)[number]["id"];

const WINDOW_MS = 60_000;

function prune(times: number[], now: number): number {
  let i = 0;
  while (i < times.length && times[i] < now - WINDOW_MS) i++;
  if (i > 0) times.splice(0, i);
  return times.length;
}

/** The store of every key, plus the alarm episode log. */
export class DashboardModel {
  readonly keys = new Map<string, KeyState>();
  readonly episodes = new Bounded<AlarmEpisode & { received: number }>(200);
  /** Bumped when a key appears (the sorted view must be rebuilt). */
  generation = 0;
  dirty = true;
  ringCapacity = 240;
  selectedCapacity = 5000;
  selected: string | undefined;

  constructor(readonly paramsHistory = 120) {}

  key(name: string): KeyState {
    let s = this.keys.get(name);
    if (s === undefined) {
      s = {
        key: name,
        lastNlp: NaN,
        lastSeq: 0,
        anomalies: 0,
        scores: 0,
        anomalyTimes: [],
        alarmTimes: [],
        openAlarm: undefined,
        observations: 0,
        updatedAt: 0,
        params: undefined,
        paramsHistory: new Bounded(this.paramsHistory),
        ring: new ScoreRing(name === this.selected ? this.selectedCapacity : this.ringCapacity),
      };
      this.keys.set(name, s);
      this.generation++;
    }
    return s;
  }

  /** Takes one score record; records at or below the key's last seq are duplicates and dropped. */
  addScore(r: ScoreLike, now = Date.now()): boolean {
    if (typeof r?.key !== "string" || typeof r.seq !== "number") return false;
    const s = this.key(r.key);
    if (r.seq <= s.lastSeq) return false;
    s.lastSeq = r.seq;
    s.scores++;
    const nlp = negLog10(r.p_value);
    s.lastNlp = nlp;
    if (r.anomaly) {
      s.anomalies++;
      s.anomalyTimes.push(now);
    }
    if (s.params === undefined || s.observations < r.seq) s.observations = r.seq;
    s.updatedAt = now;
    s.ring.push(r.seq, nlp, (r.anomaly ? 1 : 0) | (r.alarm ? 2 : 0));
    this.dirty = true;
    return true;
  }

  /** Takes a parameter snapshot (older or equal `steps` than the current one are ignored). */
  addParams(p: ParamsLike, now = Date.now()): boolean {
    if (typeof p?.key !== "string" || !Array.isArray(p.loc)) return false;
    const s = this.key(p.key);
    if (
      s.params !== undefined && p.steps <= s.params.steps && p.updated_at <= s.params.updated_at
    ) {
      return false;
    }
    s.params = p;
    s.observations = Math.max(p.observations, s.lastSeq);
    s.updatedAt = Math.max(s.updatedAt, now);
    const t = Date.parse(p.updated_at);
    s.paramsHistory.push({
      t: (Number.isFinite(t) ? t : now) / 1000,
      loc: p.loc.slice(),
      sd: p.covariance.map((row, i) => Math.sqrt(Math.max(0, row[i]))),
    });
    this.dirty = true;
    return true;
  }

  /** Takes an alarm episode as it opens (no end) or closes. */
  addEpisode(e: AlarmEpisode, now = Date.now()): boolean {
    if (typeof e?.key !== "string") return false;
    const s = this.key(e.key);
    const closed = (e.end_seq !== undefined && e.end_seq !== null) ||
      (e.end_t !== undefined && e.end_t !== null);
    const sameAsOpen = s.openAlarm !== undefined && s.openAlarm.start_seq === e.start_seq;
    if (closed) {
      if (sameAsOpen) s.openAlarm = undefined;
      if (
        !sameAsOpen &&
        !this.episodes.items.some((x) => x.key === e.key && x.start_seq === e.start_seq)
      ) {
        s.alarmTimes.push(now);
      }
    } else {
      if (!sameAsOpen) s.alarmTimes.push(now);
      s.openAlarm = e;
    }
    const i = this.episodes.items.findIndex((x) => x.key === e.key && x.start_seq === e.start_seq);
    if (i >= 0) this.episodes.items[i] = { ...e, received: now };
    else this.episodes.push({ ...e, received: now });
    s.updatedAt = now;
    this.dirty = true;
    return true;
  }

  /** Gives the selected key a longer score history from now on. */
  select(name: string | undefined): void {
    this.selected = name;
    if (name !== undefined) {
      const s = this.keys.get(name);
      if (s !== undefined && s.ring.capacity < this.selectedCapacity) {
        s.ring = s.ring.grow(this.selectedCapacity);
      }
    }
    this.dirty = true;
  }

  /**
   * Puts older score records of a key (read from the stream on selection) before the points its
   * ring holds; counts are not changed (they were counted when they arrived).
   */
  mergeHistory(name: string, records: readonly ScoreLike[]): boolean {
    const s = this.keys.get(name);
    if (s === undefined || records.length === 0) return false;
    let first = Infinity;
    s.ring.forEach((seq) => (first = Math.min(first, seq)));
    const ring = new ScoreRing(Math.max(s.ring.capacity, this.selectedCapacity));
    const older = records.filter((r) => r.key === name && r.seq < first)
      .sort((a, b) => a.seq - b.seq);
    for (const r of older) {
      ring.push(r.seq, negLog10(r.p_value), (r.anomaly ? 1 : 0) | (r.alarm ? 2 : 0));
    }
    s.ring.forEach((q, n, f) => ring.push(q, n, f));
    s.ring = ring;
    this.dirty = true;
    return older.length > 0;
  }

  /** Anomalies / alarm openings of a key within the last minute. */
  lastMinute(s: KeyState, now = Date.now()): { anomalies: number; alarms: number } {
    return { anomalies: prune(s.anomalyTimes, now), alarms: prune(s.alarmTimes, now) };
  }

  /** Keys whose name contains `filter` (case-insensitive), sorted by a column. */
  view(filter: string, column: ColumnId, descending: boolean, now = Date.now()): KeyState[] {
    const f = filter.trim().toLowerCase();
    const out: KeyState[] = [];
    for (const s of this.keys.values()) {
      if (f === "" || s.key.toLowerCase().includes(f)) out.push(s);
    }
    const value = (s: KeyState): number | string => {
      switch (column) {
        case "key":
          return s.key;
        case "lastNlp":
          return Number.isNaN(s.lastNlp) ? -1 : s.lastNlp;
        case "anomalies":
          return s.anomalies;
        case "anomalies1m":
          return this.lastMinute(s, now).anomalies;
        case "alarms1m":
          return this.lastMinute(s, now).alarms;
        case "open":
          return s.openAlarm ? 1 : 0;
        case "observations":
          return s.observations;
        case "updatedAt":
          return s.updatedAt;
      }
    };
    const keyed = out.map((s) => ({ s, v: value(s) }));
    const dir = descending ? -1 : 1;
    keyed.sort((a, b) => {
      const c = a.v < b.v ? -1 : a.v > b.v ? 1 : 0;
      return c !== 0 ? dir * c : a.s.key < b.s.key ? -1 : a.s.key > b.s.key ? 1 : 0;
    });
    return keyed.map((k) => k.s);
  }
}
