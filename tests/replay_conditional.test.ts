/**
 * Replay with the conditional head end to end (cpu): CSV feature columns, NDJSON `features`
 * arrays, ISO time columns with `--time-features`, rows without their context skipped with a
 * reason, and labelled "normal under another mode" anomalies caught where the default head misses
 * them.
 */
import assert from "node:assert/strict";
import { ParamsOutFile } from "../schemas/replay.ts";
import { replay } from "../src/replay/replay.ts";
import { parseReplayArgs } from "../src/cli/replay.ts";
import { MemorySink } from "./helpers/replay.ts";
import { tempDir } from "./helpers/temp_dir.ts";
import { MODES_3D, modeStream, normalSampler, sample } from "./helpers/conditional.ts";
import { mulberry32 } from "../src/model/prng.ts";
import { chi2Isf } from "../src/model/chi2.ts";

async function run(options: Parameters<typeof replay>[0]) {
  const sink = new MemorySink();
  const stderr: string[] = [];
  const summary = await replay({ backend: "cpu", quiet: true, ...options }, {
    stdout: sink,
    stderr: (l) => stderr.push(l),
    progress: false,
  });
  return { summary, records: sink.records(), stderr };
}

const cut = chi2Isf(1e-4, 3);
function trueM2(m: number, x: number[]): number {
  const g = MODES_3D[m];
  const z: number[] = [];
  let s2 = 0;
  for (let a = 0; a < 3; a++) {
    let s = x[a] - g.loc[a];
    for (let b = 0; b < a; b++) s -= g.tril[a][b] * z[b];
    z.push(s / g.tril[a][a]);
    s2 += z[a] * z[a];
  }
  return s2;
}

Deno.test("CSV --feature-columns: swapped-mode anomalies caught; the default head misses them", async () => {
  await using dir = await tempDir();
  const n = 12_000;
  const s = modeStream(n, MODES_3D, 31);
  const normal = normalSampler(5);
  const pick = mulberry32(8);
  const lines = ["t,mode_a,mode_b,mode_c,x,y,z,label"];
  for (let i = 0; i < n; i++) {
    const m = s.mode[i];
    let x = Array.from(s.values.subarray(3 * i, 3 * i + 3));
    let label = 0;
    // After the first 8,000 rows, 3% are drawn from mode (m + 1) mod 3, kept when truly
    // anomalous under their own mode m (true m² beyond the χ²_3 quantile at 1 − 1e-4).
    if (i >= 8000 && pick() < 0.03) {
      do x = sample(MODES_3D[(m + 1) % 3], normal); while (trueM2(m, x) <= cut);
      label = 1;
    }
    const f = [0, 0, 0];
    f[m] = 1;
    lines.push(
      [1_700_000_000_000 + 60_000 * i, ...f, ...x.map((v) => v.toFixed(5)), label].join(","),
    );
  }
  const input = await dir.write("modes.csv", lines.join("\n") + "\n");
  const paramsOut = `${dir.path}/params.json`;
  const cond = await run({
    input,
    ...parseReplayArgs([
      input,
      "--head",
      "conditional",
      "--feature-columns",
      "mode_a,mode_b,mode_c",
      "--hidden",
      "32,32",
      "--params-out",
      paramsOut,
    ]) as object,
    backend: "cpu",
    quiet: true,
  });
  assert.equal(cond.summary.observations, n);
  assert.equal(cond.summary.dim, 3, "feature columns are not value columns");
  const m = cond.summary.metrics!;
  const recall = m.tp / (m.tp + m.fn);
  assert.ok(recall >= 0.9, `recall ${recall} (${JSON.stringify(m)})`);
  assert.ok(m.far! <= 0.01, `FAR ${m.far}`);
  // The default head on the same values (the mode columns would otherwise be values too).
  const base = await run({ input, columns: "x,y,z" });
  const b = base.summary.metrics!;
  const baseRecall = b.tp / (b.tp + b.fn);
  assert.ok(baseRecall < 0.5, `unconditional recall ${baseRecall}`);
  console.log(
    `conditional recall ${recall.toFixed(3)} FAR ${m.far!.toFixed(4)}; unconditional recall ${
      baseRecall.toFixed(3)
    } FAR ${b.far!.toFixed(4)} (${m.tp + m.fn} anomalies)`,
  );
  const params = ParamsOutFile.parse(JSON.parse(await Deno.readTextFile(paramsOut)));
  const entry = Object.values(params)[0];
  assert.equal(entry.head, "conditional");
  assert.deepEqual(entry.architecture?.hidden, [32, 32]);
  assert.equal(entry.context?.length, 3);
  // Records keep their shape: contrib sums to mahalanobis2.
  const r = cond.records[n - 1] as { contrib: number[]; mahalanobis2: number };
  const sum = r.contrib.reduce((a, v) => a + v, 0);
  assert.ok(Math.abs(sum - r.mahalanobis2) <= 1e-6 * Math.max(1, r.mahalanobis2));
});

Deno.test("NDJSON features arrays and ISO times with --time-features; rows without context are skipped", async () => {
  await using dir = await tempDir();
  const normal = normalSampler(3);
  const lines: string[] = [];
  const t0 = Date.UTC(2024, 2, 1);
  for (let i = 0; i < 1500; i++) {
    const t = new Date(t0 + i * 600_000).toISOString();
    const load = i % 7 < 3 ? 1 : 0;
    lines.push(JSON.stringify({ t, v: [5 * load + normal(), normal()], features: [load] }));
  }
  lines.splice(100, 0, JSON.stringify({ v: [0, 0], features: [1] })); // no time
  lines.splice(200, 0, JSON.stringify({ t: "2024-03-02T00:00:00Z", v: [0, 0] })); // no features
  lines.splice(300, 0, JSON.stringify({ t: "2024-03-02T00:00:00Z", v: [0, 0], features: [1, 2] }));
  const input = await dir.write("load.ndjson", lines.join("\n") + "\n");
  const opts = parseReplayArgs([
    input,
    "--head",
    "conditional",
    "--features",
    "1",
    "--time-features",
    "daily,weekly",
  ]) as Parameters<typeof replay>[0];
  const res = await run({ ...opts, backend: "cpu", quiet: false });
  assert.equal(res.summary.observations, 1500);
  assert.deepEqual(res.summary.skipped_by_reason, { bad_time: 1, features: 2 });
  assert.ok(
    res.stderr.some((l) => l.includes("expected 1 features, found 2")),
    res.stderr.join("\n"),
  );
  assert.ok(res.stderr.some((l) => l.includes("conditional head")), res.stderr.join("\n"));
  // Without --head conditional the context flags are refused.
  await assert.rejects(
    () => run({ input, features: 1 }),
    /--features: expected --head conditional/,
  );
  await assert.rejects(
    () => run({ input, head: "conditional" }),
    /expected context/,
  );
});
