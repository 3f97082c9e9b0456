/**
 * Bad input never crashes a replay and is never dropped silently: each bad line is reported with
 * file:line, skipped and counted by reason; --strict stops at the first; usage errors name the
 * flag, the value and what was expected.
 */
import assert from "node:assert/strict";
import { parseReplayArgs } from "../src/cli/replay.ts";
import { ReplayUsageError } from "../src/io/errors.ts";
import { replay, resolveReplayOptions } from "../src/replay/replay.ts";
import { MemorySink, RecordingEngine, replayWith } from "./helpers/replay.ts";
import { tempDir } from "./helpers/temp_dir.ts";

const NDJSON_LINES = [
  '{"v":[1,2]}', // 1 good
  '{"v":[1,2]', // 2 malformed JSON
  '{"v":[1,2,3]}', // 3 wrong dimension
  '{"v":[1e999,2]}', // 4 non-finite (JSON overflow parses to Infinity)
  '{"x":"1","y":2}', // 5 wrong shape
  "", // 6 blank
  '{"v":[3,4],"label":7}', // 7 unreadable label: warned, scored unlabelled
  '{"v":[5,6]}', // 8 good
];

const CSV_LINES = [
  "x,y,key", // 1 header
  "1,2,k", // 2 good
  "abc,2,k", // 3 bad cell
  "NaN,2,k", // 4 non-finite
  "1,inf,k", // 5 non-finite
  "1,,k", // 6 empty cell
  "1,2", // 7 wrong cell count
  '"1,2,k', // 8 unclosed quote
  "1,2,", // 9 empty key
  "3,4,k", // 10 good
];

Deno.test("bad lines are reported with file:line, skipped and counted by reason", async (t) => {
  await using dir = await tempDir();

  await t.step(
    "NDJSON: malformed, wrong dimension, non-finite, wrong shape; a bad label only warned",
    async () => {
      const file = await dir.write("bad.ndjson", NDJSON_LINES.join("\n") + "\n");
      const run = await replayWith({ input: file, dim: 2 });
      assert.equal(run.summary.observations, 3);
      assert.deepEqual(run.engine.rows.map((r) => r.values), [[1, 2], [3, 4], [5, 6]]);
      assert.deepEqual(run.summary.skipped_by_reason, {
        dimension: 1,
        malformed: 1,
        non_finite: 1,
        shape: 1,
      });
      assert.equal(run.summary.skipped, 4);
      assert.equal(run.summary.bad_labels, 1);
      assert.equal(run.summary.blank_lines, 1);
      const reported = run.stderr.filter((l) => l.startsWith(`${file}:`));
      assert.deepEqual(reported.map((l) => l.split(":")[1]), ["2", "3", "4", "5", "7"]);
      assert.match(reported[0], /:2: malformed: expected JSON/);
      assert.match(reported[1], /:3: dimension: expected 2 values, found 3/);
      assert.match(reported[2], /:4: non_finite: /);
      assert.match(reported[4], /:7: bad_label: label 'label': expected 0, 1, .* found 7; /);
    },
  );

  await t.step(
    "CSV: bad cell, non-finite cells, empty cell, cell count, quotes, empty key",
    async () => {
      const file = await dir.write("bad.csv", CSV_LINES.join("\n"));
      const run = await replayWith({ input: file });
      assert.deepEqual(run.engine.rows.map((r) => r.values), [[1, 2], [3, 4]]);
      assert.deepEqual(run.summary.skipped_by_reason, {
        bad_cell: 1,
        bad_key: 1,
        empty_cell: 1,
        malformed: 2,
        non_finite: 2,
      });
      const reported = run.stderr.filter((l) => l.startsWith(`${file}:`));
      assert.deepEqual(reported.map((l) => l.split(":")[1]), ["3", "4", "5", "6", "7", "8", "9"]);
      assert.match(reported[0], /:3: bad_cell: column 'x': expected a finite number, found abc/);
      assert.match(reported[4], /:7: malformed: expected 3 cells, found 2/);
    },
  );

  await t.step(
    "a CSV whose header lacks a named column is skipped as one 'header' line",
    async () => {
      const file = await dir.write("nocol.csv", "a,b\n1,2\n");
      const run = await replayWith({ input: file, columns: "a,c" });
      assert.equal(run.summary.observations, 0);
      assert.deepEqual(run.summary.skipped_by_reason, { header: 1 });
      assert.match(run.stderr.join("\n"), /nocol\.csv:1: header: expected a column 'c'/);
    },
  );

  await t.step("warnings beyond --max-warnings are counted but not printed", async () => {
    const file = await dir.write("many.ndjson", "x\n".repeat(5) + '{"v":[1]}\n');
    const run = await replayWith({ input: file, max_warnings: 2 });
    assert.equal(run.summary.skipped, 5);
    assert.equal(run.stderr.filter((l) => l.startsWith(file)).length, 2);
    assert.ok(
      run.stderr.some((l) => l.includes("more warnings (bad lines, labels, columns) not shown")),
    );
  });
});

Deno.test("--strict stops at the first bad line after writing the rows before it", async () => {
  await using dir = await tempDir();
  const file = await dir.write("bad.ndjson", NDJSON_LINES.join("\n"));
  const run = await replayWith({ input: file, dim: 2, strict: true, batch: 1 });
  assert.equal(run.summary.stopped, true);
  assert.equal(run.summary.observations, 1);
  assert.equal(run.records.length, 1);
  assert.deepEqual(run.summary.skipped_by_reason, { malformed: 1 });
  assert.ok(run.stderr.some((l) => l.startsWith(`${file}:2: malformed`)));
});

Deno.test("usage errors say which flag, what value and what was expected", async (t) => {
  const usage = (args: string[]): string => {
    try {
      const o = parseReplayArgs(args);
      if (o !== "help") resolveReplayOptions(o);
    } catch (e) {
      assert.ok(e instanceof ReplayUsageError, String(e));
      return e.message;
    }
    assert.fail(`expected a usage error for ${args.join(" ")}`);
  };

  await t.step("bad numbers and choices", () => {
    assert.equal(
      usage(["f", "--batch", "0"]),
      'invalid --batch="0": expected an integer in [1, 1048576]',
    );
    assert.equal(
      usage(["f", "--batch", "ten"]),
      'invalid --batch="ten": expected an integer in [1, 1048576]',
    );
    assert.equal(
      usage(["f", "--alpha", "1.5"]),
      'invalid --alpha="1.5": expected a number in (0, 1)',
    );
    assert.equal(usage(["f", "--lr", "0x1"]), 'invalid --lr="0x1": expected a number in (0, 10]');
    assert.equal(
      usage(["f", "--backend", "tpu"]),
      'invalid --backend="tpu": expected one of auto, webgpu, cpu',
    );
    assert.match(usage(["f", "--delimiter", ":"]), /^invalid --delimiter=":": expected one of/);
    assert.match(usage(["f", "--columns", "a,a"]), /^invalid --columns="a,a": expected .*distinct/);
  });

  await t.step("unknown flags, missing input and conflicting flags", () => {
    assert.match(usage(["f", "--nope"]), /nope/);
    assert.match(usage([]), /^<file\|dir>: expected exactly one input, found none/);
    assert.match(usage(["f", "--freeze", "--train-rows", "3"]), /--freeze and --train-rows/);
    assert.match(usage(["f", "--dim", "2", "--columns", "a,b,c"]), /^--dim: expected 3/);
  });

  await t.step("a missing input file or params file", async () => {
    await using dir = await tempDir();
    await assert.rejects(
      replayWith({ input: `${dir.path}/none.ndjson` }),
      (e: Error) =>
        e instanceof ReplayUsageError && /expected a file or directory, found none/.test(e.message),
    );
    const file = await dir.write("a.ndjson", '{"v":[1]}\n');
    await assert.rejects(
      replayWith({ input: file, params_in: `${dir.path}/p.json` }),
      (e: Error) => e instanceof ReplayUsageError && /--params-in/.test(e.message),
    );
    await assert.rejects(
      replayWith({ input: file, freeze: true }),
      (e: Error) =>
        e instanceof ReplayUsageError && /--freeze: expected --params-in/.test(e.message),
    );
  });

  await t.step("--freeze with a params map that lacks a key", async () => {
    await using dir = await tempDir();
    const file = await dir.write("a.ndjson", '{"key":"a","v":[1]}\n{"key":"b","v":[1]}\n');
    const params = await dir.write(
      "p.json",
      JSON.stringify({ a: { loc: [0], scale_tril: [[1]] } }),
    );
    await assert.rejects(
      replayWith({ input: file, freeze: true, params_in: params }),
      (e: Error) =>
        e instanceof ReplayUsageError && /hold parameters for key 'b', found none/.test(e.message),
    );
  });

  await t.step("params of the wrong shape or dimension", async () => {
    await using dir = await tempDir();
    const file = await dir.write("a.ndjson", '{"v":[1,2]}\n');
    const cases: [unknown, RegExp][] = [
      [{ loc: [0, 0], scale_tril: [[1], [0, -1]] }, /positive scale_tril diagonal, found -1/],
      [{ loc: [0, 0], scale_tril: [[1, 5], [0, 1]] }, /lower-triangular scale_tril, found 5/],
      [{ loc: [0, 0, 0], scale_tril: [[1], [0, 1], [0, 0, 1]] }, /dimension 2 .*found 3/],
      [{ loc: [0, 0], scale_tril: [[1], [0, "x"]] }, /scale_tril/],
    ];
    for (const [json, re] of cases) {
      const params = await dir.write("p.json", JSON.stringify(json));
      await assert.rejects(
        replayWith({ input: file, params_in: params }),
        (e: Error) => e instanceof ReplayUsageError && re.test(e.message),
      );
    }
  });
});

Deno.test("an engine failure rejects the replay and still closes the engine", async () => {
  await using dir = await tempDir();
  const file = await dir.write("a.ndjson", '{"v":[1]}\n'.repeat(20));
  const engine = new RecordingEngine();
  let calls = 0;
  const process = engine.process.bind(engine);
  engine.process = (batch) => {
    calls++;
    return calls === 2 ? Promise.reject(new RangeError("engine broke")) : process(batch);
  };
  await assert.rejects(
    replay({ input: file, batch: 2 }, {
      stdout: new MemorySink(),
      stderr: () => {},
      progress: false,
      createEngine: () => Promise.resolve(engine),
    }),
    /engine broke/,
  );
  assert.equal(engine.closed, true);
});
