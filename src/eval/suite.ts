/**
 * The public evaluation suite of `deno task eval`: seeded multi-sensor recordings with labelled
 * anomaly segments. Same seed, same files, on any machine.
 *
 * Normal behaviour of a recording with d sensors (d from 3 to 16), per sensor j, in its own units:
 *
 *   x_j(t) = μ_j + s_j·( Σ_k A_jk f_k(t)  +  c_j sin(2πt/P + φ_j)  +  σ_j ε_j(t) )
 *
 * q = ⌈d/3⌉ latent factors f_k (AR(1), φ = 0.98, unit variance: slowly wandering, shared, so the
 * sensors are correlated), one slow cycle of period P (200–800 rows) with per-sensor amplitude and
 * phase, white noise; offsets μ_j and scales s_j (0.1–100) make the units awkward. τ_j below is
 * the sensor's standard deviation in those brackets.
 *
 * Each recording holds segments of one kind, after its first `fitRows` rows (the classical chart's
 * phase I), at least 300 normal rows apart; every row of a segment is labelled 1:
 *  - `spike`: 1–3 rows, 1–2 sensors off by ±6τ;
 *  - `level_shift`: 80–200 rows, 1–2 sensors shifted by ±3τ;
 *  - `variance_burst`: 50–150 rows, 1–3 sensors with extra noise of 3τ;
 *  - `correlation_break`: 100–200 rows, the sensor with the strongest loadings follows the factors
 *    with the opposite sign (same marginal distribution, broken correlation);
 *  - `stuck_sensor`: 100–200 rows, a sensor repeats its value from the segment's start;
 *  - `slow_drift`: 200–400 rows, a sensor drifts linearly from 0 to ±4τ (labelled throughout).
 *
 * @module
 */
import { mulberry32 } from "../model/prng.ts";

export const ANOMALY_KINDS = [
  "spike",
  "level_shift",
  "variance_burst",
  "correlation_break",
  "stuck_sensor",
  "slow_drift",
] as const;
export type AnomalyKind = (typeof ANOMALY_KINDS)[number];

/** What to generate. */
export interface SuiteSpec {
  readonly seed: number;
  /** Sensor counts; each gets one recording per kind. */
  readonly dims: readonly number[];
  /** Rows per recording. */
  readonly rows: number;
  /** Leading normal rows (the T² chart's phase I). */
  readonly fitRows: number;
  /** Segments per recording. */
  readonly segments: number;
}

/** The default suite: d ∈ {3, 6, 10, 16} × 6 kinds = 24 recordings of 6,000 rows. */
export const DEFAULT_SUITE: SuiteSpec = {
  seed: 2026,
  dims: [3, 6, 10, 16],
  rows: 6000,
  fitRows: 1000,
  segments: 5,
};

/** A tiny suite for smoke tests. */
export const QUICK_SUITE: SuiteSpec = {
  seed: 7,
  dims: [3, 5],
  rows: 2000,
  fitRows: 600,
  segments: 3,
};

/** One generated recording. */
export interface Recording {
  /** File stem, e.g. `d06_level_shift`. */
  readonly name: string;
  readonly kind: AnomalyKind;
  readonly d: number;
  readonly n: number;
  readonly fitRows: number;
  /** n×d row-major. */
  readonly values: Float64Array;
  readonly labels: Uint8Array;
  /** Labelled segments, [start, end) row indices. */
  readonly segments: readonly { readonly start: number; readonly end: number }[];
}

function gaussian(u: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    let a = 0;
    while (a === 0) a = u();
    const r = Math.sqrt(-2 * Math.log(a));
    const th = 2 * Math.PI * u();
    spare = r * Math.sin(th);
    return r * Math.cos(th);
  };
}

/** Generates every recording of the suite (deterministic in `spec`). */
export function generateSuite(spec: SuiteSpec): Recording[] {
  const out: Recording[] = [];
  let r = 0;
  for (const d of spec.dims) {
    for (const kind of ANOMALY_KINDS) {
      out.push(generateRecording(spec, d, kind, spec.seed * 1000 + r++));
    }
  }
  return out;
}

/** One recording of `kind` with d sensors. */
export function generateRecording(
  spec: SuiteSpec,
  d: number,
  kind: AnomalyKind,
  seed: number,
): Recording {
  const u = mulberry32(seed);
  const g = gaussian(u);
  const uni = (a: number, b: number) => a + (b - a) * u();
  const int = (a: number, b: number) => Math.floor(uni(a, b + 1));
  const n = spec.rows;
  const q = Math.ceil(d / 3);
  const A = Array.from({ length: d }, () => Array.from({ length: q }, () => 0.8 * g()));
  const c = Array.from({ length: d }, () => uni(0.3, 1));
  const phase = Array.from({ length: d }, () => uni(0, 2 * Math.PI));
  const sigma = Array.from({ length: d }, () => uni(0.2, 0.5));
  const mu = Array.from({ length: d }, () => uni(-5, 5));
  const scale = Array.from({ length: d }, () => 10 ** uni(-1, 2));
  const tau = A.map((row, j) =>
    Math.sqrt(row.reduce((s, a) => s + a * a, 0) + c[j] * c[j] / 2 + sigma[j] * sigma[j])
  );
  const period = uni(200, 800);
  const phi = 0.98;
  const innov = Math.sqrt(1 - phi * phi);
  const f = Array.from({ length: q }, () => g());

  // Segments: evenly spread after fitRows, jittered, ≥ 300 rows apart.
  const segments: { start: number; end: number; sensors: number[]; sign: number }[] = [];
  const span = (n - spec.fitRows) / spec.segments;
  for (let s = 0; s < spec.segments; s++) {
    const len = kind === "spike"
      ? int(1, 3)
      : kind === "level_shift"
      ? int(80, 200)
      : kind === "variance_burst"
      ? int(50, 150)
      : kind === "slow_drift"
      ? int(200, 400)
      : int(100, 200);
    const room = Math.max(0, span - len - 300);
    const start = Math.floor(spec.fitRows + s * span + 150 + uni(0, room));
    const count = kind === "variance_burst" ? int(1, Math.min(3, d)) : kind === "spike" ||
        kind === "level_shift"
      ? int(1, Math.min(2, d))
      : 1;
    const sensors: number[] = [];
    if (kind === "correlation_break") {
      // The sensor most tied to the factors (a break elsewhere would be invisible by design).
      let best = 0;
      for (let j = 1; j < d; j++) {
        const w = (k: number) => A[k].reduce((s2, a) => s2 + a * a, 0) / (tau[k] * tau[k]);
        if (w(j) > w(best)) best = j;
      }
      sensors.push(best);
    } else {
      while (sensors.length < count) {
        const j = int(0, d - 1);
        if (!sensors.includes(j)) sensors.push(j);
      }
    }
    segments.push({ start, end: Math.min(n, start + len), sensors, sign: u() < 0.5 ? -1 : 1 });
  }

  const values = new Float64Array(n * d);
  const labels = new Uint8Array(n);
  const x = new Float64Array(d);
  let seg = 0;
  for (let t = 0; t < n; t++) {
    for (let k = 0; k < q; k++) f[k] = phi * f[k] + innov * g();
    for (let j = 0; j < d; j++) {
      let factor = 0;
      for (let k = 0; k < q; k++) factor += A[j][k] * f[k];
      x[j] = factor + c[j] * Math.sin((2 * Math.PI * t) / period + phase[j]) + sigma[j] * g();
    }
    while (seg < segments.length && t >= segments[seg].end) seg++;
    const s = segments[seg];
    if (s !== undefined && t >= s.start && t < s.end) {
      labels[t] = 1;
      const at = t - s.start;
      const len = s.end - s.start;
      for (const j of s.sensors) {
        switch (kind) {
          case "spike":
            x[j] += s.sign * 6 * tau[j];
            break;
          case "level_shift":
            x[j] += s.sign * 3 * tau[j];
            break;
          case "variance_burst":
            x[j] += 3 * tau[j] * g();
            break;
          case "correlation_break": {
            let factor = 0;
            for (let k = 0; k < q; k++) factor += A[j][k] * f[k];
            x[j] -= 2 * factor;
            break;
          }
          case "stuck_sensor":
            if (at > 0) x[j] = (values[(t - 1) * d + j] / scale[j]) - mu[j];
            break;
          case "slow_drift":
            x[j] += s.sign * 4 * tau[j] * ((at + 1) / len);
            break;
        }
      }
    }
    // Ten significant digits: exactly what the CSV holds, so every method sees the same numbers.
    for (let j = 0; j < d; j++) {
      values[t * d + j] = Number((scale[j] * (mu[j] + x[j])).toPrecision(10));
    }
  }
  const name = `d${String(d).padStart(2, "0")}_${kind}`;
  return {
    name,
    kind,
    d,
    n,
    fitRows: spec.fitRows,
    values,
    labels,
    segments: segments.map(({ start, end }) => ({ start, end })),
  };
}

/** CSV text: `t,s0,…,s{d−1},label`, one row per observation. */
export function toCsv(rec: Recording): string {
  const d = rec.d;
  const header = ["t", ...Array.from({ length: d }, (_, j) => `s${j}`), "label"].join(",");
  const lines = [header];
  for (let t = 0; t < rec.n; t++) {
    let line = String(t);
    for (let j = 0; j < d; j++) line += "," + String(rec.values[t * d + j]);
    lines.push(line + "," + rec.labels[t]);
  }
  return lines.join("\n") + "\n";
}
