/**
 * Helpers of the learning tests (issue 11): run a cpu engine over a stream in fixed-size batches,
 * Cholesky of a covariance, KL against a learned head.
 *
 * @module
 */
import { type HeadConfigInput, resolveHeadConfig } from "../../src/config/head_config.ts";
import { createLocalEngine } from "../../src/engine/thread/compute_thread.ts";
import type { LocalEngine } from "../../src/engine/local_engine.ts";
import type { HeadSnapshot } from "../../src/engine/types.ts";
import { klMvn } from "./synthetic.ts";

/** Lower Cholesky factor of a symmetric positive-definite matrix (rows). */
export function chol(cov: number[][]): number[][] {
  const d = cov.length;
  const l = Array.from({ length: d }, () => new Array<number>(d).fill(0));
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = cov[i][j];
      for (let k = 0; k < j; k++) s -= l[i][k] * l[j][k];
      l[i][j] = i === j ? Math.sqrt(s) : s / l[j][j];
    }
  }
  return l;
}

/** A cpu engine in this thread (no log lines unless asked). */
export function cpuEngine(
  input: HeadConfigInput,
  log: (line: string) => void = () => {},
): Promise<LocalEngine> {
  return createLocalEngine(resolveHeadConfig({ ...input, backend: "cpu" }), log);
}

/**
 * Feeds rows (row-major, one key) in batches of `batch`; calls `each` with every batch's
 * anomaly flags and the index of its first row.
 */
export async function feed(
  engine: LocalEngine,
  rows: Float64Array,
  d: number,
  batch: number,
  key = "k",
  each?: (anomaly: Uint8Array, first: number) => void,
): Promise<void> {
  const n = rows.length / d;
  for (let i0 = 0; i0 < n; i0 += batch) {
    const m = Math.min(batch, n - i0);
    const out = await engine.process({
      n: m,
      dim: d,
      values: rows.slice(i0 * d, (i0 + m) * d),
      keyIndex: new Uint32Array(m),
      keys: [key],
    });
    each?.(out.anomaly, i0);
    engine.release(out);
  }
}

/** KL(N(mean, cov) ‖ learned head). */
export function klToHead(mean: number[], cov: number[][], h: HeadSnapshot): number {
  return klMvn(mean, chol(cov), h.loc, h.scale_tril);
}

/** KL between two learned heads. */
export function klHeads(a: HeadSnapshot, b: HeadSnapshot): number {
  return klMvn(a.loc, a.scale_tril, b.loc, b.scale_tril);
}
