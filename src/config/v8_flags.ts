/**
 * The V8 flags of the live worker and of replay (deno.json's tasks carry them; a test keeps the
 * two in step). The worker's, {@link V8_FLAGS}: `deno task start` (so `bin/start`) and `deno task
 * bench`, and every worker process this checkout starts (`src/nats/worker_command.ts`, the
 * benchmarks) passes {@link V8_FLAGS_ARG}. Replay's: {@link REPLAY_V8_FLAGS}.
 *
 * - `--no-allocation-site-pretenuring`: without it V8 pretenured the worker's short-lived message
 *   objects, and every scavenge took ~10 ms (docs/perf/2026-12-01-live.md).
 * - `--heap-growing-percent=50`: the old generation may grow to 1.5× what survived the last full
 *   collection before the next, instead of up to 4× by V8's own choice. A worker with many keys
 *   holds their state for good, with each checkpoint barrier's and parameter round's per-key
 *   texts in flight on top; V8's own growth made each key cost several times its bytes in
 *   resident memory (issue 13, 100,000 keys: 2.8 → 1.7–2.1 KB per key, docs/perf/2026-12-07-keys.md).
 *   Replay does not take it: there it cut the one-key base as much as the 100,000-key peak, and
 *   cost 13 % of the one-key rate.
 *
 * @module
 */

/** The worker's flags, in the order given to V8. */
export const V8_FLAGS: readonly string[] = [
  "--no-allocation-site-pretenuring",
  "--heap-growing-percent=50",
];

/** {@link V8_FLAGS} as one `deno run` argument. */
export const V8_FLAGS_ARG = `--v8-flags=${V8_FLAGS.join(",")}`;

/**
 * The V8 flags of replay (`deno task replay`, and the replay runs of `bench/keys_bench.ts`).
 *
 * - `--json-parse-max-heuristically-internalized-strings=0`: JSON.parse no longer looks short
 *   string values (≤ 10 characters) up in V8's string table. Every row's key is one: with 100,000
 *   keys that lookup was a cache miss or two per row, and replay keeps its own table of keys
 *   anyway (`src/replay/key_table.ts`). 100,000 keys × 20 rows: 4–15 % faster; one key: the same
 *   (docs/perf/2026-12-07-keys.md). The flag cannot be set once the process runs (V8 freezes its
 *   flags), so a replay started as `deno run main.ts replay` runs without it.
 */
export const REPLAY_V8_FLAGS: readonly string[] = [
  "--json-parse-max-heuristically-internalized-strings=0",
];

/** {@link REPLAY_V8_FLAGS} as one `deno run` argument. */
export const REPLAY_V8_FLAGS_ARG = `--v8-flags=${REPLAY_V8_FLAGS.join(",")}`;
