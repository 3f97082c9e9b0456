import { mulberry32 } from "../../src/prng.ts";
const u = mulberry32(5);
const g = () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
const d = 3;
function run(cap: number, h: number, k: number, N: number, gen: () => number) {
  let s = 0, alarms = 0, first = -1;
  for (let i = 0; i < N; i++) {
    let v = (gen() - d) / Math.sqrt(2 * d);
    if (v > cap) v = cap;
    s = Math.max(0, s + v - k);
    if (s > h) {
      alarms++;
      if (first < 0) first = i;
      s = 0;
    }
  }
  return { alarms, first };
}
const chi = () => {
  let m = 0;
  for (let a = 0; a < d; a++) {
    const z = g();
    m += z * z;
  }
  return m;
};
const out = () => (u() < 0.01 ? 1000 : chi());
const shift = () => {
  let m = 0;
  for (let a = 0; a < d; a++) {
    const z = g() + (a === 0 ? 3 : 0);
    m += z * z;
  }
  return m;
};
const vard = () => {
  let m = 0;
  for (let a = 0; a < d; a++) {
    const z = g() * (a === 0 ? Math.SQRT2 : 1);
    m += z * z;
  }
  return m;
};
for (const cap of [2, 3, 4]) {
  for (const h of [16, 24, 32]) {
    const k = 0.25;
    const a = run(cap, h, k, 2_000_000, out);
    const delays = [shift, vard].map((f) => {
      let tot = 0;
      for (let r = 0; r < 50; r++) tot += run(cap, h, k, 5000, f).first;
      return tot / 50;
    });
    console.log({
      cap,
      h,
      falseAlarmsPer2M_withOutliers: a.alarms,
      delayShift: delays[0],
      delayVar: delays[1],
    });
  }
}
