import { cpuEngine } from "../../tests/_learning.ts";
import { SyntheticSource } from "../../src/bench/synthetic.ts";
for (const K of [1, 10, 1000]) {
  const src = new SyntheticSource(3, K, 7 + K);
  const batches = Array.from({ length: 3 }, () => src.batch(256));
  for (const opt of ["adam", "natural", "adam", "natural"] as const) {
    for (const pv of [false, true]) {
      const e = await cpuEngine({ dim: 3, optimizer: opt });
      for (let i = 0; i < 200 + K; i++) e.release(await e.process(batches[i % 3]));
      const t0 = performance.now();
      let rows = 0;
      while (performance.now() - t0 < 700) {
        for (let i = 0; i < 20; i++) {
          e.release(await e.process({ ...batches[i % 3], pValues: pv }));
          rows += 256;
        }
      }
      console.log(
        `K=${K} ${opt} p=${pv}: ${(rows / (performance.now() - t0) / 1e3).toFixed(2)} M rows/s`,
      );
      await e.close();
    }
  }
}
