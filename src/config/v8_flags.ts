/**
 * The V8 flags the worker, replay and the benchmarks run with: `deno task start`, `deno task
 * replay` and `deno task bench` carry them (deno.json; a test keeps the two in step), and every
 * child process this checkout starts passes {@link V8_FLAGS_ARG}.
 *
 * - `--no-allocation-site-pretenuring`: without it V8 pretenured the worker's short-lived message
 *   objects, and every scavenge took ~10 ms (docs/perf/2026-12-01-live.md).
 * - `--heap-growing-percent=50`: the old generation may grow to 1.5× what survived the last full
 *   collection before the next, instead of up to 4× of V8's own choice. With many keys the heap
 *   holds their state for good and the per-row garbage on top of it; V8's own growth made each
 *   key cost several times its bytes in resident memory (issue 13: 100,000 keys, the live worker
 *   2.8 → 1.8 KB per key, replay 2.0 → 1.7 KB) for more frequent full collections
 *   (docs/perf/2026-12-07-keys.md).
 *
 * @module
 */

/** The flags, in the order given to V8. */
export const V8_FLAGS: readonly string[] = [
  "--no-allocation-site-pretenuring",
  "--heap-growing-percent=50",
];

/** {@link V8_FLAGS} as one `deno run` argument. */
export const V8_FLAGS_ARG = `--v8-flags=${V8_FLAGS.join(",")}`;
