import { resolveHeadConfig } from "../../schemas/head_config.ts";
import { createLocalEngine } from "../../src/compute_client.ts";
import { mulberry32 } from "../../src/prng.ts";
const u = mulberry32(1);
const g = () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
const cfg = resolveHeadConfig({ dim: 3, backend: "cpu", change_threshold: 0 });
const eng = await createLocalEngine(cfg, (l) => console.log(l));
const keys = ["a"];
const B = Number(Deno.args[0] ?? 1);
const rows: number[][] = [];
for (let t = 0; t < 400; t += B) {
  const vals = new Float64Array(B * 3);
  for (let i = 0; i < B * 3; i++) vals[i] = g() * 2 + 1;
  for (let i = 0; i < B; i++) rows.push([vals[3 * i], vals[3 * i + 1], vals[3 * i + 2]]);
  await eng.process({ n: B, dim: 3, values: vals, keyIndex: new Uint32Array(B), keys });
  if ((t + B) % 100 === 0) {
    const s = (await eng.snapshot())[0];
    const n = rows.length;
    const m = [0, 1, 2].map((a) => rows.reduce((x, r) => x + r[a], 0) / n);
    const c00 = rows.reduce((x, r) => x + (r[0] - m[0]) ** 2, 0) / n;
    console.log(
      n,
      s.loc.map((x) => x.toFixed(4)),
      m.map((x) => x.toFixed(4)),
      s.covariance[0][0].toFixed(4),
      c00.toFixed(4),
      eng.bank.head("a")!.wSum.toFixed(2),
    );
  }
}
