/**
 * The JSON forms of observations on the wire, as a zod schema for clients and for the generated
 * JSON Schema (`schemas/json/`): the input subjects `<prefix>.obs.<key>` and the scoring
 * service's requests take one {@link Observation} or a non-empty array of them
 * ({@link ObservationMessage}); a third form is a binary f32 block (`Content-Type:
 * application/vnd.mvn.f32`, little-endian float32 rows of `dim` values), which JSON Schema does
 * not describe. The parser the worker runs is `src/wire/observation.ts` (same forms, with
 * messages that say what was expected); every value must also be finite and at most 1e100 in
 * magnitude, and each observation must have exactly `dim` values.
 *
 * @module
 */
import { z } from "zod";

const Time = z.union([z.number(), z.string()]).describe(
  "Time of the observation, echoed in its score",
);
const Key = z.string().min(1).describe(
  "Model key (replay files only; on NATS the subject names it)",
);
const Label = z.union([z.literal(0), z.literal(1), z.boolean()]).describe(
  "Ground truth (1/true = anomaly), echoed in its score",
);
const Features = z.array(z.number()).describe(
  "Context features of a conditional head (--head conditional): the configured count of numbers",
);

/** Fields every object form may carry besides its values. */
export interface ObservationExtras {
  /** Time of the observation, echoed in its score. */
  readonly t?: number | string;
  /** Model key (replay files only; on NATS the subject names it). */
  readonly key?: string;
  /** Ground truth (1/true = anomaly), echoed in its score. */
  readonly label?: 0 | 1 | boolean;
  /** Context features of a conditional head (`--head conditional`): a fixed count per model. */
  readonly features?: number[];
}

/** `{"v": [d numbers]}`. */
export interface VectorObservation extends ObservationExtras {
  readonly v: number[];
}
/** `{"x": n, "y": n, "z": n}`. */
export interface XyzObservation extends ObservationExtras {
  readonly x: number;
  readonly y?: number;
  readonly z?: number;
}
/** One observation in any JSON form. */
export type Observation = VectorObservation | XyzObservation | number[];
/** One message: an observation or a non-empty array of them. */
export type ObservationMessage = Observation | Observation[];

/** `{"v": [d numbers]}`. */
export const VectorObservation: z.ZodType<VectorObservation> = z.object({
  v: z.array(z.number()).min(1).describe("The d values"),
  t: Time.optional(),
  key: Key.optional(),
  label: Label.optional(),
  features: Features.optional(),
});

/** `{"x": n, "y": n, "z": n}` (d ≤ 3; y and z present up to d). */
export const XyzObservation: z.ZodType<XyzObservation> = z.object({
  x: z.number(),
  y: z.number().optional(),
  z: z.number().optional(),
  t: Time.optional(),
  key: Key.optional(),
  label: Label.optional(),
  features: Features.optional(),
});

/** A bare array of d numbers. */
export const ArrayObservation: z.ZodType<number[]> = z.array(z.number()).min(1);

/** One observation, in any of its JSON forms. */
export const Observation: z.ZodType<Observation> = z.union([
  VectorObservation,
  XyzObservation,
  ArrayObservation,
]);

/** One message: an observation, or a non-empty array of observations. */
export const ObservationMessage: z.ZodType<ObservationMessage> = z.union([
  Observation,
  z.array(Observation).min(1),
]);
