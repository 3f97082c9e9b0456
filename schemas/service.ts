/**
 * Wire formats of the scoring service (`mvn`, endpoint `score` on `<prefix>.svc.score.<key>`):
 * the request is any observation message form (see `schemas/observation.ts`), the reply a JSON
 * array of score records against the key's current parameters (nothing is learned), or an error.
 *
 * @module
 */
import { z } from "zod";
import { ScoreRecord } from "./score_record.ts";
import type { ScoreRecord as ScoreRecordType } from "./score_record.ts";

/** Name of the NATS service (micro protocol) the worker registers. */
export const SERVICE_NAME = "mvn";
/** Name of its scoring endpoint. */
export const SCORE_ENDPOINT = "score";

/** Subject prefix of the scoring endpoint: the model key follows it. */
export function scoreSubjectPrefix(prefix: string): string {
  return `${prefix}.svc.score.`;
}

/**
 * Prefix of the internal subject on which the owner of partition `partition` (the worker holding
 * its lease, and only while it holds it) answers scoring requests forwarded by the other workers:
 * `<prefix>.svc.owner.<partition>.<key>`. Not part of the public API.
 */
export function ownerSubjectPrefix(prefix: string, partition: number): string {
  return `${prefix}.svc.owner.${partition}.`;
}

/**
 * Error codes of the scoring service, sent in the `Nats-Service-Error-Code` header (with the
 * message in `Nats-Service-Error`) and in the body ({@link ServiceErrorReply}).
 */
export const SERVICE_ERROR_CODES = {
  /** Not UTF-8 JSON, not an observation form, an empty array, or an f32 block of a bad length. */
  malformed: 400,
  shape: 400,
  f32_length: 400,
  /** The subject names a key this worker does not hold. */
  unknown_key: 404,
  /** Larger than the worker's `--max-message-bytes`. */
  oversize: 413,
  /** Rows of the wrong dimension. */
  dimension: 422,
  /** A value is not finite (or too large to score). */
  non_finite: 422,
  /** Conditional head: the request lacks its context (features of the configured count, a time). */
  features: 422,
  /** The worker is stopping, or the key's owner did not answer in time: retry. */
  unavailable: 503,
  /**
   * No worker owns the key's partition right now (a failover or rebalance in progress, or workers
   * starting): retry after a lease period.
   */
  no_owner: 503,
  /** Anything else (an engine failure). */
  internal: 500,
} as const;

/** Reason of a scoring-service error. */
export type ServiceErrorReason = keyof typeof SERVICE_ERROR_CODES;

/**
 * One score record of a service reply: the replay record (`seq` is the key's observation count,
 * unchanged by the request), without `alarm`, plus, for a request holding an array or an f32 block, `index` (the
 * observation's position in the request).
 */
export const ServiceScoreRecord: z.ZodType<ServiceScoreRecord> = ScoreRecord.omit({ alarm: true })
  .extend({
    index: z.number().int().min(0).optional(),
  });
/**
 * One score record of a service reply. No `alarm`: the service scores against the current
 * parameters without advancing any key's state, alarms included.
 */
export interface ServiceScoreRecord extends Omit<ScoreRecordType, "alarm"> {
  readonly index?: number;
}

/** A successful reply: one record per observation of the request, in request order. */
export const ServiceScoreReply: z.ZodType<ServiceScoreRecord[]> = z.array(ServiceScoreRecord).min(
  1,
);
/** A successful reply. */
export type ServiceScoreReply = ServiceScoreRecord[];

/**
 * The body of an error reply (its headers say the same: `Nats-Service-Error-Code` = `code`,
 * `Nats-Service-Error` = `message`).
 */
export const ServiceErrorReply: z.ZodType<ServiceErrorReply> = z.object({
  error: z.object({
    /** HTTP-like status: see {@link SERVICE_ERROR_CODES}. */
    code: z.number().int(),
    reason: z.enum(
      Object.keys(SERVICE_ERROR_CODES) as [ServiceErrorReason, ...ServiceErrorReason[]],
    ),
    /** What was expected and what was found. */
    message: z.string(),
  }),
});
/** The body of an error reply. */
export interface ServiceErrorReply {
  readonly error: {
    readonly code: number;
    readonly reason: ServiceErrorReason;
    readonly message: string;
  };
}
