/**
 * Errors of replay. A {@link BadInputError} is one skippable line; a {@link ReplayUsageError} is a
 * problem with what the user asked for (exit 2).
 *
 * @module
 */
import type { SkipReason } from "../../schemas/replay.ts";

/** One bad input line (or CSV header): skipped and counted under `reason`, or fatal with --strict. */
export class BadInputError extends Error {
  constructor(readonly reason: SkipReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BadInputError";
  }
}

/** The user asked for something that cannot be done: a missing file, a bad params file... */
export class ReplayUsageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ReplayUsageError";
  }
}

/** Short form of a value for messages. */
export function brief(value: unknown): string {
  const s = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
