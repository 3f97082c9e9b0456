/**
 * A batch's input as the conditional head reads it, validated: its values (shape, finite), its
 * rows grouped by key, and its context rows (carried features, then sin/cos time features of each
 * row's time; a batch without its context is refused).
 *
 * @module
 */
import type { HeadConfig } from "../../config/head_config.ts";
import { timeFeaturesInto } from "../../model/time_features.ts";
import { checkBatchShape } from "../batch_heads.ts";
import { EngineError } from "../errors.ts";
import type { ObservationBatch } from "../types.ts";

/** The context rows [n, F] of a batch (carried features, then time features), validated. */
export function contextRows(batch: ObservationBatch, config: HeadConfig, F: number): Float64Array {
  const { n } = batch;
  const Fc = config.features;
  const ctx = new Float64Array(n * F);
  if (Fc > 0) {
    const f = batch.features;
    if (f === undefined || batch.featureDim !== Fc || f.length !== n * Fc) {
      throw new EngineError(
        "bad_features",
        `expected ${Fc} features per row (${n * Fc} in all), found ${
          f === undefined ? "none" : `${f.length} with featureDim ${batch.featureDim}`
        }`,
      );
    }
    for (let i = 0; i < n; i++) {
      for (let a = 0; a < Fc; a++) {
        const v = f[i * Fc + a];
        if (!Number.isFinite(v)) {
          throw new EngineError(
            "non_finite_input",
            `expected finite features, found ${v} in row ${i}`,
          );
        }
        ctx[i * F + a] = v;
      }
    }
  }
  const periods = config.time_features;
  if (periods.length > 0) {
    const t = batch.timeMs;
    if (t === undefined || t.length !== n) {
      throw new EngineError(
        "bad_features",
        `expected a time per row for time features (${periods.join(",")}), found ${
          t === undefined ? "none" : `${t.length} for ${n} rows`
        }`,
      );
    }
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(t[i])) {
        throw new EngineError(
          "bad_features",
          `expected a time per row for time features, found ${t[i]} in row ${i}`,
        );
      }
      timeFeaturesInto(t[i], periods, ctx, i * F + Fc);
    }
  }
  return ctx;
}

/** Checks a batch's dimension, lengths and that its values are finite. */
export function checkValues(batch: ObservationBatch, d: number): void {
  checkBatchShape(batch, d);
  const { n, values } = batch;
  for (let i = 0; i < n * d; i++) {
    if (!Number.isFinite(values[i])) {
      const r = Math.floor(i / d);
      throw new EngineError(
        "non_finite_input",
        `expected finite values, found [${
          Array.from(values.subarray(r * d, r * d + d)).join(", ")
        }] in row ${r}`,
      );
    }
  }
}

/** The batch's rows per key (indices into `keys`), in row order. */
export function rowsByKey(batch: ObservationBatch): number[][] {
  const { n, keyIndex, keys } = batch;
  const rows: number[][] = keys.map(() => []);
  for (let i = 0; i < n; i++) {
    const k = keyIndex[i];
    if (k >= keys.length) {
      throw new RangeError(`expected key indices below ${keys.length}, found ${k} in row ${i}`);
    }
    rows[k].push(i);
  }
  return rows;
}
