import { cpuEngine, feed, klHeads } from "../../tests/_learning.ts";
import { gaussian, mvnRows, rng } from "../../tests/_synthetic.ts";
const out = Number(Deno.args[0] ?? 0.01);
const N = Number(Deno.args[1] ?? 30000);
const g = gaussian(rng(301));
const tril = [[2, 0, 0], [1.5, 0.5, 0], [-30, 10, 40]];
const rows = mvnRows(N, [10, -3, 1000], tril, g);
const u = rng(302);
for (let i = 0; i < N; i++) {
  if (u() < out) { for (let a = 0; a < 3; a++) rows[i * 3 + a] += 10 * tril[a][a]; }
}
const heads = [];
for (const batch of [1, 64, 4096]) {
  const engine = await cpuEngine({ dim: 3 }, (l) => console.log(l));
  await feed(engine, rows, 3, batch);
  heads.push((await engine.snapshot())[0]);
}
console.log(klHeads(heads[0], heads[1]), klHeads(heads[0], heads[2]), klHeads(heads[1], heads[2]));
console.log(heads.map((h) => [h.loc, h.covariance[0][0], h.covariance[2][2]]));
