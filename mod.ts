/**
 * The public API of mvn-online: the scoring engine (one multivariate-normal head per model key,
 * scored before it learns), the replay of recordings, the live NATS worker, and the wire types.
 *
 * Score a batch and learn from it, in this thread on cpu:
 *
 * @example
 * ```ts
 * import { createEngine, resolveHeadConfig } from "./mod.ts";
 *
 * await using engine = await createEngine(resolveHeadConfig({ dim: 3, backend: "cpu" }), {
 *   thread: false,
 * });
 * const scores = await engine.process({
 *   dim: 3,
 *   n: 2,
 *   values: new Float64Array([0.1, -1.5, 9.8, 0.2, -1.4, 9.9]),
 *   keyIndex: new Uint32Array([0, 0]),
 *   keys: ["pump-7"],
 * });
 * console.log(scores.logProb, scores.pValue, scores.anomaly);
 * const [params] = await engine.snapshot(["pump-7"]);
 * console.log(params.loc, params.scale_tril);
 * ```
 *
 * Back-test a recording (what `deno task replay` runs):
 *
 * @example
 * ```ts
 * import { replay } from "./mod.ts";
 *
 * const summary = await replay({ input: "data/sample.ndjson", out: "scores.ndjson" });
 * console.log(summary.observations, summary.metrics);
 * ```
 *
 * Run the live worker against a NATS server (what `deno task start` runs):
 *
 * @example
 * ```ts
 * import { parseLiveFlags, resolveLiveConfig, startWorker } from "./mod.ts";
 *
 * const config = resolveLiveConfig(parseLiveFlags(["--nats-url", "nats://127.0.0.1:4222"]), {});
 * await using worker = await startWorker(config);
 * await worker.done;
 * ```
 *
 * Ask the scoring service and follow a key's parameters (a client of a running worker):
 *
 * @example
 * ```ts
 * import { connectClient } from "./mod.ts";
 *
 * await using client = await connectClient({ servers: "nats://127.0.0.1:4222", prefix: "telemetry" });
 * const [record] = await client.score("pump-7", [{ v: [1, 2, 3] }]);
 * console.log(record.log_prob, record.anomaly);
 * for await (const p of client.params("pump-7")) console.log(p.loc, p.scale_tril);
 * ```
 *
 * @module
 */

export type { ScoringEngine } from "./src/engine/engine.ts";
export type {
  BackendName,
  DiagTransform,
  HeadParams,
  HeadSnapshot,
  HeadState,
  ObservationBatch,
  ScoreBatch,
} from "./src/engine/types.ts";
export { createEngine, type EngineOptions } from "./src/engine/thread/compute_thread.ts";
export { type HeadConfig, HeadConfigInput, resolveHeadConfig } from "./src/config/head_config.ts";
export { replay, type ReplayIO } from "./src/replay/replay.ts";
export {
  ConfigError,
  type LiveConfig,
  parseLiveFlags,
  resolveLiveConfig,
  topologyFor,
} from "./src/config/live_config.ts";
export { type RunningWorker, startWorker, type WorkerOptions } from "./src/live/worker.ts";
export {
  Checkpoint,
  DeadLetterHeaders,
  LiveScoreRecord,
  ParamsMessage,
} from "./schemas/messages.ts";
export { Observation, ObservationMessage } from "./schemas/observation.ts";
export {
  SERVICE_ERROR_CODES,
  ServiceErrorReply,
  ServiceScoreRecord,
  ServiceScoreReply,
} from "./schemas/service.ts";
export {
  connectClient,
  type ConnectClientOptions,
  type Feed,
  type KeyPattern,
  MvnClient,
  type ObservationInput,
  type ScoreOptions,
  ScoreServiceError,
} from "./src/client/client.ts";
export { ScoreRecord } from "./schemas/score_record.ts";
export { parseObservation } from "./src/wire/observation.ts";
