/**
 * Replay input forms: NDJSON (v, xyz, named fields), CSV (each delimiter, named and detected
 * columns, key/time/label columns), directories (one key per file), dimension inference, batching
 * and learn flags. A recording stand-in engine shows exactly which rows reach the engine.
 */
import assert from "node:assert/strict";
import { ScoreRecord } from "../schemas/score_record.ts";
import { makeSample } from "../src/replay/sample_data.ts";
import { replayWith } from "./helpers/replay.ts";
import { tempDir } from "./helpers/temp_dir.ts";
import { KeyTable } from "../src/replay/key_table.ts";

/** Three 3-D observations of two keys, with times and labels, used in every form below. */
const ROWS = [
  { key: "a", t: 10, label: 0, v: [1, 2, 3] },
  { key: "b", t: 11, label: 1, v: [-0.5, 0.25, 4e-3] },
  { key: "a", t: 12, label: 0, v: [7, 8.5, -9] },
];

function assertRowsReached(seen: { key: string; values: number[] }[]): void {
  assert.deepEqual(seen.map((r) => r.key), ROWS.map((r) => r.key));
  assert.deepEqual(seen.map((r) => r.values), ROWS.map((r) => r.v));
}

/** Replays `options`: the engine reaches ROWS and the records are theirs (`assertRecords`). */
async function assertReplaysRows(
  options: Parameters<typeof replayWith>[0],
  withEchoes = true,
): Promise<Awaited<ReturnType<typeof replayWith>>> {
  const run = await replayWith(options);
  assertRowsReached(run.engine.rows);
  assertRecords(run.records, withEchoes);
  return run;
}

/** Records must echo key/t/label, count seq per key, and carry the standard-normal scores of v. */
function assertRecords(records: Record<string, unknown>[], withEchoes = true): void {
  assert.equal(records.length, ROWS.length);
  const expectedSeq = [1, 1, 2];
  records.forEach((raw, i) => {
    const r = ScoreRecord.parse(raw);
    assert.equal(r.seq, expectedSeq[i]);
    assert.equal(r.key, ROWS[i].key);
    if (withEchoes) {
      assert.equal(r.t, ROWS[i].t);
      assert.equal(r.label, ROWS[i].label);
    }
    assert.deepEqual(r.contrib, ROWS[i].v.map((x) => x * x));
  });
}

Deno.test("NDJSON observation forms reach the engine unchanged", async (t) => {
  await using dir = await tempDir();

  await t.step("the v form, with key, t and label fields echoed", async () => {
    const text = ROWS.map((r) => JSON.stringify({ t: r.t, key: r.key, v: r.v, label: r.label }))
      .join("\n");
    const run = await assertReplaysRows({ input: await dir.write("v.ndjson", text) });
    assert.equal(run.summary.keys, 2);
    assert.equal(run.summary.dim, 3);
  });

  await t.step("the x/y/z form", async () => {
    const text = ROWS.map((r) =>
      JSON.stringify({ key: r.key, x: r.v[0], y: r.v[1], z: r.v[2], t: r.t, label: r.label })
    ).join("\n");
    await assertReplaysRows({ input: await dir.write("xyz.jsonl", text) });
  });

  await t.step(
    "named top-level fields with --columns and renamed key/time/label fields",
    async () => {
      const text = ROWS.map((r) =>
        JSON.stringify({ dev: r.key, ts: r.t, truth: r.label, p: r.v[0], q: r.v[1], r: r.v[2] })
      ).join("\n");
      await assertReplaysRows({
        input: await dir.write("named.ndjson", text),
        columns: "p,q,r",
        key_column: "dev",
        time_column: "ts",
        label_column: "truth",
      });
    },
  );

  await t.step("without a key field every row takes the file's base name", async () => {
    const text = ROWS.map((r) => JSON.stringify({ v: r.v })).join("\n");
    const run = await replayWith({ input: await dir.write("plain.ndjson", text) });
    assert.deepEqual(run.records.map((r) => r.key), [
      "plain.ndjson",
      "plain.ndjson",
      "plain.ndjson",
    ]);
    assert.deepEqual(run.records.map((r) => r.seq), [1, 2, 3]);
    assert.ok(run.records.every((r) => !("t" in r) && !("label" in r)));
  });
});

Deno.test("CSV input is read with any delimiter and any column layout", async (t) => {
  await using dir = await tempDir();

  for (const [name, d] of [["comma", ","], ["semicolon", ";"], ["tab", "\t"], ["pipe", "|"]]) {
    await t.step(`${name}-delimited, delimiter detected, numeric columns found`, async () => {
      const lines = ["t,key,a,b,c,label".replaceAll(",", d)];
      for (const r of ROWS) lines.push([r.t, r.key, ...r.v, r.label].join(d));
      await assertReplaysRows({ input: await dir.write(`${name}.csv`, lines.join("\n")) });
    });
  }

  await t.step(
    "--columns picks and orders value columns; other numeric columns are ignored",
    async () => {
      const lines = ["c,noise,a,when,who,b,y"];
      for (const r of ROWS) lines.push([r.v[2], 99, r.v[0], r.t, r.key, r.v[1], r.label].join(","));
      await assertReplaysRows({
        input: await dir.write("cols.csv", lines.join("\r\n") + "\r\n"),
        columns: "a,b,c",
        time_column: "when",
        key_column: "who",
        label_column: "y",
      });
    },
  );

  await t.step("an explicit --delimiter and quoted cells", async () => {
    const lines = ['"key";"x";"y";"z"'];
    for (const r of ROWS) lines.push([`"${r.key}"`, ...r.v].join(";"));
    await assertReplaysRows({
      input: await dir.write("quoted.txt", lines.join("\n")),
      delimiter: ";",
    }, false);
  });

  await t.step("a non-numeric time column is echoed as a string", async () => {
    const text = "time,x,y\n2026-01-01T00:00:00Z,1,2\n2026-01-01T00:00:01Z,3,4\n";
    const run = await replayWith({ input: await dir.write("iso.csv", text), time_column: "time" });
    assert.deepEqual(run.records.map((r) => r.t), ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"]);
    assert.equal(run.summary.dim, 2);
    assert.deepEqual(run.engine.rows.map((r) => r.values), [[1, 2], [3, 4]]);
  });
});

Deno.test("a directory replays every file in path order, one key per file", async (t) => {
  await using dir = await tempDir();
  await dir.write("b.ndjson", '{"v":[2,0]}\n{"v":[2,1]}\n');
  await dir.write("a/z.csv", "x,y\n1,0\n1,1\n");
  await dir.write("a/m.ndjson", '{"x":3,"y":0}\n');
  await dir.write(".hidden", "not data\n");

  await t.step("keys are the paths relative to the directory, in sorted order", async () => {
    const run = await replayWith({ input: dir.path + "/" });
    assert.deepEqual(run.records.map((r) => [r.key, r.seq]), [
      ["a/m.ndjson", 1],
      ["a/z.csv", 1],
      ["a/z.csv", 2],
      ["b.ndjson", 1],
      ["b.ndjson", 2],
    ]);
    assert.deepEqual(run.engine.rows.map((r) => r.values), [[3, 0], [1, 0], [1, 1], [2, 0], [
      2,
      1,
    ]]);
    assert.equal(run.summary.files, 3);
    assert.equal(run.summary.keys, 3);
  });

  await t.step("a key field inside the files overrides the file key", async () => {
    await using d2 = await tempDir();
    await d2.write("1.ndjson", '{"key":"k","v":[1]}\n');
    await d2.write("2.ndjson", '{"key":"k","v":[2]}\n');
    const run = await replayWith({ input: d2.path });
    assert.deepEqual(run.records.map((r) => [r.key, r.seq]), [["k", 1], ["k", 2]]);
  });
});

Deno.test("the dimension comes from --dim, --columns or the first good row", async (t) => {
  await using dir = await tempDir();
  const file = await dir.write("d.ndjson", 'oops\n{"v":[1,2]}\n{"v":[3,4]}\n');

  await t.step("inferred from the first good row, skipping a bad first line", async () => {
    const run = await replayWith({ input: file });
    assert.equal(run.summary.dim, 2);
    assert.equal(run.summary.observations, 2);
    assert.deepEqual(run.summary.skipped_by_reason, { malformed: 1 });
  });

  await t.step("--dim overrides, making 2-value rows wrong", async () => {
    const run = await replayWith({ input: file, dim: "3" });
    assert.equal(run.summary.observations, 0);
    assert.deepEqual(run.summary.skipped_by_reason, { malformed: 1, dimension: 2 });
  });

  await t.step("3 when nothing says", async () => {
    const run = await replayWith({ input: await dir.write("empty.ndjson", "\n\n") });
    assert.equal(run.summary.dim, 3);
    assert.equal(run.summary.blank_lines, 2);
  });
});

Deno.test("rows go to the engine in input-order mini-batches with per-row learn flags", async (t) => {
  await using dir = await tempDir();
  const lines: string[] = [];
  for (let i = 0; i < 10; i++) lines.push(JSON.stringify({ key: i % 3 === 0 ? "a" : "b", v: [i] }));
  const file = await dir.write("ten.ndjson", lines.join("\n"));

  await t.step("--batch 4 gives batches of 4, 4, 2 spanning keys", async () => {
    const run = await replayWith({ input: file, batch: "4" });
    assert.deepEqual(run.engine.batchSizes, [4, 4, 2]);
    assert.deepEqual(run.engine.rows.map((r) => r.values[0]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.ok(run.engine.rows.every((r) => r.learn === 1));
  });

  await t.step("--train-rows 2 learns from the first two rows of each key only", async () => {
    const run = await replayWith({ input: file, train_rows: "2" });
    // Keys by row: a b b a b b a b b a → learn while the key has fewer than 2 earlier rows.
    assert.deepEqual(run.engine.rows.map((r) => r.learn), [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
  });

  await t.step(
    "--freeze with --params-in learns nothing and sets each key's parameters",
    async () => {
      const params = await dir.write("p.json", JSON.stringify({ loc: [0], scale_tril: [[2]] }));
      const run = await replayWith({ input: file, freeze: true, params_in: params });
      assert.ok(run.engine.rows.every((r) => r.learn === 0));
      assert.deepEqual([...run.engine.params.keys()].sort(), ["a", "b"]);
      assert.deepEqual(run.engine.params.get("a"), { loc: [0], scale_tril: [[2]] });
    },
  );
});

Deno.test("data/sample.ndjson is the generator's output: 5,000 labelled 3-D rows of two keys", async () => {
  const text = await Deno.readTextFile("data/sample.ndjson");
  assert.equal(text, makeSample());
  const rows = text.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(rows.length, 5000);
  assert.deepEqual([...new Set(rows.map((r) => r.key))].sort(), ["pump-a", "pump-b"]);
  const anomalies = rows.filter((r) => r.label === 1).length;
  assert.ok(anomalies > 10 && anomalies < 100, `${anomalies} labelled anomalies`);
  const run = await replayWith({ input: "data/sample.ndjson" });
  assert.equal(run.summary.observations, 5000);
  assert.equal(run.summary.skipped, 0);
  assert.equal(run.summary.dim, 3);
});

Deno.test("records echo every key as its JSON text, escapes included, past the key table's first ids", async () => {
  await using dir = await tempDir();
  const odd = ['q"uote', "back\\slash", "line\nbreak", "lone\ud800", "tab\t", "é", "🙂"];
  // The odd keys appear among the first 1024 ids and again after them (the table grows).
  const keys: string[] = [...odd];
  for (let i = 0; i < 1100; i++) keys.push(`k${i}`);
  keys.push(...odd.map((k) => k + "2"));
  const lines = keys.flatMap((key, i) => [
    JSON.stringify({ key, t: i, v: [i, 1] }),
    JSON.stringify({ key, v: [i, 2] }),
  ]);
  const run = await replayWith({ input: await dir.write("keys.ndjson", lines.join("\n")) });
  const expected = keys.flatMap((key) => [key, key]);
  assert.deepEqual(run.records.map((r) => r.key), expected);
  const texts = run.output.split("\n").filter((l) => l !== "");
  texts.forEach((line, i) => {
    const key = JSON.stringify(expected[i]);
    const t = i % 2 === 0 ? `,"t":${i / 2}` : "";
    assert.ok(line.startsWith(`{"seq":${i % 2 + 1},"key":${key}${t},"log_prob":`), line);
  });
});

Deno.test("the key table gives keys dense ids in order of first appearance and finds them again", () => {
  const table = new KeyTable();
  // Enough keys for the table to grow several times; some differ only in order or by one unit.
  const keys = Array.from({ length: 20_000 }, (_, i) => i % 3 === 0 ? `k${i}` : `${i}k`);
  keys.push("", "é", "a\u0000b", "\ud800");
  keys.forEach((k, i) => {
    assert.equal(table.id(k), -1);
    assert.equal(table.add(k, -1), i);
  });
  keys.forEach((k, i) => assert.equal(table.id(k), i));
  assert.equal(table.id("k1"), -1);
  assert.equal(table.id("nope"), -1);
  assert.equal(table.size, keys.length);
  keys.forEach((k, i) => assert.equal(table.name(i), k));
  // A long key (its characters span several of the table's copies when named).
  const long = "x".repeat(10_000) + "y";
  assert.equal(table.add(long, -1), keys.length);
  assert.equal(table.id(long), keys.length);
  assert.equal(table.id(long.slice(1)), -1);
  assert.equal(table.name(keys.length), long);
});
