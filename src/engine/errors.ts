/**
 * The engine's typed errors: an {@link EngineError} carries a {@link EngineErrorCode} that callers
 * branch on (never its message text), kept intact across the compute-thread boundary by
 * {@link serializeEngineError} and {@link engineErrorFrom}.
 *
 * @module
 */

/**
 * What went wrong:
 * - `non_finite_input`: a row's values (or its scores) are not finite; the engine refused the whole
 *   batch before any state change, so the same batch without the row at fault can be retried.
 * - `thread_error`: another error raised by the engine in the compute thread (its message starts
 *   with the original error's name).
 * - `thread_failed`: the compute thread itself failed (uncaught error, terminated).
 * - `closed`: the engine was closed.
 * - `unknown_key`: a score-only batch (`ObservationBatch.scoreOnly`) names a key the engine does
 *   not hold; refused before any work.
 * - `bad_features`: a conditional head's batch lacks its context (features of the configured
 *   count, or times for `time_features`); refused before any work.
 */
export type EngineErrorCode =
  | "non_finite_input"
  | "thread_error"
  | "thread_failed"
  | "closed"
  | "unknown_key"
  | "bad_features";

const _CODES: ReadonlySet<string> = new Set<EngineErrorCode>([
  "non_finite_input",
  "thread_error",
  "thread_failed",
  "bad_features",
  "closed",
  "unknown_key",
]);

/** An error of the engine, with a {@link EngineErrorCode}. */
export class EngineError extends Error {
  readonly code: EngineErrorCode;

  constructor(code: EngineErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "EngineError";
    this.code = code;
  }
}

/** True when `e` is an {@link EngineError} with `code`. */
export function hasEngineErrorCode(e: unknown, code: EngineErrorCode): e is EngineError {
  return e instanceof EngineError && e.code === code;
}

/** An error as it crosses the compute-thread boundary (structured-clone safe). */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  /** Set for an {@link EngineError}. */
  readonly code?: EngineErrorCode;
}

/** `e` as the compute thread replies it. */
export function serializeEngineError(e: unknown): SerializedError {
  const err = e instanceof Error ? e : new Error(String(e));
  return err instanceof EngineError
    ? { name: err.name, message: err.message, code: err.code }
    : { name: err.name, message: err.message };
}

/**
 * The {@link EngineError} a compute-thread reply stands for: an engine error keeps its code and
 * message; any other error becomes a `thread_error` whose message starts with its name.
 */
export function engineErrorFrom(s: SerializedError): EngineError {
  if (s.code !== undefined && _CODES.has(s.code)) return new EngineError(s.code, s.message);
  return new EngineError("thread_error", `${s.name}: ${s.message}`);
}
