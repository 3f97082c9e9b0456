/**
 * Replay over the real engine (cpu backend, compute worker): frozen known parameters give the
 * closed-form scores, params-out holds a consistent factorisation, labelled files give the right
 * confusion counts, and the same input gives byte-identical output.
 */
import assert from "node:assert/strict";
import { ParamsOutFile, ReplaySummary } from "../schemas/replay.ts";
import { ScoreRecord } from "../schemas/score_record.ts";
import { replay } from "../src/replay/replay.ts";
import { MemorySink } from "./helpers/replay.ts";
import { tempDir } from "./helpers/temp_dir.ts";

const LOG_2PI = Math.log(2 * Math.PI);

async function runCpu(options: Parameters<typeof replay>[0]) {
  const sink = new MemorySink();
  const stderr: string[] = [];
  const summary = await replay({ backend: "cpu", ...options }, {
    stdout: sink,
    stderr: (l) => stderr.push(l),
    progress: false,
  });
  return { summary, sink, stderr };
}

/** Deterministic 2-D points spread from the centre to far out (|x|² up to ~50). */
function points(n: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < n; i++) {
    const r = 0.05 * i;
    const a = 2.399963 * i; // golden angle: well spread directions
    out.push([r * Math.cos(a), r * Math.sin(a)]);
  }
  return out;
}

function close(actual: number, expected: number, what: string): void {
  const tol = 1e-9 * Math.max(1, Math.abs(expected));
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: expected ${expected}, found ${actual}`);
}

Deno.test("frozen standard-normal parameters give closed-form scores and exact confusion counts", async (t) => {
  await using dir = await tempDir();
  const pts = points(150);
  const alpha = 1e-3;
  // Labels near the χ²₂ threshold, with some far points unlabelled (false alarms) and some
  // central ones labelled (misses), so that every cell of the confusion matrix is used.
  const threshold = -2 * Math.log(alpha);
  const labels = pts.map(([x, y], i) =>
    (x * x + y * y > threshold - 4 && i % 5 !== 0) || i % 37 === 5 ? 1 : 0
  );
  const text = pts.map(([x, y], i) =>
    JSON.stringify({ key: "k", t: i, v: [x, y], label: labels[i] })
  )
    .join("\n");
  const input = await dir.write("pts.ndjson", text);
  const paramsIn = await dir.write(
    "p.json",
    JSON.stringify({ k: { loc: [0, 0], scale_tril: [[1, 0], [0, 1]] } }),
  );
  const { summary, sink } = await runCpu({
    input,
    params_in: paramsIn,
    freeze: true,
    alpha,
    batch: 16,
  });
  const records = sink.records().map((r) => ScoreRecord.parse(r));

  await t.step("log_prob, Mahalanobis², p-value and contributions match N(0, I)", () => {
    assert.equal(records.length, pts.length);
    records.forEach((r, i) => {
      const [x, y] = pts[i];
      const m2 = x * x + y * y;
      assert.equal(r.seq, i + 1);
      assert.equal(r.t, i);
      close(r.mahalanobis2!, m2, `m2 of row ${i}`);
      close(r.log_prob!, -0.5 * m2 - LOG_2PI, `log_prob of row ${i}`);
      close(r.p_value!, Math.exp(-m2 / 2), `p_value of row ${i}`);
      close(r.contrib[0]!, x * x, `contrib[0] of row ${i}`);
      close(r.contrib[1]!, y * y, `contrib[1] of row ${i}`);
      // Given parameters are trusted: no warm-up before flagging.
      assert.equal(r.anomaly, Math.exp(-m2 / 2) < alpha, `anomaly of row ${i} (m2 ${m2})`);
    });
  });

  await t.step("the summary's TP/FP/FN/TN, F1, FAR and MAR match counts made here", () => {
    let tp = 0, fp = 0, fn = 0, tn = 0;
    pts.forEach(([x, y], i) => {
      const flagged = Math.exp(-(x * x + y * y) / 2) < alpha;
      if (labels[i] === 1) flagged ? tp++ : fn++;
      else flagged ? fp++ : tn++;
    });
    assert.ok(tp > 0 && fp > 0 && fn > 0 && tn > 0, `degenerate test data ${[tp, fp, fn, tn]}`);
    const m = summary.metrics!;
    assert.deepEqual([m.tp, m.fp, m.fn, m.tn, m.labelled], [tp, fp, fn, tn, pts.length]);
    close(m.f1!, (2 * tp) / (2 * tp + fp + fn), "F1");
    close(m.far!, fp / (fp + tn), "FAR");
    close(m.mar!, fn / (fn + tp), "MAR");
    assert.equal(summary.anomalies, tp + fp);
  });
});

Deno.test("params-out holds finite parameters with covariance = L·Lᵀ", async () => {
  await using dir = await tempDir();
  const out = `${dir.path}/params.json`;
  const { summary } = await runCpu({ input: "data/sample.ndjson", params_out: out, quiet: true });
  const doc = ParamsOutFile.parse(JSON.parse(await Deno.readTextFile(out)));
  assert.deepEqual(Object.keys(doc), ["pump-a", "pump-b"]);
  for (const [key, p] of Object.entries(doc)) {
    assert.equal(p.observations, 2500, key);
    assert.ok(p.steps > 0, key);
    const d = p.loc.length;
    assert.equal(d, summary.dim);
    assert.ok(p.loc.every(Number.isFinite), key);
    for (let i = 0; i < d; i++) {
      assert.ok(p.scale_tril[i][i] > 0, `${key} diagonal ${i}`);
      for (let j = 0; j < d; j++) {
        assert.ok(Number.isFinite(p.scale_tril[i][j]) && Number.isFinite(p.covariance[i][j]));
        if (j > i) assert.equal(p.scale_tril[i][j], 0);
        let s = 0;
        for (let k = 0; k < d; k++) s += p.scale_tril[i][k] * p.scale_tril[j][k];
        close(p.covariance[i][j], s, `${key} covariance[${i}][${j}]`);
      }
    }
  }
});

Deno.test("learning from the sample finds its injected anomalies", async () => {
  const { summary } = await runCpu({ input: "data/sample.ndjson", quiet: true });
  // Labels counted independently from the file.
  const text = await Deno.readTextFile("data/sample.ndjson");
  const positives = text.split("\n").filter((l) => l.includes('"label":1')).length;
  const m = summary.metrics!;
  assert.equal(m.tp + m.fn, positives);
  assert.equal(m.labelled, 5000);
  // Injected points sit at Mahalanobis distance ≥ 5.5 after a 400-row clean prefix.
  assert.ok(m.mar! <= 0.1, `MAR ${m.mar}`);
  assert.ok(m.far! <= 0.01, `FAR ${m.far}`);
});

Deno.test("the same input and options give byte-identical output", async () => {
  const a = await runCpu({ input: "data/sample.ndjson", quiet: true, batch: 50 });
  const b = await runCpu({ input: "data/sample.ndjson", quiet: true, batch: 50 });
  const x = a.sink.bytes();
  const y = b.sink.bytes();
  assert.equal(a.summary.observations, 5000);
  assert.equal(x.length, y.length);
  assert.ok(x.every((v, i) => v === y[i]), "outputs differ");
});

Deno.test("main.ts replay runs on data/sample.ndjson", async (t) => {
  await using dir = await tempDir();
  const summaryPath = `${dir.path}/summary.json`;
  const outPath = `${dir.path}/scores.ndjson`;
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "replay",
      "data/sample.ndjson",
      "--backend",
      "cpu",
      "--out",
      outPath,
      "--summary",
      summaryPath,
      "--seed",
      "7",
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const res = await cmd.output();
  const stderr = new TextDecoder().decode(res.stderr);

  await t.step("exits 0 with the backend line and a one-line summary on stderr", () => {
    assert.equal(res.code, 0, stderr);
    const lines = stderr.trim().split("\n");
    assert.match(lines[0], /cpu/);
    assert.match(lines[lines.length - 1], /^replay: 5000 observations, 2 keys, .* TP \d+ FP \d+/);
    assert.equal(res.stdout.length, 0);
  });

  await t.step("writes one valid score record per observation, in input order", async () => {
    const input = (await Deno.readTextFile("data/sample.ndjson")).trim().split("\n")
      .map((l) => JSON.parse(l));
    const out = (await Deno.readTextFile(outPath)).trim().split("\n").map((l) =>
      ScoreRecord.parse(JSON.parse(l))
    );
    assert.equal(out.length, input.length);
    const seen = new Map<string, number>();
    out.forEach((r, i) => {
      assert.equal(r.key, input[i].key);
      assert.equal(r.t, input[i].t);
      assert.equal(r.label, input[i].label);
      seen.set(r.key, (seen.get(r.key) ?? 0) + 1);
      assert.equal(r.seq, seen.get(r.key));
      const sum = r.contrib.reduce((s: number, c) => s + c!, 0);
      close(sum, r.mahalanobis2!, `contrib sum of row ${i}`);
    });
  });

  await t.step("writes a summary file that matches the records", async () => {
    const s = ReplaySummary.parse(JSON.parse(await Deno.readTextFile(summaryPath)));
    const out = (await Deno.readTextFile(outPath)).trim().split("\n").map((l) => JSON.parse(l));
    const flagged = out.filter((r) => r.anomaly).length;
    const tp = out.filter((r) => r.anomaly && r.label === 1).length;
    assert.equal(s.observations, 5000);
    assert.equal(s.keys, 2);
    assert.equal(s.anomalies, flagged);
    assert.equal(s.metrics?.tp, tp);
    assert.equal(s.seed, 7);
    assert.equal(s.backend, "cpu");
  });

  await t.step("exits 1 under --strict at a bad line and 2 on a missing file", async () => {
    const bad = `${dir.path}/bad.ndjson`;
    await Deno.writeTextFile(bad, '{"v":[1,2,3]}\n{"v":[1,2,3\n{"v":[4,5,6]}\n');
    const strict = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", "replay", bad, "--strict", "--backend", "cpu", "--quiet"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(strict.code, 1);
    assert.match(new TextDecoder().decode(strict.stderr), /bad\.ndjson:2: malformed/);
    assert.equal(new TextDecoder().decode(strict.stdout).trim().split("\n").length, 1);
    const missing = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", "replay", `${dir.path}/nope.ndjson`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(missing.code, 2);
    assert.match(
      new TextDecoder().decode(missing.stderr),
      /nope\.ndjson.*expected a file or directory/,
    );
  });
});
