/**
 * Offline back-testing: reads recorded NDJSON/CSV streams, sends their rows in input order and in
 * mini-batches to the scoring engine (scored with the parameters from before each batch, then
 * learned), and writes one score record per observation.
 *
 * The engine runs in the compute thread, where up to {@link PIPELINE_DEPTH} batches are in flight
 * while this thread reads, parses and formats: always on webgpu, and on cpu for inputs of
 * {@link THREAD_FROM_BYTES} or more when the machine has a second core (with many keys the engine's
 * per-key work is as large as the parsing, and the two then overlap). Smaller inputs on cpu keep
 * it in this thread: a batch costs less than a thread hop, and there is no thread to start.
 *
 * This module is the entry point; the options are resolved in `./options.ts`, the run is
 * `./pipeline.ts`, the summary `./summary.ts`.
 *
 * @module
 */
import type { HeadConfig } from "../config/head_config.ts";
import type { ReplayOptionsInput, ReplaySummary } from "../../schemas/replay.ts";
import { StandInEngine } from "../engine/stand_in.ts";
import { ReplayUsageError } from "../io/errors.ts";
import { listInputs } from "../io/input_files.ts";
import { fieldSpec, replayHeadConfig, resolveDim, resolveReplayOptions } from "./options.ts";
import { stderrLine } from "./output.ts";
import { readParamsFile } from "./params_io.ts";
import { PIPELINE_DEPTH, type ReplayEngine, type ReplayIO, runPipeline } from "./pipeline.ts";

export { PIPELINE_DEPTH, type ReplayEngine, type ReplayIO, resolveReplayOptions };
export { summaryLine } from "./summary.ts";

/**
 * Replays the input through the engine and writes one score record per observation.
 * Resolves to the run's summary (`stopped` is true when `--strict` met a bad line). Throws
 * {@link ReplayUsageError} for what the user asked that cannot be done.
 */
export async function replay(
  options: ReplayOptionsInput,
  io: ReplayIO = {},
): Promise<ReplaySummary> {
  const opts = resolveReplayOptions(options);
  if (opts.freeze && opts.params_in === undefined) {
    throw new ReplayUsageError(
      "--freeze: expected --params-in with parameters for the keys (frozen heads cannot learn any)",
    );
  }
  const log = io.stderr ?? stderrLine;
  const files = await listInputs(opts.input);
  const params = opts.params_in === undefined ? null : await readParamsFile(opts.params_in);
  const fields = fieldSpec(opts);
  const dim = await resolveDim(opts, files, fields, params);
  const config = replayHeadConfig(opts, dim);
  const bytes = files.reduce((sum, f) => sum + f.size, 0);
  const make = io.createEngine ??
    ((c: HeadConfig, l: (line: string) => void) =>
      _defaultEngine(c, l, bytes >= THREAD_FROM_BYTES && navigator.hardwareConcurrency >= 2));
  const engine = await make(config, log);
  try {
    if (!opts.quiet) log(`replay: ${engine.backendReason || `backend ${engine.backend}`}`);
    return await runPipeline(opts, io, log, files, fields, dim, params, engine, config);
  } finally {
    await engine.close();
  }
}

/**
 * The speed floor of {@link replay}: the same reading, parsing and writing of one record per
 * observation, with no model: every row is scored against the standard normal (loc 0, identity
 * scale), so the records have the same shape and about the same text as replay's.
 */
export async function replayFloor(
  options: ReplayOptionsInput,
  io: ReplayIO = {},
): Promise<ReplaySummary> {
  return await replay({ ...options, params_in: undefined, params_out: undefined, freeze: false }, {
    ...io,
    createEngine: (config) => Promise.resolve(new StandInEngine(config, "standard_normal")),
  });
}

/** Input size from which replay on cpu runs its engine in the compute thread (2 cores or more). */
export const THREAD_FROM_BYTES = 16 * 1024 * 1024;

async function _defaultEngine(
  config: HeadConfig,
  log: (line: string) => void,
  threaded: boolean,
): Promise<ReplayEngine> {
  const { createEngine } = await import("../engine/thread/compute_thread.ts");
  return await createEngine(config, { thread: threaded ? true : "auto", log });
}
