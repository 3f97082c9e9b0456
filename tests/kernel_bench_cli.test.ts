import assert from "node:assert/strict";
import { join } from "node:path";
import { BenchResult } from "../schemas/bench.ts";

Deno.test("bench --quick --sections engine writes a valid JSON result", async (t) => {
  await using dir = await (async () => {
    const path = await Deno.makeTempDir({ prefix: "bench-test-" });
    return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
  })();
  const json = join(dir.path, "bench.json");
  const root = new URL("..", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "bench",
      "--quick",
      "--sections",
      "engine",
      "--backend",
      "cpu",
      "--json",
      json,
    ],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  await t.step("exits 0 and prints the engine table", () => {
    assert.equal(out.code, 0, stderr);
    assert.match(new TextDecoder().decode(out.stdout), /engine \(obs\/s/);
  });
  await t.step("the JSON matches the schema, one row per batch × keys", async () => {
    const result = BenchResult.parse(JSON.parse(await Deno.readTextFile(json)));
    assert.ok(result.quick);
    assert.equal(result.engine.length, 2);
    for (const row of result.engine) {
      assert.equal(row.backend, "cpu");
      assert.ok(row.obs_per_s > 0 && row.bound_obs_per_s > 0);
    }
    assert.equal(result.replay, null);
  });
  await t.step("rejects an unknown section, saying which flag", async () => {
    const bad = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", "bench", "--sections", "engine,nope"],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(bad.code, 2);
    assert.match(new TextDecoder().decode(bad.stderr), /--sections/);
  });
});
