import assert from "node:assert/strict";
import { HotellingT2 } from "../src/eval/hotelling.ts";

Deno.test("Hotelling T²: statistic and control limit", async (t) => {
  await t.step("T² of a hand-worked 2-D sample: mean (1, 1), S = 4/3·I", () => {
    const h = HotellingT2.fit([0, 0, 2, 0, 0, 2, 2, 2], 4, 2, 0.01);
    assert.deepEqual(Array.from(h.mean), [1, 1]);
    assert.ok(Math.abs(h.t2([3, 1]) - 3) < 1e-12);
    assert.ok(Math.abs(h.t2([0, 0]) - 1.5) < 1e-12);
  });
  await t.step("T² with correlation matches the explicit 2×2 inverse", () => {
    const rows = [1, 2, 2, 3.5, 3, 3, 4, 6, 5, 5.5, 6, 8, 7, 7.2];
    const n = 7;
    const h = HotellingT2.fit(rows, n, 2, 0.01);
    const m = [0, 0];
    for (let i = 0; i < n; i++) for (let a = 0; a < 2; a++) m[a] += rows[2 * i + a] / n;
    let sxx = 0, sxy = 0, syy = 0;
    for (let i = 0; i < n; i++) {
      const dx = rows[2 * i] - m[0], dy = rows[2 * i + 1] - m[1];
      sxx += dx * dx / (n - 1);
      sxy += dx * dy / (n - 1);
      syy += dy * dy / (n - 1);
    }
    const det = sxx * syy - sxy * sxy;
    const [dx, dy] = [9 - m[0], 4 - m[1]];
    const want = (syy * dx * dx - 2 * sxy * dx * dy + sxx * dy * dy) / det;
    assert.ok(Math.abs(h.t2([9, 4]) - want) < 1e-9 * want);
  });
  await t.step("phase II limit p(n+1)(n−1)/(n(n−p))·F_{1−α}(p, n−p) matches scipy", () => {
    // scipy.stats.f.isf(1e-3, d, n - d) times the factor.
    for (
      const [d, n, want] of [[1, 50, 12.498162444438814], [3, 1000, 16.44068688846756], [
        16,
        1000,
        40.4050853819714,
      ]]
    ) {
      const rows = Array.from({ length: n * d }, (_, i) => Math.sin(i * 1.37) + (i % 7));
      const h = HotellingT2.fit(rows, n, d, 1e-3);
      assert.ok(Math.abs(h.limit - want) < 1e-8 * want, `d ${d}: ${h.limit} vs ${want}`);
    }
  });
  await t.step("a constant column is regularised, not fatal", () => {
    const rows = [1, 5, 2, 5, 3, 5, 4, 5, 5, 5];
    const h = HotellingT2.fit(rows, 5, 2, 0.01);
    assert.ok(Number.isFinite(h.t2([3, 5])));
    assert.ok(h.t2([3, 6]) > 1e6);
  });
});
