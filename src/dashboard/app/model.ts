/**
 * The dashboard's state, free of DOM and NATS (so it is testable in Deno): one {@link KeyState}
 * per model key, fed with score records, parameter snapshots, alarm episodes and raw observations.
 * Message handlers only mutate this state and mark it dirty; the page renders once per animation
 * frame.
 *
 * @module
 */
import { chi2LogSf } from "../../model/chi2.ts";

/** The subset of a live score record the page reads. */
export interface ScoreLike {
  readonly seq: number;
  readonly key: string;
  readonly t?: number | string;
  readonly p_value: number | null;
  readonly mahalanobis2: number | null;
  readonly anomaly: boolean;
  readonly alarm?: boolean;
  readonly stream_seq?: number;
}

/** The subset of a parameters message the page reads. */
export interface ParamsLike {
  readonly key: string;
  readonly dim: number;
  readonly loc: number[];
  readonly scale_tril: number[][];
  readonly covariance: number[][];
  readonly observations: number;
  readonly steps: number;
  readonly updated_at: string;
}

/** An alarm episode (`<prefix>.alarms.<key>`); `end_*` absent or null while it is open. */
export interface AlarmEpisode {
  readonly key: string;
  readonly start_seq: number;
  readonly end_seq?: number | null;
  readonly start_t?: number | string | null;
  readonly end_t?: number | string | null;
  readonly observations?: number;
  readonly peak_log_p?: number;
  readonly top_dims?: number[];
}

/** −log₁₀ of the smallest p-value plotted (p = 0 is drawn here). */
export const MAX_NLP = 300;

/** −log₁₀ p, clamped to [0, {@link MAX_NLP}]; NaN for a missing p-value. */
export function negLog10(p: number | null | undefined): number {
  if (p === null || p === undefined || !Number.isFinite(p)) return NaN;
  if (p <= 0) return MAX_NLP;
  return Math.min(MAX_NLP, Math.max(0, -Math.log10(p)));
}

/** A fixed-capacity ring of score points: seq, −log₁₀ p, flags (1 = anomaly, 2 = alarm). */
export class ScoreRing {
  seq: Float64Array;
  nlp: Float64Array;
  flags: Uint8Array;
  #start = 0;
  #len = 0;

  constructor(capacity: number) {
    this.seq = new Float64Array(capacity);
    this.nlp = new Float64Array(capacity);
    this.flags = new Uint8Array(capacity);
  }
  get capacity(): number {
    return this.seq.length;
  }
  get length(): number {
    return this.#len;
  }
  push(seq: number, nlp: number, flags: number): void {
    const cap = this.capacity;
    const i = (this.#start + this.#len) % cap;
    this.seq[i] = seq;
    this.nlp[i] = nlp;
    this.flags[i] = flags;
    if (this.#len < cap) this.#len++;
    else this.#start = (this.#start + 1) % cap;
  }
  /** A ring with a larger capacity holding the same points. */
  grow(capacity: number): ScoreRing {
    const out = new ScoreRing(Math.max(capacity, this.capacity));
    this.forEach((s, n, f) => out.push(s, n, f));
    return out;
  }
  forEach(fn: (seq: number, nlp: number, flags: number) => void): void {
    const cap = this.capacity;
    for (let k = 0; k < this.#len; k++) {
      const i = (this.#start + k) % cap;
      fn(this.seq[i], this.nlp[i], this.flags[i]);
    }
  }
}

/** A bounded list (oldest dropped first). */
export class Bounded<T> {
  items: T[] = [];
  constructor(readonly capacity: number) {}
  push(v: T): void {
    this.items.push(v);
    if (this.items.length > this.capacity) {
      this.items.splice(0, this.items.length - this.capacity);
    }
  }
}

/** One parameter snapshot kept for the loc / σ history. */
export interface ParamsPoint {
  /** Seconds since the epoch (from `updated_at`). */
  readonly t: number;
  readonly loc: number[];
  readonly sd: number[];
}

/** Everything the page knows about one key. */
export interface KeyState {
  readonly key: string;
  /** −log₁₀ p of the last score (NaN before the first). */
  lastNlp: number;
  lastSeq: number;
  /** Anomalies seen since the page loaded (including the history it read). */
  anomalies: number;
  /** Scores seen. */
  scores: number;
  /** Arrival times (ms) of recent anomalies and alarm openings, for the last-minute counts. */
  anomalyTimes: number[];
  alarmTimes: number[];
  openAlarm: AlarmEpisode | undefined;
  /** Observations learned from, per the latest parameters (else the last score's seq). */
  observations: number;
  /** Last update (ms since the epoch, arrival time). */
  updatedAt: number;
  params: ParamsLike | undefined;
  paramsHistory: Bounded<ParamsPoint>;
  ring: ScoreRing;
}

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

/**
 * Observations of one message in any accepted form: `{"v":[..]}`, `{"x","y","z"}`, `[n, ...]`,
 * a JSON array of those, or (with `f32`) little-endian float32 rows of `dim` values.
 */
export function decodeObservations(data: Uint8Array, dim: number, f32: boolean): number[][] {
  if (f32) {
    if (dim < 1 || data.byteLength % (4 * dim) !== 0) return [];
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const rows: number[][] = [];
    for (let o = 0; o < data.byteLength; o += 4 * dim) {
      const row: number[] = [];
      for (let j = 0; j < dim; j++) row.push(view.getFloat32(o + 4 * j, true));
      rows.push(row);
    }
    return rows;
  }
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return [];
  }
  const one = (o: unknown): number[] | undefined => {
    if (Array.isArray(o)) return o.every((x) => typeof x === "number") ? o as number[] : undefined;
    if (o !== null && typeof o === "object") {
      const r = o as Record<string, unknown>;
      if (Array.isArray(r.v)) return r.v as number[];
      if (typeof r.x === "number") {
        return [r.x, r.y, r.z].filter((x) => typeof x === "number") as number[];
      }
    }
    return undefined;
  };
  const single = one(v);
  if (single !== undefined) return [single];
  if (Array.isArray(v)) return v.map(one).filter((r): r is number[] => r !== undefined);
  return [];
}

/** Mahalanobis² of `x` under the parameters (z = scale_tril⁻¹ (x − loc)). */
export function mahalanobis2(p: ParamsLike, x: readonly number[]): number {
  const d = p.dim;
  const z = new Array<number>(d).fill(0);
  let m2 = 0;
  for (let i = 0; i < d; i++) {
    let s = (x[i] ?? NaN) - p.loc[i];
    for (let j = 0; j < i; j++) s -= p.scale_tril[i][j] * z[j];
    z[i] = s / p.scale_tril[i][i];
    m2 += z[i] * z[i];
  }
  return m2;
}

/** −log₁₀ P(χ²_dim ≥ m2). */
export function nlpOfMahalanobis2(m2: number, dim: number): number {
  if (!Number.isFinite(m2)) return MAX_NLP;
  return Math.min(MAX_NLP, Math.max(0, -chi2LogSf(m2, dim) / Math.LN10));
}

/**
 * The kσ ellipse of the projection of N(loc, Σ) on dimensions (i, j), as `steps` points.
 */
export function ellipse(
  loc: readonly number[],
  cov: readonly (readonly number[])[],
  i: number,
  j: number,
  k: number,
  steps = 72,
): [number, number][] {
  const a = cov[i][i];
  const b = cov[i][j];
  const c = cov[j][j];
  const mid = (a + c) / 2;
  const rad = Math.sqrt(((a - c) / 2) ** 2 + b * b);
  const l1 = Math.max(0, mid + rad);
  const l2 = Math.max(0, mid - rad);
  const th = 0.5 * Math.atan2(2 * b, a - c);
  const [ct, st] = [Math.cos(th), Math.sin(th)];
  const out: [number, number][] = [];
  for (let s = 0; s <= steps; s++) {
    const u = (2 * Math.PI * s) / steps;
    const e1 = k * Math.sqrt(l1) * Math.cos(u);
    const e2 = k * Math.sqrt(l2) * Math.sin(u);
    out.push([loc[i] + e1 * ct - e2 * st, loc[j] + e1 * st + e2 * ct]);
  }
  return out;
}
