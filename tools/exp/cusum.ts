import { cusumStep } from "../../src/model/change_detector.ts";
import { mulberry32 } from "../../src/prng.ts";
const u = mulberry32(5);
const g = () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
for (const d of [3, 8, 32]) {
  for (const h of [16, 24, 32]) {
    let s = 0, alarms = 0;
    const N = 1_000_000;
    let mx = 0;
    for (let i = 0; i < N; i++) {
      let m2 = 0;
      for (let a = 0; a < d; a++) {
        const z = g();
        m2 += z * z;
      }
      s = cusumStep(s, m2, 1e9, d);
      mx = Math.max(mx, s);
      if (s > h) {
        alarms++;
        s = 0;
      }
    }
    console.log({ d, h, alarms, mx });
  }
}
