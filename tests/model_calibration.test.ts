/**
 * Issue 11, floor 4: honest p-values for young keys. On stationary Gaussian streams (d = 3, 8, 16)
 * with `--warmup` 10·d, the fraction of observations flagged among those from the warm-up to 4× the
 * warm-up lies within [α/2, 2α] for α = 1e-2 and 1e-3 (predictive F tail with the Kish n). The
 * plug-in χ² flags of the same heads are shown beside it for contrast.
 */
import assert from "node:assert/strict";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import { chi2Isf } from "../src/model/chi2.ts";
import { createLocalEngine } from "../src/engine/thread/compute_thread.ts";
import { gaussian, rng } from "./helpers/synthetic.ts";

/** Many independent keys, interleaved one row per key per batch (as live at a low rate). */
async function flaggedFraction(d: number, alpha: number, keys: number, seed: number) {
  const warmup = 10 * d;
  const T = 4 * warmup;
  const engine = await createLocalEngine(
    resolveHeadConfig({ dim: d, alpha, warmup, backend: "cpu" }),
    () => {},
  );
  try {
    const g = gaussian(rng(seed));
    const names = Array.from({ length: keys }, (_, k) => `k${k}`);
    const keyIndex = Uint32Array.from(names, (_, k) => k);
    // Each key its own (awkward) scale and correlation: x = loc + L·e.
    const L = new Float64Array(d * d);
    for (let a = 0; a < d; a++) {
      for (let b = 0; b < a; b++) L[a * d + b] = 0.8;
      L[a * d + a] = 1 + a;
    }
    let flagged = 0, window = 0, plugIn = 0;
    const chi2Cut = chi2Isf(alpha, d);
    const e = new Float64Array(d);
    for (let t = 0; t < T; t++) {
      const values = new Float64Array(keys * d);
      for (let k = 0; k < keys; k++) {
        for (let a = 0; a < d; a++) e[a] = g();
        for (let a = 0; a < d; a++) {
          let s = 100 * a;
          for (let b = 0; b <= a; b++) s += L[a * d + b] * e[b];
          values[k * d + a] = s * 10 ** (a % 4);
        }
      }
      const out = await engine.process({
        n: keys,
        dim: d,
        values,
        keyIndex,
        keys: names,
        pValues: false,
      });
      const seq = t + 1;
      if (seq > warmup) {
        for (let k = 0; k < keys; k++) {
          flagged += out.anomaly[k];
          if (out.mahalanobis2[k] > chi2Cut) plugIn++;
        }
        window += keys;
      }
      engine.release(out);
    }
    return { f: flagged / window, plugIn: plugIn / window };
  } finally {
    await engine.close();
  }
}

Deno.test("calibration of young keys (warm-up 10·d)", async (t) => {
  for (const [d, keys] of [[3, 600], [8, 250], [16, 120]]) {
    for (const alpha of [1e-2, 1e-3]) {
      await t.step(`d=${d} α=${alpha}`, async () => {
        const { f, plugIn } = await flaggedFraction(d, alpha, keys, 500 + d);
        console.log(
          `d=${d} α=${alpha}: flagged ${(f / alpha).toFixed(2)}·α over observations 10·d..40·d ` +
            `(plug-in χ² would flag ${(plugIn / alpha).toFixed(2)}·α)`,
        );
        assert(f >= 0.5 * alpha && f <= 2 * alpha, `fraction ${f}`);
      });
    }
  }
});
