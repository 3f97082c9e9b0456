import { cpuEngine } from "../../tests/_learning.ts";
import { gaussian, mvnRows, rng } from "../../tests/_synthetic.ts";
const N = 30000;
const g = gaussian(rng(301));
const tril = [[2, 0, 0], [1.5, 0.5, 0], [-30, 10, 40]];
const rows = mvnRows(N, [10, -3, 1000], tril, g);
const u = rng(302);
for (let i = 0; i < N; i++) {
  if (u() < 0.01) { for (let a = 0; a < 3; a++) rows[i * 3 + a] += 10 * tril[a][a]; }
}
const engine = await cpuEngine({ dim: 3 }, (l) => console.log(l));
let mx = 0;
for (let i = 0; i < N; i++) {
  const out = await engine.process({
    n: 1,
    dim: 3,
    values: rows.slice(i * 3, i * 3 + 3),
    keyIndex: new Uint32Array(1),
    keys: ["k"],
  });
  const h = engine.bank.head("k")!;
  if (i % 2000 === 0 || h.restarts > 0 && mx === 0) {
    console.log(
      i,
      h.cusum.toFixed(2),
      engine.bank.nEff(h).toFixed(0),
      out.mahalanobis2[0].toFixed(1),
    );
    if (h.restarts > 0) mx = 1;
  }
}
