import { cpuEngine, feed, klToHead } from "../../tests/_learning.ts";
const d = Number(Deno.args[0] ?? 32);
const fx = JSON.parse(await Deno.readTextFile(`tests/fixtures/mle_awkward_d${d}.json`));
for (const rp of [1e-3, 1e-300]) {
  for (const batch of [1, 37, 200]) {
    const engine = await cpuEngine({ dim: d, robust_p: rp }, (l) => console.log(l));
    await feed(engine, Float64Array.from(fx.rows), d, batch);
    const [h] = await engine.snapshot();
    console.log(rp, batch, klToHead(fx.mean, fx.cov, h), engine.bank.head("k")!.restarts);
  }
}
