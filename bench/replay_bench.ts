/**
 * Replay section: obs/s of `replay` over a generated NDJSON file beside `replayFloor` (the same
 * reading, parsing and writing with no model), measured in the same run on the same file.
 *
 * @module
 */
import { join } from "node:path";
import type { ReplayResult } from "./schema.ts";
import { replay, replayFloor } from "../src/replay/replay.ts";
import { SyntheticSource } from "./synthetic.ts";

/** Rows per engine call in the replay measurement. */
export const REPLAY_BATCH = 4096;

/** Writes `n` observations of `keys` keys as NDJSON (`{"t":…,"key":…,"v":[…]}` per line). */
export async function writeNdjson(
  path: string,
  n: number,
  keys: number,
  dim: number,
): Promise<void> {
  const src = new SyntheticSource(dim, keys, 11);
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    const enc = new TextEncoder();
    const chunk = 8192;
    for (let start = 0; start < n; start += chunk) {
      const b = src.batch(Math.min(chunk, n - start));
      let text = "";
      for (let i = 0; i < b.n; i++) {
        const v = Array.from(b.values.subarray(i * dim, (i + 1) * dim), (x) => x.toFixed(6));
        text += `{"t":${start + i},"key":"${b.keys[b.keyIndex[i]]}","v":[${v.join(",")}]}\n`;
      }
      await file.write(enc.encode(text));
    }
  } finally {
    file.close();
  }
}

/** Runs the replay section in a temporary directory that it removes. */
export async function benchReplay(
  opts: { observations: number; keys: number; dim: number; backend: "cpu" | "webgpu" },
  log: (line: string) => void,
): Promise<ReplayResult> {
  const dir = await Deno.makeTempDir({ prefix: "mvn-bench-replay-" });
  try {
    const input = join(dir, "obs.ndjson");
    log(`replay: writing ${opts.observations} observations to ${input} …`);
    await writeNdjson(input, opts.observations, opts.keys, opts.dim);
    const common = {
      input,
      quiet: true,
      batch: REPLAY_BATCH,
      dim: opts.dim,
      backend: opts.backend,
    };
    const io = { stderr: () => {}, progress: false };
    const timed = async (run: () => Promise<unknown>) => {
      const t0 = performance.now();
      await run();
      return opts.observations / ((performance.now() - t0) / 1000);
    };
    // Floor first, so the page cache is equally warm for both.
    log("replay: floor …");
    await timed(() => replayFloor({ ...common, out: join(dir, "warm.ndjson") }, io));
    const floor = await timed(() => replayFloor({ ...common, out: join(dir, "floor.ndjson") }, io));
    log("replay: engine …");
    const rate = await timed(() => replay({ ...common, out: join(dir, "scores.ndjson") }, io));
    return { observations: opts.observations, obs_per_s: rate, floor_obs_per_s: floor };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
