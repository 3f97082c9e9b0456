import { resolveHeadConfig } from "../../schemas/head_config.ts";
import { createLocalEngine } from "../../src/compute_client.ts";
const lines = (await Deno.readTextFile("data/sample.ndjson")).trim().split("\n").map((l) =>
  JSON.parse(l)
);
const cfg = resolveHeadConfig({
  dim: 3,
  backend: "cpu",
  change_threshold: Number(Deno.args[0] ?? 24),
});
const eng = await createLocalEngine(cfg, (l) => console.log(l));
const keys = ["pump-a", "pump-b"];
let fp = 0, tp = 0, fn = 0;
for (const r of lines) {
  const v = r.v ?? [r.x, r.y, r.z];
  const out = await eng.process({
    n: 1,
    dim: 3,
    values: Float64Array.from(v),
    keyIndex: Uint32Array.of(keys.indexOf(r.key)),
    keys,
  });
  const a = out.anomaly[0];
  if (a && r.label) tp++;
  else if (a) fp++;
  else if (r.label) fn++;
}
console.log({ tp, fp, fn });
console.log(
  JSON.stringify(
    (await eng.exportState()).map((s) => ({ k: s.key, m: s.memory, init: s.init?.count })),
  ),
);
