/**
 * Real recordings: labels in the spellings exporters write (0.0/1.0, TRUE, yes/no), an unreadable
 * label that costs the label and not the observation, a UTF-8 BOM, CRLF line ends, quoted headers
 * and cells, empty cells, and columns that are constant or collinear over a key's first training
 * rows. Each case reads a small fixture from tests/fixtures/replay/.
 */
import assert from "node:assert/strict";
import { ParamsOutFile } from "../schemas/replay.ts";
import { ScoreRecord } from "../schemas/score_record.ts";
import {
  ColumnMoments,
  ColumnMomentsSlab,
  degenerateColumns,
  describeDegenerate,
} from "../src/replay/degenerate_columns.ts";
import { replay } from "../src/replay/replay.ts";
import { readLabel } from "../src/io/row_parser.ts";
import { MemorySink, replayWith } from "./helpers/replay.ts";
import { tempDir } from "./helpers/temp_dir.ts";

function fixture(name: string): string {
  return new URL(`./fixtures/replay/${name}`, import.meta.url).pathname;
}

function moments(rows: number[][]): ColumnMoments {
  const m = new ColumnMoments(rows[0].length);
  for (const r of rows) m.add(r);
  return m;
}

Deno.test("labels in any common spelling are read; an unreadable one leaves its row unlabelled but scored", async (t) => {
  await t.step("readLabel accepts 0/1 in number, decimal, boolean and yes/no forms", () => {
    const zero = [0, false, "0", "0.0", "0.00", " false ", "FALSE", "No", "no", "-0", "0e5"];
    const one = [1, true, "1", "1.0", "1e0", "+1", "True", " TRUE ", "yes", "YES"];
    for (const raw of zero) assert.deepEqual(readLabel(raw, "label"), { label: 0 }, String(raw));
    for (const raw of one) assert.deepEqual(readLabel(raw, "label"), { label: 1 }, String(raw));
    for (const raw of [undefined, null, "", "   "]) {
      assert.deepEqual(readLabel(raw, "label"), { label: undefined }, String(raw));
    }
    for (const raw of [2, 0.5, -1, "2", "maybe", "y", "0x1", "1,0", [1], {}, "constructor"]) {
      const r = readLabel(raw, "fault");
      assert.equal(r.label, undefined, String(raw));
      assert.match(r.problem ?? "", /^label 'fault': expected 0, 1, 0\.0, 1\.0, true, false/);
    }
    assert.match(readLabel("maybe", "label").problem ?? "", /found maybe; the row is scored/);
  });

  await t.step(
    "CSV: 0.0/1.0, TRUE, no/Yes, quoted 1 and False read; maybe and 2 warned",
    async () => {
      const file = fixture("labels.csv");
      const run = await replayWith({ input: file });
      assert.equal(run.summary.observations, 10);
      assert.equal(run.summary.skipped, 0);
      assert.equal(run.summary.bad_labels, 2);
      const labels = run.records.map((r) => r.label);
      assert.deepEqual(labels, [0, 1, 1, 0, 1, undefined, 1, 0, undefined, undefined]);
      const warned = run.stderr.filter((l) => l.startsWith(`${file}:`));
      assert.deepEqual(warned.map((l) => l.slice(file.length)), [
        ":7: bad_label: label 'label': expected 0, 1, 0.0, 1.0, true, false, yes or no, found maybe; the row is scored unlabelled",
        ":10: bad_label: label 'label': expected 0, 1, 0.0, 1.0, true, false, yes or no, found 2; the row is scored unlabelled",
      ]);
      // Standard-normal stand-in: every row (|x|² ≈ 400) is flagged; 4 positives, 3 negatives.
      assert.deepEqual(run.summary.metrics, {
        labelled: 7,
        tp: 4,
        fp: 3,
        fn: 0,
        tn: 0,
        f1: 8 / 11,
        far: 1,
        mar: 0,
      });
      assert.match(run.stderr.at(-1) ?? "", /2 unreadable labels \(scored unlabelled\)/);
    },
  );

  await t.step("NDJSON: numbers 0/1.0, booleans and strings read; 0.5 and [1] warned", async () => {
    const file = fixture("labels.ndjson");
    const run = await replayWith({ input: file });
    assert.equal(run.summary.observations, 11);
    assert.deepEqual(run.engine.rows.map((r) => r.values[0]), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert.equal(run.summary.bad_labels, 2);
    assert.deepEqual(run.records.map((r) => r.label), [
      0,
      1,
      1,
      0,
      1,
      0,
      0,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    const warned = run.stderr.filter((l) => l.startsWith(`${file}:`));
    assert.deepEqual(warned.map((l) => l.slice(file.length).split(":")[1]), ["8", "9"]);
    assert.match(warned[0], /found 0\.5;/);
    assert.match(warned[1], /found \[1\];/);
    // |x|² = k²: flagged (χ²₂ p < 1e-3) from k = 4 on. Labels 0,1,1 | 0,1,0,0 for k = 1..7.
    const m = run.summary.metrics!;
    assert.deepEqual([m.labelled, m.tp, m.fp, m.fn, m.tn], [7, 1, 3, 2, 1]);
  });

  await t.step("--strict does not stop at an unreadable label (the row is good)", async () => {
    const run = await replayWith({ input: fixture("labels.csv"), strict: true });
    assert.equal(run.summary.stopped, false);
    assert.equal(run.summary.observations, 10);
  });
});

Deno.test("a UTF-8 BOM, CRLF line ends and quoted headers and cells read as plain input", async (t) => {
  await t.step("CSV: BOM + CRLF + quoted header; a quoted key holding the delimiter", async () => {
    const file = fixture("bom_crlf_quoted.csv");
    for (const columns of [undefined, "temp,pressure"]) {
      const run = await replayWith({ input: file, columns });
      assert.equal(run.summary.skipped, 0, JSON.stringify(run.summary.skipped_by_reason));
      assert.equal(run.summary.blank_lines, 0);
      assert.equal(run.summary.dim, 2);
      assert.deepEqual(run.engine.rows.map((r) => r.values), [[20.5, 1.25], [20.75, 1.5], [
        21,
        1.75,
      ]]);
      assert.deepEqual(run.engine.rows.map((r) => r.key), [
        "pump, north",
        "pump, north",
        'say "hi"',
      ]);
      assert.deepEqual(run.records.map((r) => r.label), [0, 1, 0]);
      assert.deepEqual(run.records.map((r) => r.seq), [1, 2, 1]);
    }
  });

  await t.step("NDJSON: BOM + CRLF", async () => {
    const run = await replayWith({ input: fixture("bom_crlf.ndjson") });
    assert.equal(run.summary.skipped, 0);
    assert.deepEqual(run.engine.rows.map((r) => r.values), [[1.5, 2.5], [3.5, 4.5]]);
    assert.deepEqual(run.records.map((r) => r.label), [1, 0]);
  });
});

Deno.test("an empty value cell skips its row as empty_cell, naming the column", async (t) => {
  await t.step("CSV: empty and all-blank cells; an empty label cell only unlabels", async () => {
    const file = fixture("empty_cells.csv");
    const run = await replayWith({ input: file });
    assert.deepEqual(run.engine.rows.map((r) => r.values), [[20.5, 1.25], [20.9, 1.4]]);
    assert.deepEqual(run.summary.skipped_by_reason, { empty_cell: 3 });
    assert.equal(run.summary.bad_labels, 0);
    assert.deepEqual(run.records.map((r) => r.label), [0, undefined]);
    const warned = run.stderr.filter((l) => l.startsWith(`${file}:`)).map((l) =>
      l.slice(file.length)
    );
    assert.deepEqual(warned, [
      ":3: empty_cell: column 'temp': expected a finite number, found an empty cell",
      ":4: empty_cell: column 'pressure': expected a finite number, found an empty cell",
      ":5: empty_cell: column 'pressure': expected a finite number, found an empty cell",
    ]);
  });

  await t.step("NDJSON --columns: a null or empty-string field", async () => {
    const file = fixture("empty_cells.ndjson");
    const run = await replayWith({ input: file, columns: "a,b" });
    assert.deepEqual(run.engine.rows.map((r) => r.values), [[1, 2], [3, 4]]);
    assert.deepEqual(run.summary.skipped_by_reason, { empty_cell: 2 });
    const warned = run.stderr.filter((l) => l.startsWith(`${file}:`)).map((l) =>
      l.slice(file.length)
    );
    assert.deepEqual(warned, [
      ":2: empty_cell: field 'b': expected a number, found null",
      ":3: empty_cell: field 'a': expected a number, found an empty string",
    ]);
  });
});

Deno.test("a constant or collinear column gets one warning per key naming it", async (t) => {
  await t.step("constant pressure on key a only: one warning after its 64 init rows", async () => {
    const run = await replayWith({ input: fixture("constant_column.csv") });
    assert.deepEqual(run.summary.degenerate_columns, [
      { key: "a", index: 1, column: "pressure", kind: "constant", with: [], rows: 64 },
    ]);
    const warned = run.stderr.filter((l) => l.includes("pressure"));
    assert.equal(warned.length, 1);
    assert.match(warned[0], /key 'a': column 'pressure' is constant \(101\.325\) over the key's/);
  });

  await t.step("c = a + 2b: named collinear with a and b", async () => {
    const run = await replayWith({ input: fixture("collinear.csv") });
    assert.deepEqual(run.summary.degenerate_columns, [
      { key: "collinear.csv", index: 2, column: "c", kind: "collinear", with: [0, 1], rows: 64 },
    ]);
    const warned = run.stderr.filter((l) => l.includes("collinear with"));
    assert.equal(warned.length, 1);
    assert.match(warned[0], /column 'c' is collinear with column 'a', column 'b'/);
  });

  await t.step("a key with fewer training rows than the init is checked at the end", async () => {
    const run = await replayWith({ input: fixture("constant_column.csv"), train_rows: 10 });
    assert.deepEqual(run.summary.degenerate_columns.map((c) => [c.key, c.column, c.rows]), [
      ["a", "pressure", 10],
    ]);
  });

  await t.step("frozen (no training rows): nothing to judge, no warning", async () => {
    await using dir = await tempDir();
    const params = await dir.write(
      "p.json",
      JSON.stringify({ loc: [20, 101, 5], scale_tril: [[1], [0, 1], [0, 0, 1]] }),
    );
    const run = await replayWith({
      input: fixture("constant_column.csv"),
      params_in: params,
      freeze: true,
    });
    assert.deepEqual(run.summary.degenerate_columns, []);
  });
});

Deno.test("the real head stays finite and regularised on constant and collinear columns", async (t) => {
  await using dir = await tempDir();
  for (const [name, flat] of [["constant_column.csv", 1], ["collinear.csv", -1]] as const) {
    await t.step(`${name}: every score finite, params-out positive definite`, async () => {
      const sink = new MemorySink();
      const paramsOut = `${dir.path}/${name}.params.json`;
      const summary = await replay(
        { input: fixture(name), backend: "cpu", warmup: 0, params_out: paramsOut },
        { stdout: sink, stderr: () => {}, progress: false },
      );
      assert.equal(summary.degenerate_columns.length, 1);
      const records = sink.records().map((r) => ScoreRecord.parse(r));
      assert.equal(records.length, summary.observations);
      for (const r of records) {
        for (const x of [r.log_prob, r.mahalanobis2, r.p_value, ...r.contrib]) {
          assert.ok(Number.isFinite(x), `seq ${r.seq} of ${r.key}: ${JSON.stringify(r)}`);
        }
      }
      if (flat >= 0) {
        // After the init rows the constant column sits on the learned mean: it adds next to
        // nothing to m² (about 1e-7 at most here, while the other two add about 1 each).
        const late = records.filter((r) => r.key === "a" && r.seq > 64);
        assert.ok(late.length > 0);
        for (const r of late) {
          assert.ok(Math.abs(r.contrib[flat] ?? Infinity) < 1e-5, `${r.contrib}`);
        }
      }
      const params = ParamsOutFile.parse(JSON.parse(await Deno.readTextFile(paramsOut)));
      for (const p of Object.values(params)) {
        p.scale_tril.forEach((row, a) => {
          assert.ok(row[a] > 0, `scale_tril[${a}][${a}] = ${row[a]}`);
          for (const x of row) assert.ok(Number.isFinite(x));
        });
      }
    });
  }
});

Deno.test("degenerateColumns judges columns from their moments", async (t) => {
  await t.step("r = 0.8 between two columns gives 1 − R² = 0.36, flagged only above it", () => {
    // a = 1,2,3,4 and b = 1,3,2,4: deviations ±1.5, ±0.5; Σab = 4, Σa² = Σb² = 5 → r = 0.8.
    const m = moments([[1, 1], [2, 3], [3, 2], [4, 4]]);
    assert.deepEqual(degenerateColumns(m), []);
    const [c] = degenerateColumns(m, { collinearTol: 0.5 });
    assert.equal(c.index, 1);
    assert.equal(c.kind, "collinear");
    assert.deepEqual(c.with, [0]);
    assert.ok(Math.abs(c.measure - 0.36) < 1e-12, `${c.measure}`);
  });

  await t.step("a constant column (also at 0) is named with its value and left out", () => {
    const rows = [[0, 5, 1, 2], [0, 5, 2, 7], [0, 5, 4, 3], [0, 5, 8, 1], [0, 5, 3, 3]];
    const found = degenerateColumns(moments(rows));
    assert.deepEqual(found, [
      { index: 0, kind: "constant", measure: 0, with: [] },
      { index: 1, kind: "constant", measure: 5, with: [] },
    ]);
  });

  await t.step("a difference of two columns after a constant one names both", () => {
    const rows = [[7, 1, 2], [7, 4, 3], [7, 2, 9], [7, 8, 1], [7, 5, 5]].map((r) => [
      ...r,
      r[1] - r[2],
    ]);
    const found = degenerateColumns(moments(rows));
    assert.deepEqual(found.map((c) => [c.index, c.kind, c.with]), [
      [0, "constant", []],
      [3, "collinear", [1, 2]],
    ]);
    assert.ok(found[1].measure < 1e-12);
  });

  await t.step("a small but real variation on a large offset is not constant", () => {
    const rows = Array.from({ length: 10 }, (_, i) => [1e6 + 1e-3 * ((i * 7) % 10), i]);
    assert.deepEqual(degenerateColumns(moments(rows)), []);
  });

  await t.step("with no more rows than columns, collinearity is not judged", () => {
    assert.deepEqual(degenerateColumns(moments([[1, 2, 3], [4, 1, 0], [2, 2, 2]])), []);
    assert.deepEqual(degenerateColumns(moments([[1, 2]])), []);
  });

  await t.step("the warning names the column and its partners as messages do", () => {
    const names = ["column 'a'", "column 'b'", "column 'c'"];
    const line = describeDegenerate(
      "k",
      { index: 2, kind: "collinear", measure: 0, with: [0, 1] },
      names,
      64,
    );
    assert.match(line, /^replay: key 'k': column 'c' is collinear with column 'a', column 'b' /);
  });
});

Deno.test("column moments in a slab equal the per-key ones and the textbook values", async (t) => {
  const rows = [[1, 2, 5], [3, 2, 1], [5, 2, 0], [7, 2, 2]];
  const slab = new ColumnMomentsSlab(3);
  const other = slab.alloc();
  const slot = slab.alloc();
  for (const r of rows) {
    slab.add(slot, r);
    slab.add(other, [9, 9, 9]);
  }
  await t.step("count, mean and scatter", () => {
    assert.equal(slab.count(slot), 4);
    const m = slab.take(slot);
    // Mean (4, 2, 2); scatter of column 0: 9 + 1 + 1 + 9 = 20; column 1 constant; cross (0, 2):
    // (−3)(3) + (−1)(−1) + (1)(−2) + (3)(0) = −10.
    assert.deepEqual(Array.from(m.mean), [4, 2, 2]);
    assert.equal(m.scatter[0], 20);
    assert.equal(m.scatter[4], 0);
    assert.equal(m.scatter[2 * 3 + 0], -10);
    assert.equal(m.scatter[0 * 3 + 2], -10);
    assert.deepEqual(m, moments(rows));
  });
  await t.step("a taken slot is reused from zero", () => {
    const again = slab.alloc();
    assert.equal(slab.count(again), 0);
    assert.equal(slab.count(other), 4);
  });
  await t.step("slots beyond the first chunk (4,096 slots) keep their own rows", () => {
    const slots = Array.from({ length: 5000 }, () => slab.alloc());
    for (const [i, sl] of slots.entries()) slab.add(sl, [i, 2 * i, 0]);
    slab.add(slots[4500], [4502, 9004, 2]);
    const m = slab.take(slots[4500]);
    // Rows (4500, 9000, 0) and (4502, 9004, 2): mean (4501, 9002, 1), scatter[0][0] = 2.
    assert.deepEqual(Array.from(m.mean), [4501, 9002, 1]);
    assert.equal(m.scatter[0], 2);
    assert.equal(slab.count(slots[4999]), 1);
    assert.equal(slab.count(other), 4);
  });
});
