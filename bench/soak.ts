/**
 * Soak: the engine (same thread, so its tfjs tensors are visible here) at half its measured
 * sustained rate for a while; RSS and `tf.memory().numTensors` after warm-up and at the end.
 *
 * @module
 */
import { resolveHeadConfig } from "../src/config/head_config.ts";
import type { SoakResult } from "./schema.ts";
import { createEngine } from "../src/engine/thread/compute_thread.ts";
import type { BackendName } from "../src/engine/types.ts";
import { SyntheticSource } from "./synthetic.ts";

const BATCH = 4096;
const KEYS = 100;

export async function benchSoak(
  opts: { minutes: number; backend: BackendName; dim: number },
  log: (line: string) => void,
): Promise<SoakResult> {
  const tf = await import("@tensorflow/tfjs");
  const engine = await createEngine(resolveHeadConfig({ dim: opts.dim, backend: opts.backend }), {
    thread: false,
    log: () => {},
  });
  try {
    const src = new SyntheticSource(opts.dim, KEYS, 5);
    const batches = Array.from({ length: 8 }, () => src.batch(BATCH));
    let i = 0;
    // Sustained rate over 3 s, after initialising every key.
    for (let r = 0; r < 40; r++) await engine.process(batches[i++ % batches.length]);
    let t0 = performance.now();
    let rows = 0;
    while (performance.now() - t0 < 3000) {
      await engine.process(batches[i++ % batches.length]);
      rows += BATCH;
    }
    const half = rows / ((performance.now() - t0) / 1000) / 2;
    log(`soak: ${opts.minutes} min at ${Math.round(half)} obs/s (half the sustained rate)`);
    const intervalMs = (BATCH / half) * 1000;
    const runFor = async (ms: number) => {
      const start = performance.now();
      let n = 0;
      while (performance.now() - start < ms) {
        const due = start + n * intervalMs;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((res) => setTimeout(res, wait));
        await engine.process(batches[i++ % batches.length]);
        n++;
      }
      return n * BATCH;
    };
    const totalMs = opts.minutes * 60_000;
    // RSS and tensors are taken after a warm-up tenth, so JIT and heap sizing are excluded.
    let obs = await runFor(totalMs / 10);
    const rssStart = Deno.memoryUsage().rss / 2 ** 20;
    const tensorsStart = tf.memory().numTensors;
    t0 = performance.now();
    obs += await runFor(totalMs - totalMs / 10);
    return {
      minutes: opts.minutes,
      obs,
      rss_start_mb: rssStart,
      rss_end_mb: Deno.memoryUsage().rss / 2 ** 20,
      tensors_start: tensorsStart,
      tensors_end: tf.memory().numTensors,
    };
  } finally {
    await engine.close();
  }
}
