import assert from "node:assert/strict";
import { join } from "node:path";
import { BenchResult } from "../bench/schema.ts";
import { tempDir } from "./helpers/temp_dir.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/**
 * Runs `main.ts bench --quick --sections <sections> --json <dir>/bench.json` in a child process.
 * An inherited NATS_URL must not matter (the bench starts its own servers), and its temp stores go
 * under `dir`, so that {@link processesUnder} sees only this bench's servers (another suite running
 * on the machine may have its own bench's servers up meanwhile).
 */
async function runBench(dir: string, sections: string, extra: string[] = []) {
  const json = join(dir, "bench.json");
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "bench",
      "--quick",
      "--sections",
      sections,
      ...extra,
      "--json",
      json,
    ],
    cwd: ROOT,
    env: { NATS_URL: "nats://127.0.0.1:1", TMPDIR: dir },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr), json };
}

/** Command lines of running processes that name `path`. */
async function processesUnder(path: string): Promise<string[]> {
  const ps = await new Deno.Command("ps", { args: ["-eo", "args"], stdout: "piped" }).output();
  return new TextDecoder().decode(ps.stdout).split("\n").filter((a) => a.includes(path));
}

Deno.test("bench --quick --sections engine writes a valid JSON result", async (t) => {
  await using dir = await tempDir("bench-test-");
  const out = await runBench(dir.path, "engine", ["--backend", "cpu"]);
  await t.step("exits 0 and prints the engine table", () => {
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /engine \(obs\/s/);
  });
  await t.step("the JSON matches the schema, one row per batch × keys", async () => {
    const result = BenchResult.parse(JSON.parse(await Deno.readTextFile(out.json)));
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
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(bad.code, 2);
    assert.match(new TextDecoder().decode(bad.stderr), /--sections/);
  });
});

Deno.test("bench --quick --sections live measures every format (and both score-message modes) beside the relay", async (t) => {
  await using dir = await tempDir("bench-live-test-");
  const out = await runBench(dir.path, "live");
  await t.step("exits 0 and prints the live table and its floors", () => {
    assert.equal(out.code, 0, out.stderr);
    const stdout = out.stdout;
    assert.match(stdout, /^live$/m);
    assert.match(stdout, /(PASS|FAIL) {2}live f32 ≥ 0\.7× relay/);
    // The latency floor moved to the latency section: none at half load any more.
    assert.doesNotMatch(stdout, /at half load/);
  });
  await t.step(
    "one row per format with rates and latencies, all observations counted",
    async () => {
      const result = BenchResult.parse(JSON.parse(await Deno.readTextFile(out.json)));
      assert.deepEqual(result.live.map((l) => `${l.format}/${l.score_messages}`), [
        "json/row",
        "array/row",
        "f32/row",
        "array/message",
        "f32/message",
      ]);
      for (const l of result.live) {
        assert.ok(l.obs_per_s > 0 && l.relay_obs_per_s > 0, JSON.stringify(l));
        assert.ok((l.drain_obs_per_s ?? 0) > 0, JSON.stringify(l));
        assert.ok(l.p50_ms !== null && l.p99_ms !== null && l.p50_ms <= l.p99_ms);
        assert.equal(l.per_message, l.format === "json" ? 1 : 256);
        assert.ok((l.latency_samples ?? 0) > 0);
      }
      assert.deepEqual(result.engine, []);
    },
  );
  await t.step("leaves no nats-server running from its temp stores", async () => {
    assert.deepEqual(await processesUnder(join(dir.path, "mvn-bench-live-")), []);
  });
});

Deno.test("bench --quick --sections latency,scaleout,failover: fixed-rate latency, one and two workers, failover", async (t) => {
  await using dir = await tempDir("bench-scale-test-");
  const out = await runBench(dir.path, "latency,scaleout,failover");
  await t.step("exits 0 and prints the three tables and the latency floor", () => {
    assert.equal(out.code, 0, out.stderr);
    const stdout = out.stdout;
    assert.match(stdout, /^latency \(publish → score record, fixed rate\)$/m);
    assert.match(stdout, /^scale-out /m);
    assert.match(stdout, /^failover /m);
    assert.match(stdout, /(PASS|FAIL) {2}live json p99 ≤ 25 ms at 5\.0 k obs\/s/);
  });
  await t.step(
    "the JSON holds the latency row, one scale-out row per worker count, the failover",
    async () => {
      const result = BenchResult.parse(JSON.parse(await Deno.readTextFile(out.json)));
      const lat = result.latency;
      assert.ok(lat !== null);
      assert.equal(lat.format, "json");
      assert.equal(lat.rate_obs_per_s, 5000);
      assert.ok(lat.samples > 0 && lat.p50_ms <= lat.p99_ms, JSON.stringify(lat));
      if (Deno.build.os === "linux") assert.ok(lat.sched !== null, JSON.stringify(lat));
      assert.deepEqual(result.scaleout.map((s) => s.workers), [1, 2]);
      for (const s of result.scaleout) {
        // Not the CPU figures: a quick run can be scored between two polls (50 ms, 10 ms ticks).
        assert.ok(s.obs_per_s > 0 && s.observations > 0, JSON.stringify(s));
      }
      const f = result.failover;
      assert.ok(f !== null);
      // Observations after the kill were scored again (by the survivor), however fast.
      assert.ok(f.after_kill.n > 0 && f.failover_ms !== null, JSON.stringify(f));
      assert.deepEqual(result.live, []);
    },
  );
  await t.step("leaves no nats-server running from its temp stores", async () => {
    assert.deepEqual(await processesUnder(dir.path), []);
  });
});

Deno.test("bench --quick --sections keys replays one key and many keys, each in its own process", async (t) => {
  await using dir = await tempDir("bench-keys-test-");
  const out = await runBench(dir.path, "keys");
  await t.step("exits 0 and prints the keys table", () => {
    assert.equal(out.code, 0, out.stderr);
    assert.match(
      out.stdout,
      /^keys \(replay, 40000 obs, d=3, batch 4096, best of 1 run\(s\) a side\)$/m,
    );
    assert.match(out.stdout, /per key beyond one key: -?\d+ B; rate \d+\.\d\d× one key/);
  });
  await t.step("the JSON matches the schema; --quick judges no floor on so few keys", async () => {
    const result = BenchResult.parse(JSON.parse(await Deno.readTextFile(out.json)));
    const k = result.keys!;
    assert.equal(k.keys, 2_000);
    assert.equal(k.observations, 40_000);
    assert.ok(k.one_key.obs_per_s > 0 && k.many_keys.obs_per_s > 0);
    // Both peaks hold at least the Deno runtime.
    assert.ok(k.one_key.peak_rss > 2 ** 20 && k.many_keys.peak_rss > 2 ** 20);
    assert.equal(
      k.bytes_per_key_beyond_base,
      Math.round((k.many_keys.peak_rss - k.one_key.peak_rss) / k.keys),
    );
    assert.deepEqual(result.floors, []);
  });
});
