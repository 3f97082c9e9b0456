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
const eng = await createLocalEngine(cfg, () => {});
const keys = ["pump-a", "pump-b"];
let i = 0;
let s = 0;
let last = 0;
for (const r of lines) {
  i++;
  const v = r.v ?? [r.x, r.y, r.z];
  const out = await eng.process({
    n: 1,
    dim: 3,
    values: Float64Array.from(v),
    keyIndex: Uint32Array.of(keys.indexOf(r.key)),
    keys,
  });
  if (r.key !== "pump-a") continue;
  const h = eng.bank.head("pump-a")!;
  if (h.restarts !== last || i < 400 && i % 20 === 1) {
    console.log(
      i,
      "m2",
      out.mahalanobis2[0].toFixed(2),
      "lab",
      r.label,
      "nEff",
      eng.bank.nEff(h).toFixed(1),
      "cusum",
      h.cusum.toFixed(2),
      "restarts",
      h.restarts,
      "init",
      h.init?.count.toFixed(1),
    );
    last = h.restarts;
  }
}
