/**
 * The JSON forms of one observation, shared by replay (NDJSON) and the live worker:
 * `{"v":[...]}`, `{"x":..,"y":..,"z":..}` (x, y, z for d ≤ 3), or a bare array of d numbers.
 * Optional fields: `t` (time, echoed), `key` (model key), `label` (0/1 ground truth), `features`
 * (numbers: the context of a conditional head; their count is checked by the caller).
 *
 * @module
 */
import { z } from "zod";

// Any JS number: JSON's 1e999 parses to Infinity, which must be reported as non-finite, not as a
// wrong shape (zod's z.number() refuses ±Infinity).
const Num = z.custom<number>((v) => typeof v === "number", "expected a number");
const Label = z.union([z.literal(0), z.literal(1), z.boolean()], "expected 0, 1, true or false")
  .transform((v) => (v ? 1 : 0));
const Time = z.union([z.number(), z.string()]);

const Features = z.array(Num);

const VectorForm = z.object({
  v: z.array(Num).min(1),
  features: Features.optional(),
  t: Time.optional(),
  key: z.string().min(1).optional(),
  label: Label.optional(),
});
const XyzForm = z.object({
  x: Num,
  features: Features.optional(),
  y: Num.optional(),
  z: Num.optional(),
  t: Time.optional(),
  key: z.string().min(1).optional(),
  label: Label.optional(),
});

/** One parsed observation. */
export interface Observation {
  readonly values: number[];
  readonly t?: number | string;
  readonly key?: string;
  readonly label?: 0 | 1;
  /** Context features (conditional head), when the observation carries them. */
  readonly features?: number[];
}

/** Why an observation was refused; `reason` is a short machine-friendly code. */
export class ObservationError extends Error {
  constructor(
    readonly reason: "malformed" | "shape" | "dimension" | "non_finite" | "features",
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ObservationError";
  }
}

/**
 * Parses one already-JSON-decoded observation of dimension `dim`.
 * Throws {@link ObservationError} saying what was expected and what was found.
 */
export function parseObservation(value: unknown, dim: number): Observation {
  let obs: Observation;
  if (Array.isArray(value)) {
    if (!value.every((v) => typeof v === "number")) {
      throw new ObservationError(
        "shape",
        `expected an array of ${dim} numbers, found ${brief(value)}`,
      );
    }
    obs = { values: value as number[] };
  } else if (value !== null && typeof value === "object" && "v" in value) {
    const fast = _vectorForm(value as Record<string, unknown>);
    const r = fast !== undefined
      ? { success: true as const, data: fast }
      : VectorForm.safeParse(value);
    if (!r.success) {
      throw new ObservationError(
        "shape",
        `expected {"v":[${dim} numbers]}${_issue(r.error)}, found ${brief(value)}`,
      );
    }
    obs = {
      values: r.data.v,
      t: r.data.t,
      key: r.data.key,
      label: r.data.label as 0 | 1 | undefined,
    };
    if (r.data.features !== undefined) obs = { ...obs, features: r.data.features };
  } else if (value !== null && typeof value === "object" && "x" in value) {
    const r = XyzForm.safeParse(value);
    if (!r.success) {
      throw new ObservationError(
        "shape",
        `expected {"x":n,"y":n,"z":n}${_issue(r.error)}, found ${brief(value)}`,
      );
    }
    const values = [r.data.x, r.data.y, r.data.z].filter((v): v is number => v !== undefined);
    obs = { values, t: r.data.t, key: r.data.key, label: r.data.label as 0 | 1 | undefined };
    if (r.data.features !== undefined) obs = { ...obs, features: r.data.features };
  } else {
    throw new ObservationError(
      "shape",
      `expected {"v":[...]}, {"x":..,"y":..,"z":..} or an array of numbers, found ${brief(value)}`,
    );
  }
  if (obs.values.length !== dim) {
    throw new ObservationError(
      "dimension",
      `expected ${dim} values, found ${obs.values.length}`,
    );
  }
  for (let j = 0; j < dim; j++) {
    if (!Number.isFinite(obs.values[j])) {
      throw new ObservationError("non_finite", `value ${j} is not finite: ${obs.values[j]}`);
    }
  }
  const f = obs.features;
  if (f !== undefined) {
    for (let j = 0; j < f.length; j++) {
      if (!Number.isFinite(f[j])) {
        throw new ObservationError("non_finite", `feature ${j} is not finite: ${f[j]}`);
      }
    }
  }
  return obs;
}

/** Parses one JSON text holding one observation. */
export function parseObservationJson(text: string, dim: number): Observation {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ObservationError("malformed", `expected JSON, found ${brief(text)}`, { cause });
  }
  return parseObservation(value, dim);
}

/**
 * What `VectorForm` accepts, checked by hand: `v` a non-empty array of numbers, `t` a finite
 * number or a string, `key` a non-empty string, `label` 0/1/true/false (unknown fields dropped).
 * The live worker parses one per observation and the schema's parse was a visible share of its
 * time; undefined sends the value to the schema, which words the error.
 */
function _vectorForm(o: Record<string, unknown>): z.output<typeof VectorForm> | undefined {
  const { v, t, key, label, features } = o;
  if (!Array.isArray(v) || v.length === 0) return undefined;
  if (features !== undefined) {
    if (!Array.isArray(features)) return undefined;
    for (let i = 0; i < features.length; i++) if (typeof features[i] !== "number") return undefined;
  }
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== "number") return undefined;
  if (t !== undefined && typeof t !== "string" && !(typeof t === "number" && Number.isFinite(t))) {
    return undefined;
  }
  if (key !== undefined && !(typeof key === "string" && key.length > 0)) return undefined;
  let l: 0 | 1 | undefined;
  if (label === 0 || label === false) l = 0;
  else if (label === 1 || label === true) l = 1;
  else if (label !== undefined) return undefined;
  return { v: v as number[], t, key, label: l, features } as z.output<typeof VectorForm>;
}

function _issue(err: z.ZodError): string {
  const i = err.issues[0];
  return i === undefined ? "" : ` (${i.path.join(".") || "value"}: ${i.message})`;
}

function brief(value: unknown): string {
  const s = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
