import assert from "node:assert/strict";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import { createEngine } from "../src/engine/thread/compute_thread.ts";
import type { ScoringEngine } from "../src/engine/engine.ts";
import { EngineError } from "../src/engine/errors.ts";
import type { BackendName } from "../src/engine/types.ts";
import { BACKENDS } from "./helpers/backends.ts";
import { gaussian, rng } from "./helpers/synthetic.ts";

function open(backend: BackendName, dim: number): Promise<ScoringEngine> {
  return createEngine(resolveHeadConfig({ dim, backend }), { log: () => {} });
}

/** n rows of iid N(0, 1) values. */
function rows(n: number, d: number, seed: number) {
  const g = gaussian(rng(seed));
  const values = new Float64Array(n * d);
  for (let i = 0; i < values.length; i++) values[i] = g();
  return values;
}

async function feed(e: ScoringEngine, values: Float64Array, d: number, keys: number) {
  const n = values.length / d;
  const keyIndex = new Uint32Array(n);
  for (let i = 0; i < n; i++) keyIndex[i] = i % keys;
  const names = Array.from({ length: keys }, (_, k) => `k${k}`);
  return await e.process({ dim: d, n, values: values.slice(), keyIndex, keys: names });
}

Deno.test("a finite reading whose m² overflows is scored saturated, anomalous and not learned", async (t) => {
  for (const backend of BACKENDS) {
    for (const [d, keys] of [[3, 1], [3, 4], [5, 1], [5, 3]]) {
      await t.step(`${backend}, d = ${d}, ${keys} key(s)`, async () => {
        await using a = await open(backend, d);
        await using b = await open(backend, d);
        const warm = rows(64 * 20, d, 1);
        for (let i = 0; i < warm.length; i += 64 * d) {
          await feed(a, warm.slice(i, i + 64 * d), d, keys);
          await feed(b, warm.slice(i, i + 64 * d), d, keys);
        }
        // Batch of 64 rows; row 10 (key 10 mod keys) holds 1e300 in its second value.
        const batch = rows(64, d, 2);
        const wild = 10;
        batch[wild * d + 1] = 1e300;
        const s = await feed(a, batch, d, keys);
        assert.equal(s.mahalanobis2[wild], Number.MAX_VALUE);
        assert.equal(s.logProb[wild], -Number.MAX_VALUE);
        assert.equal(s.pValue[wild], 0);
        assert.equal(s.anomaly[wild], 1);
        const contrib = Array.from(s.contrib.subarray(wild * d, wild * d + d));
        assert.ok(contrib.every((c) => Number.isFinite(c) && c >= 0), `contrib ${contrib}`);
        assert.ok(contrib.includes(Number.MAX_VALUE), `contrib ${contrib}`);
        assert.ok(Number.isFinite(JSON.parse(JSON.stringify(contrib))[1]));
        // The twin sees the same batch with the wild row at its key's mean instead (a typical
        // row would be learned; a parked one has m² ≈ 0): both heads learn the same other rows,
        // and the wild row counted as an observation.
        const others = Array.from({ length: 64 }, (_, i) => i).filter((i) => i !== wild);
        const sb = await feed(b, batch.map((v, j) => Math.floor(j / d) === wild ? 0 : v), d, keys);
        for (const i of others) {
          assert.ok(
            Math.abs(s.mahalanobis2[i] - sb.mahalanobis2[i]) <= 1e-6 * sb.mahalanobis2[i] + 1e-9,
          );
        }
        const key = `k${wild % keys}`;
        const [pa] = await a.snapshot([key]);
        const [pb] = await b.snapshot([key]);
        assert.equal(pa.observations, pb.observations);
        // Not learned: the twin learned one more (ordinary) row, so the heads differ by at most
        // one row's worth; a 1e300 reading learned at any weight would move loc far beyond that.
        for (let j = 0; j < d; j++) assert.ok(Math.abs(pa.loc[j] - pb.loc[j]) < 0.1, `${pa.loc}`);
        for (const r of pa.scale_tril) {
          for (const v of r) assert.ok(Number.isFinite(v) && Math.abs(v) < 10);
        }
        // The next batch scores normally.
        const next = await feed(a, rows(64, d, 3), d, keys);
        assert.ok(next.mahalanobis2.every((m) => Number.isFinite(m) && m < 100));
      });
    }
  }
});

Deno.test("a new key's first batch with an overflowing reading is scored, not refused", async (t) => {
  for (const backend of BACKENDS) {
    for (const [d, keys] of [[3, 1], [5, 2]]) {
      await t.step(`${backend}, d = ${d}, ${keys} key(s)`, async () => {
        await using e = await open(backend, d);
        const batch = rows(64, d, 6);
        const wild = 10;
        batch[wild * d + 1] = 1e300; // (1e300)² overflows the first moments
        const s = await feed(e, batch, d, keys);
        assert.equal(s.mahalanobis2[wild], Number.MAX_VALUE);
        assert.equal(s.logProb[wild], -Number.MAX_VALUE);
        assert.equal(s.pValue[wild], 0);
        assert.equal(s.anomaly[wild], 1, "saturated rows flag during warm-up too");
        for (let i = 0; i < 64; i++) {
          if (i === wild) continue;
          // N(0, 1) rows against a draft from 64/keys of them: m² of order d, far from overflow.
          assert.ok(s.mahalanobis2[i] < 100, `row ${i}: m² ${s.mahalanobis2[i]}`);
        }
        // The key exists, counts the wild row as an observation, and did not learn it.
        const [h] = await e.snapshot([`k${wild % keys}`]);
        assert.equal(h.observations, 64 / keys);
        for (const v of h.loc) assert.ok(Math.abs(v) < 1, `loc ${h.loc}`);
        for (const r of h.scale_tril) for (const v of r) assert.ok(Math.abs(v) < 3, `${v}`);
        const next = await feed(e, rows(64, d, 7), d, keys);
        assert.ok(next.mahalanobis2.every((m) => Number.isFinite(m) && m < 100));
      });
    }
    await t.step(`${backend}: a first batch of that reading alone is still refused`, async () => {
      await using e = await open(backend, 3);
      await assert.rejects(
        () => feed(e, Float64Array.of(0, 1e300, 0), 3, 1),
        (err: unknown) => err instanceof EngineError && err.code === "non_finite_input",
      );
    });
  }
});

Deno.test("NaN and ±Infinity readings are still refused as non_finite_input", async (t) => {
  for (const backend of BACKENDS) {
    for (const bad of [NaN, Infinity, -Infinity]) {
      await t.step(`${backend}, ${bad}`, async () => {
        await using e = await open(backend, 3);
        await feed(e, rows(256, 3, 4), 3, 1);
        const batch = rows(64, 3, 5);
        batch[7 * 3] = bad;
        await assert.rejects(
          () => feed(e, batch, 3, 1),
          (err: unknown) => err instanceof EngineError && err.code === "non_finite_input",
        );
      });
    }
  }
});

Deno.test("a reading beyond float32 but not float64 gets its float64 m² on every backend", async (t) => {
  const results = new Map<string, number>();
  for (const backend of BACKENDS) {
    await t.step(backend, async () => {
      await using e = await open(backend, 3);
      const warm = rows(64 * 10, 3, 8);
      for (let i = 0; i < warm.length; i += 64 * 3) await feed(e, warm.slice(i, i + 64 * 3), 3, 1);
      const batch = rows(64, 3, 9);
      batch[5 * 3] = 1e25; // m² ≈ 1e50: overflows float32 (webgpu's kernel), not float64
      const s = await feed(e, batch, 3, 1);
      const m2 = s.mahalanobis2[5];
      assert.ok(Number.isFinite(m2) && m2 > 1e48 && m2 < Number.MAX_VALUE, `m² ${m2}`);
      assert.equal(s.anomaly[5], 1);
      assert.ok(s.mahalanobis2.every((m, i) => i === 5 || m < 100));
      results.set(backend, m2);
    });
  }
  const [a, b] = [...results.values()];
  if (b !== undefined) assert.ok(Math.abs(a - b) < 1e-2 * a, `cpu ${a}, webgpu ${b}`);
});
