/**
 * Non-finite input and m² overflow: finding the rows whose m² is not finite, refusing a batch
 * with non-finite values (`non_finite_input`), saturating the scores of finite readings whose m²
 * overflows, and the float32 kernel's rerun with those rows parked at their key's loc.
 *
 * @module
 */
import { EngineError } from "./errors.ts";
import type { Head } from "./head.ts";
import type { ObservationBatch, ScoreBatch } from "./types.ts";

/** Index of the first row whose m² is not finite, or −1. */
export function firstNonFinite(m2: Float64Array): number {
  for (let i = 0; i < m2.length; i++) if (!(m2[i] < Infinity)) return i;
  return -1;
}

/**
 * Rows whose m² is not finite (after a pass that found one). A row with a non-finite value is
 * refused (the whole batch: `non_finite_input`, after `cleanup`); the others are finite readings
 * whose m² overflows, returned.
 */
export function overflowRows(
  values: Float64Array,
  m2: Float64Array,
  d: number,
  cleanup: () => void,
): Int32Array {
  const rows: number[] = [];
  for (let i = 0; i < m2.length; i++) {
    if (m2[i] < Infinity) continue;
    for (let a = 0; a < d; a++) {
      if (!Number.isFinite(values[i * d + a])) {
        cleanup();
        nonFinite(values, i, d);
      }
    }
    rows.push(i);
  }
  return Int32Array.from(rows);
}

/**
 * Overflowing rows: m² = Number.MAX_VALUE when it is not finite, log_prob = −Number.MAX_VALUE,
 * p_value 0, anomaly, every non-finite contribution Number.MAX_VALUE (docs/model.md).
 */
export function saturate(out: ScoreBatch, rows: Int32Array, withP: boolean): void {
  const d = out.dim;
  for (const i of rows) {
    if (!(out.mahalanobis2[i] < Infinity)) {
      out.mahalanobis2[i] = Number.MAX_VALUE;
      out.logProb[i] = -Number.MAX_VALUE;
    }
    if (!(out.logProb[i] > -Infinity)) out.logProb[i] = -Number.MAX_VALUE;
    if (withP) out.pValue[i] = 0;
    out.anomaly[i] = 1;
    for (let a = 0; a < d; a++) {
      if (!(out.contrib[i * d + a] < Infinity)) out.contrib[i * d + a] = Number.MAX_VALUE;
    }
  }
}

/** The batch with `rows` moved to their key's loc (m² = 0) and row weight 0, for the kernel. */
export function parkRows(
  batch: ObservationBatch,
  rows: Int32Array,
  heads: Head[],
  local: Int32Array,
  rowWeight: Float32Array | null,
  n: number,
): { batch: ObservationBatch; rowWeight: Float32Array } {
  const d = batch.dim;
  const values = batch.values.slice();
  const weight = rowWeight === null ? new Float32Array(n).fill(1) : rowWeight.slice();
  for (const i of rows) {
    const h = heads[local[batch.keyIndex[i]]];
    for (let a = 0; a < d; a++) values[i * d + a] = h.frameLoc[a] + h.locC[a];
    weight[i] = 0;
  }
  return { batch: { ...batch, values }, rowWeight: weight };
}

/** Row i's m² and contributions in float64 (host), for rows whose float32 m² overflowed. */
export function hostM2(
  values: Float64Array,
  i: number,
  d: number,
  h: Head,
  contrib: Float64Array,
): number {
  const z = new Float64Array(d);
  let m2 = 0;
  for (let a = 0; a < d; a++) {
    let s = values[i * d + a] - h.frameLoc[a] - h.locC[a];
    for (let b = 0; b < a; b++) s -= h.tril[a * d + b] * z[b];
    z[a] = s / h.tril[a * d + a];
    contrib[i * d + a] = z[a] * z[a];
    m2 += z[a] * z[a];
  }
  return m2;
}

/** Whether a head's parameters are all finite. */
export function finiteHead(h: Head): boolean {
  // No array of the three or iterators: this runs per new key (many keys).
  return allFinite(h.frameLoc) && allFinite(h.locC) && allFinite(h.tril) &&
    Number.isFinite(h.logDet);
}

function allFinite(a: Float64Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}

/** Throws `non_finite_input` for row i. */
function nonFinite(values: Float64Array, i: number, d: number): never {
  const row = Array.from(values.subarray(i * d, i * d + d));
  throw new EngineError(
    "non_finite_input",
    `expected finite values, found [${row.join(", ")}] in row ${i}`,
  );
}

/** Throws `non_finite_input` unless every value of `rows` is finite. */
export function checkFinite(values: Float64Array, rows: Int32Array, d: number): void {
  for (const i of rows) {
    for (let a = 0; a < d; a++) {
      const v = values[i * d + a];
      if (!Number.isFinite(v)) {
        throw new EngineError("non_finite_input", `expected finite values, found ${v} in row ${i}`);
      }
    }
  }
}
