/**
 * Wire formats of the live worker: the parameters message, the per-key checkpoint, the score
 * record published per observation, the dead-letter headers and the binary f32 block.
 *
 * @module
 */
import { z } from "zod";
import type { HeadState } from "../src/engine/types.ts";
import { ScoreRecord } from "./score_record.ts";
import { AlarmStateSchema } from "./alarm.ts";
import type { AlarmState } from "../src/model/alarm.ts";

/** `Content-Type` of a binary block of little-endian float32 rows of `dim` values each. */
export const F32_CONTENT_TYPE = "application/vnd.mvn.f32";
/**
 * Header of an f32 block for a conditional head with K carried features: `Mvn-Features: K`, and
 * each row is then `dim + K` floats (the values, then the features).
 */
export const F32_FEATURES_HEADER = "Mvn-Features";

/** Headers set on every dead letter (besides `Nats-Msg-Id`). */
export const DLQ_HEADERS = {
  /** Short reason code: malformed, shape, dimension, non_finite, oversize, f32_length, features. */
  reason: "Mvn-Reason",
  /** Human explanation: what was expected, what was found. */
  detail: "Mvn-Detail",
  /** Subject the message was published on. */
  subject: "Mvn-Subject",
  /** Sequence of the message in the input stream. */
  streamSeq: "Mvn-Stream-Seq",
  /** Present when the payload was cut to fit the server's limit: the original length in bytes. */
  truncated: "Mvn-Truncated-From",
} as const;

/**
 * The headers of a dead letter on `<prefix>.dlq.<key>` as an object (header name → value; NATS
 * header values are strings). The body is the original payload (cut to fit when
 * `Mvn-Truncated-From` is present).
 */
export const DeadLetterHeaders: z.ZodType<DeadLetterHeaders> = z.object({
  [DLQ_HEADERS.reason]: z.enum([
    "malformed",
    "shape",
    "dimension",
    "non_finite",
    "oversize",
    "f32_length",
    "features",
  ])
    .describe("Short reason code"),
  [DLQ_HEADERS.detail]: z.string().describe("What was expected, what was found"),
  [DLQ_HEADERS.subject]: z.string().describe("Subject the message was published on"),
  [DLQ_HEADERS.streamSeq]: z.string().regex(/^[1-9][0-9]*$/).describe(
    "Sequence of the message in the input stream",
  ),
  [DLQ_HEADERS.truncated]: z.string().regex(/^[0-9]+$/).optional().describe(
    "Original payload length in bytes, when the payload was cut to fit the server's limit",
  ),
  "Nats-Msg-Id": z.string().describe("<input stream>:<sequence>, for deduplication"),
  "Content-Type": z.string().optional().describe("The original message's, when it had one"),
});
/** The headers of a dead letter. */
export interface DeadLetterHeaders {
  readonly "Mvn-Reason": DeadLetterReason;
  readonly "Mvn-Detail": string;
  readonly "Mvn-Subject": string;
  readonly "Mvn-Stream-Seq": string;
  readonly "Mvn-Truncated-From"?: string;
  readonly "Nats-Msg-Id": string;
  readonly "Content-Type"?: string;
}

/** Reason codes of dead letters. */
export type DeadLetterReason =
  | "malformed"
  | "shape"
  | "dimension"
  | "non_finite"
  | "oversize"
  | "f32_length"
  | "features";

const Finite = z.number().refine(Number.isFinite, "expected a finite number");

/** The conditional head's network shape (parameters, checkpoints, `--params-out`). */
export const NetworkArchitecture: z.ZodObject<{
  inputs: z.ZodNumber;
  hidden: z.ZodArray<z.ZodNumber>;
  activation: z.ZodEnum<{ tanh: "tanh"; relu: "relu" }>;
  outputs: z.ZodNumber;
  diag: z.ZodEnum<{ softplus: "softplus"; elu1p: "elu1p"; exp: "exp" }>;
  time_features: z.ZodArray<z.ZodEnum<{ daily: "daily"; weekly: "weekly" }>>;
}> = z.object({
  inputs: z.number().int().min(0),
  hidden: z.array(z.number().int().min(1)),
  activation: z.enum(["tanh", "relu"]),
  outputs: z.number().int().min(1),
  diag: z.enum(["softplus", "elu1p", "exp"]),
  time_features: z.array(z.enum(["daily", "weekly"])),
});

/** Parameters of one key, on `<prefix>.params.<key>` and in KV bucket `mvn_params`. */
export const ParamsMessage = z.object({
  key: z.string().min(1),
  dim: z.number().int().min(1),
  loc: z.array(Finite),
  scale_tril: z.array(z.array(Finite)),
  covariance: z.array(z.array(Finite)),
  observations: z.number().int().min(0),
  steps: z.number().int().min(0),
  /** ISO-8601 time the snapshot was taken. */
  updated_at: z.string(),
  /** Conditional head: `loc`/`scale_tril` are the MVN at `context` (the key's latest). */
  head: z.literal("conditional").optional(),
  /** Conditional head: the network's shape. */
  architecture: NetworkArchitecture.optional(),
  /** Conditional head: the raw context (carried features, then time features). */
  context: z.array(Finite).optional(),
  /** Conditional head: parameter version (accepted Adam steps). */
  version: z.number().int().min(0).optional(),
});
export type ParamsMessage = z.infer<typeof ParamsMessage>;

const InitState = z.object({
  count: z.number(),
  w2: z.number().optional(),
  mean: z.array(z.number()),
  scatter: z.array(z.number()),
});

/**
 * `HeadState` of `src/types.ts` as a zod schema (checkpoints are read back from the network).
 * Loose: fields a newer engine adds survive a checkpoint round trip.
 */
export const HeadStateSchema = z.looseObject({
  key: z.string(),
  dim: z.number().int().min(1),
  diag: z.enum(["softplus", "elu1p", "exp"]),
  frame_loc: z.array(z.number()),
  frame_tril: z.array(z.number()),
  theta: z.array(z.number()),
  adam_m: z.array(z.number()),
  adam_v: z.array(z.number()),
  steps: z.number(),
  observations: z.number(),
  rejected_updates: z.number(),
  preset: z.boolean().optional(),
  init: InitState.nullable(),
  memory: z.object({ w: z.number(), w2: z.number(), cusum: z.number(), restarts: z.number() })
    .optional(),
  /** Conditional head (`--head conditional`): `theta` holds the network's weights. */
  head: z.literal("conditional").optional(),
  /** Conditional head: architecture, standardiser, latest context, averaged weights, memory. */
  conditional: z.looseObject({
    architecture: NetworkArchitecture,
    standardiser: z.object({
      count: z.number(),
      mean: z.array(z.number()),
      m2: z.array(z.number()),
    }),
    context: z.array(z.number()).nullable(),
    average: z.array(z.number()).optional(),
    memory: z.object({
      size: z.number().int().min(0),
      next: z.number().int().min(0),
      values: z.array(z.number()),
      context: z.array(z.number()),
      weights: z.array(z.number()),
    }).optional(),
  }).optional(),
});

/** Per-key checkpoint in KV bucket `mvn_checkpoints`. */
export const Checkpoint = z.object({
  /** Highest input stream sequence whose learning is contained in `state`. */
  last_seq: z.number().int().min(0),
  state: HeadStateSchema,
  /**
   * The key's alarm state after `last_seq` (absent in checkpoints written before alarms: the key
   * then starts with its alarm closed).
   */
  alarm: AlarmStateSchema.optional(),
  /** ISO-8601 time of writing. */
  written_at: z.string(),
});
export interface Checkpoint {
  readonly last_seq: number;
  readonly state: HeadState;
  readonly alarm?: AlarmState;
  readonly written_at: string;
}

/**
 * One score per observation on `<prefix>.scores.<key>`: the replay record plus `stream_seq` (the
 * input message's sequence in the input stream) and, for messages holding an array or an f32
 * block, `index` (position of the observation within its message).
 */
export const LiveScoreRecord = ScoreRecord.extend({
  stream_seq: z.number().int().min(1),
  index: z.number().int().min(0).optional(),
});
export type LiveScoreRecord = z.output<typeof LiveScoreRecord>;

/** JetStream's reply to a publish (`{"stream","seq"}` or `{"error":{...}}`), read by the live worker. */
export const PubAck = z.looseObject({
  stream: z.string().optional(),
  seq: z.number().optional(),
  error: z.looseObject({ description: z.string().optional() }).optional(),
});
export type PubAck = z.infer<typeof PubAck>;
