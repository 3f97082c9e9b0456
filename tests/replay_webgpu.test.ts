import assert from "node:assert/strict";
import { BACKENDS } from "./helpers/backends.ts";

Deno.test({
  name: "replay runs end to end on the webgpu backend and finds the labelled faults",
  ignore: !BACKENDS.includes("webgpu"),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const out = `${dir}/scores.ndjson`;
      const summaryFile = `${dir}/summary.json`;
      const sample = new URL("../data/sample.ndjson", import.meta.url).pathname;
      const main = new URL("../main.ts", import.meta.url).pathname;
      const r = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          main,
          "replay",
          sample,
          "--backend",
          "webgpu",
          "--out",
          out,
          "--summary",
          summaryFile,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(r.stderr);
      assert.equal(r.code, 0, stderr);
      assert.match(stderr, /backend webgpu \(requested\)/);
      const lines = (await Deno.readTextFile(out)).trim().split("\n");
      assert.equal(lines.length, 5000);
      const summary = JSON.parse(await Deno.readTextFile(summaryFile));
      assert.equal(summary.backend, "webgpu");
      // 53 injected faults: float32 scores must still find nearly all of them.
      assert.ok(
        summary.metrics.tp >= 50 && summary.metrics.fp <= 10,
        JSON.stringify(summary.metrics),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
