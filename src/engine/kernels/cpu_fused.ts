/**
 * The fused hot path as TypeScript loops, accumulating in float64: the cpu implementation of the
 * contract in `fused_kernel.ts` (and the "fused-loop bound" of the benchmark), and the engine's
 * one-pass cpu path, which also writes every per-row score in the same pass.
 *
 * Rows are processed in segments, one head per segment: the head's parameters and its statistics
 * live in locals for the whole segment, so a single-key batch is one tight loop with no memory
 * accumulators (about twice as fast as accumulating into `stats[k]`). Batches of interleaved keys
 * (short runs) use `fusedInterleaved3` (cpu_fused_interleaved.ts) instead, which does accumulate
 * into `stats[k]` but reads and writes memory in row order; it shares this file's second-loop
 * helpers ({@link oddRow}, {@link addWeighted3}, {@link pValues}).
 *
 * @module
 */
import {
  type FloatArray,
  type FusedInputs,
  type FusedOutputs,
  statsWidth,
} from "./fused_kernel.ts";

/** Per-row scores the engine's one-pass path writes beside m2, contrib and the statistics. */
export interface RowScoring {
  readonly logProb: Float64Array;
  readonly pValue: Float64Array;
  readonly anomaly: Uint8Array;
  readonly seq: Float64Array;
  /** Per row: 0 for a re-delivered duplicate (not counted); null: every row counts. */
  readonly counted: Uint8Array | null;
  /** P(χ²_d ≥ m2), or null to write NaN (p-values switched off). */
  readonly sf: ((m2: number) => number) | null;
  /**
   * Rows with m2 above this are anomalous (once the head is past warm-up), unless the segment's
   * head or the key table gives its own threshold (predictive p-values: per key).
   */
  readonly m2Alpha: number;
}

/** One fused pass over a batch: inputs, outputs, and what the segments found. */
export interface FusedPass {
  readonly d: number;
  /** Row-major rows (any origin, as long as `loc` uses the same one). */
  readonly x: FloatArray;
  /**
   * Per row: its weight in the statistics (0: score only; 1, or a forgetting weight in (0, 1]);
   * null: weight 1 for every row.
   */
  readonly rowWeight: Float32Array | null;
  readonly robustC: number;
  readonly robustFloor: number;
  readonly m2: FloatArray;
  readonly contrib: FloatArray;
  /** Segments write their statistics at the offset they are given. */
  readonly stats: Float64Array;
  /** Per-row scores too (the engine), or only m2/contrib/statistics (the kernel). */
  readonly scoring: RowScoring | null;
  /** First row whose m2 is not finite (non-finite input or parameters), or −1. */
  bad: number;
}

/** The head of one segment. */
export interface SegmentHead {
  /** `loc` at `locAt` (d numbers), same origin as the rows. */
  readonly loc: FloatArray;
  readonly locAt: number;
  /** Full row-major d×d lower-triangular factor at `trilAt`. */
  readonly tril: FloatArray;
  readonly trilAt: number;
  /** Where the segment's statsWidth(d) statistics go in `stats` (overwritten, not added to). */
  readonly statsAt: number;
  /** log_prob = logNorm − m2/2: −log det L − d/2·log 2π. Scoring only. */
  readonly logNorm: number;
  /** Observations the head had seen before this segment. Scoring only. */
  readonly observations: number;
  /** Anomalies are flagged from this observation count on. Scoring only. */
  readonly flagFrom: number;
  /** This head's anomaly threshold on m2, if not the pass's `scoring.m2Alpha`. */
  readonly m2Alpha?: number;
}

/**
 * Runs rows `rows[r0..r1)` (or `r0..r1` when `rows` is null) of one head; returns the head's
 * observation count after them. Records the first non-finite row in `pass.bad`.
 */
export function fusedSegment(
  pass: FusedPass,
  rows: Int32Array | null,
  r0: number,
  r1: number,
  head: SegmentHead,
): number {
  return pass.d === 3 ? _segment3(pass, rows, r0, r1, head) : _segmentN(pass, rows, r0, r1, head);
}

/** Runs the fused op; `out` may be given to reuse output buffers. */
export function mvnFusedCpu(inp: FusedInputs, out?: FusedOutputs): FusedOutputs {
  const { n, d, K, x, keyIdx, tril } = inp;
  const S = statsWidth(d);
  const stats = out?.stats ?? new Float64Array(K * S);
  const pass: FusedPass = {
    d,
    x,
    rowWeight: inp.rowWeight,
    robustC: inp.robustC,
    robustFloor: inp.robustFloor,
    m2: out?.m2 ?? new Float64Array(n),
    contrib: out?.contrib ?? new Float64Array(n * d),
    stats,
    scoring: null,
    bad: -1,
  };
  stats.fill(0, 0, K * S);
  // Runs of consecutive rows of one key, each a segment; a key's runs are summed.
  const part = new Float64Array(S);
  const scratch = { loc: inp.loc, locAt: 0, tril, trilAt: 0, statsAt: 0 };
  const partPass: FusedPass = { ...pass, stats: part };
  for (let r0 = 0; r0 < n;) {
    const k = keyIdx[r0];
    let r1 = r0 + 1;
    while (r1 < n && keyIdx[r1] === k) r1++;
    const head = {
      ...scratch,
      locAt: k * d,
      trilAt: k * d * d,
      logNorm: 0,
      observations: 0,
      flagFrom: 0,
    };
    fusedSegment(partPass, null, r0, r1, head);
    for (let s = 0; s < S; s++) stats[k * S + s] += part[s];
    r0 = r1;
  }
  return { m2: pass.m2, contrib: pass.contrib, stats };
}

/** Score arrays of a pass that does not score: the loops' locals stay typed arrays, never null. */
export const EMPTY_F64 = new Float64Array(0);
export const EMPTY_U8 = new Uint8Array(0);

/**
 * d = 3 unrolled: the default telemetry case. The row loop holds no calls (a call spills every
 * accumulator to the stack: ~40% slower here), so rows that need a robust weight, are not learned
 * from or are non-finite are only counted there and handled in a second loop over the segment.
 * Adding them in and subtracting them out again instead would let one wild value wipe out the sums.
 */
function _segment3(
  pass: FusedPass,
  rows: Int32Array | null,
  r0: number,
  r1: number,
  head: SegmentHead,
): number {
  const { x, rowWeight, robustC, m2: m2Out, contrib, scoring } = pass;
  const { loc, locAt, tril, trilAt } = head;
  const l0 = loc[locAt], l1 = loc[locAt + 1], l2 = loc[locAt + 2];
  const t10 = tril[trilAt + 3], t20 = tril[trilAt + 6], t21 = tril[trilAt + 7];
  // 1/L_aa, so the row loop multiplies instead of divides.
  const i0 = 1 / tril[trilAt], i1 = 1 / tril[trilAt + 4], i2 = 1 / tril[trilAt + 8];
  let s0 = 0, s1 = 0, s2 = 0, s00 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s22 = 0;
  let odd = 0, sw = 0;
  let obs = head.observations;
  const flagFrom = head.flagFrom, logNorm = head.logNorm;
  const scored = scoring !== null;
  const logProb = scoring?.logProb ?? EMPTY_F64, seq = scoring?.seq ?? EMPTY_F64;
  const anomaly = scoring?.anomaly ?? EMPTY_U8, counted = scoring?.counted ?? null;
  const m2Alpha = head.m2Alpha ?? scoring?.m2Alpha ?? Infinity;
  for (let r = r0; r < r1; r++) {
    const i = rows === null ? r : rows[r];
    const xb = i * 3;
    const z0 = (x[xb] - l0) * i0;
    const z1 = (x[xb + 1] - l1 - t10 * z0) * i1;
    const z2 = (x[xb + 2] - l2 - t20 * z0 - t21 * z1) * i2;
    const c0 = z0 * z0, c1 = z1 * z1, c2 = z2 * z2;
    contrib[xb] = c0;
    contrib[xb + 1] = c1;
    contrib[xb + 2] = c2;
    const m2 = c0 + c1 + c2;
    m2Out[i] = m2;
    if (scored) {
      if (counted === null || counted[i] === 1) obs++;
      logProb[i] = logNorm - 0.5 * m2;
      seq[i] = obs > 0 ? obs : 1;
      // p_value < alpha ⟺ m² > χ²_d quantile at 1 − alpha (the tail is monotone).
      anomaly[i] = m2 > m2Alpha && obs >= flagFrom ? 1 : 0;
    }
    // False for NaN too: non-finite rows go to the second loop.
    const rw = rowWeight === null ? 1 : rowWeight[i];
    if (m2 <= robustC && rw > 0) {
      const w0 = rw * z0, w1 = rw * z1, w2 = rw * z2;
      sw += rw;
      s0 += w0;
      s1 += w1;
      s2 += w2;
      s00 += w0 * z0;
      s10 += w1 * z0;
      s11 += w1 * z1;
      s20 += w2 * z0;
      s21 += w2 * z1;
      s22 += w2 * z2;
    } else odd++;
  }
  const st = pass.stats, o = head.statsAt;
  st[o] = sw;
  st[o + 1] = sw;
  st[o + 2] = s0;
  st[o + 3] = s1;
  st[o + 4] = s2;
  st[o + 5] = s00;
  st[o + 6] = s10;
  st[o + 7] = s11;
  st[o + 8] = s20;
  st[o + 9] = s21;
  st[o + 10] = s22;
  for (let r = r0; odd > 0 && r < r1; r++) {
    const i = rows === null ? r : rows[r];
    const w = oddRow(pass, i, st, o);
    if (w === 0) continue;
    odd--;
    if (w < 0) continue;
    const xb = i * 3;
    const z0 = (x[xb] - l0) * i0;
    const z1 = (x[xb + 1] - l1 - t10 * z0) * i1;
    addWeighted3(st, o, w, z0, z1, (x[xb + 2] - l2 - t20 * z0 - t21 * z1) * i2);
  }
  if (scoring !== null) pValues(scoring, m2Out, rows, r0, r1);
  return obs;
}

/**
 * Second-loop bookkeeping of row i (d = 3): 0 for a row the first loop accumulated; else the row
 * is counted in stats[o] (its row weight) and the result is its weight w (> 0) to accumulate with,
 * or −1 when there is nothing to add (w = 0, or non-finite m², recorded in `pass.bad`).
 */
export function oddRow(pass: FusedPass, i: number, st: Float64Array, o: number): number {
  const m2 = pass.m2[i];
  const rw = pass.rowWeight === null ? 1 : pass.rowWeight[i];
  if (m2 <= pass.robustC && rw > 0) return 0;
  if (!(m2 < Infinity)) {
    if (pass.bad < 0) pass.bad = i;
    return -1;
  }
  st[o] += rw;
  const w = rw * _robustWeight(m2, pass.robustC, pass.robustFloor);
  return w > 0 ? w : -1;
}

/** Adds a row's weighted statistics [·, w, w·z, w·z·zᵀ] (d = 3) at st[o]. */
export function addWeighted3(
  st: Float64Array,
  o: number,
  w: number,
  z0: number,
  z1: number,
  z2: number,
): void {
  const w0 = w * z0, w1 = w * z1, w2 = w * z2;
  st[o + 1] += w;
  st[o + 2] += w0;
  st[o + 3] += w1;
  st[o + 4] += w2;
  st[o + 5] += w0 * z0;
  st[o + 6] += w1 * z0;
  st[o + 7] += w1 * z1;
  st[o + 8] += w2 * z0;
  st[o + 9] += w2 * z1;
  st[o + 10] += w2 * z2;
}

/** ρ(m2): 1 up to robustC, then e^{−(m2 − robustC)/2}, floored at robustFloor·robustC/m2. */
function _robustWeight(m2: number, robustC: number, robustFloor: number): number {
  return m2 <= robustC
    ? 1
    : Math.max((robustFloor * robustC) / m2, Math.exp(-0.5 * (m2 - robustC)));
}

/** p-values in their own loop: the tail function's call would slow the fused loop down. */
export function pValues(
  s: RowScoring,
  m2: FloatArray,
  rows: Int32Array | null,
  r0: number,
  r1: number,
): void {
  const { pValue, sf } = s;
  for (let r = r0; r < r1; r++) {
    const i = rows === null ? r : rows[r];
    pValue[i] = sf === null ? NaN : sf(m2[i]);
  }
}

function _segmentN(
  pass: FusedPass,
  rows: Int32Array | null,
  r0: number,
  r1: number,
  head: SegmentHead,
): number {
  const { d, x, rowWeight, robustC, robustFloor, m2: m2Out, contrib, scoring } = pass;
  const { loc, locAt, tril, trilAt } = head;
  const S = statsWidth(d);
  const z = new Float64Array(d);
  const inv = new Float64Array(d);
  for (let a = 0; a < d; a++) inv[a] = 1 / tril[trilAt + a * d + a];
  const acc = new Float64Array(S);
  let obs = head.observations;
  for (let r = r0; r < r1; r++) {
    const i = rows === null ? r : rows[r];
    const xb = i * d;
    let m2 = 0;
    for (let a = 0; a < d; a++) {
      let s = x[xb + a] - loc[locAt + a];
      const row = trilAt + a * d;
      for (let b = 0; b < a; b++) s -= tril[row + b] * z[b];
      const za = s * inv[a];
      z[a] = za;
      const c = za * za;
      contrib[xb + a] = c;
      m2 += c;
    }
    m2Out[i] = m2;
    // Scored (and counted) either way: the engine saturates a finite reading's overflowing m².
    if (scoring !== null) {
      obs = _score(scoring, i, m2, head.logNorm, obs, head.flagFrom, head.m2Alpha);
    }
    if (!(m2 < Infinity)) {
      if (pass.bad < 0) pass.bad = i;
      continue;
    }
    const rw = rowWeight === null ? 1 : rowWeight[i];
    acc[0] += rw;
    if (rw === 0) continue;
    const w = rw * _robustWeight(m2, robustC, robustFloor);
    acc[1] += w;
    let p = 2;
    for (let a = 0; a < d; a++) acc[p++] += w * z[a];
    for (let a = 0; a < d; a++) {
      const wa = w * z[a];
      for (let b = 0; b <= a; b++) acc[p++] += wa * z[b];
    }
  }
  pass.stats.set(acc, head.statsAt);
  if (scoring !== null) pValues(scoring, m2Out, rows, r0, r1);
  return obs;
}

/** Writes row i's scores; returns the head's observation count after it. */
function _score(
  s: RowScoring,
  i: number,
  m2: number,
  logNorm: number,
  obs: number,
  flagFrom: number,
  m2Alpha: number | undefined,
): number {
  if (s.counted === null || s.counted[i] === 1) obs++;
  s.logProb[i] = logNorm - 0.5 * m2;
  s.seq[i] = obs > 0 ? obs : 1;
  // p_value < alpha ⟺ m² > the tail's quantile at 1 − alpha (the tail is monotone).
  s.anomaly[i] = m2 > (m2Alpha ?? s.m2Alpha) && obs >= flagFrom ? 1 : 0;
  return obs;
}
