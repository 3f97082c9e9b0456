/**
 * The one way a command turns flags and environment variables into configuration: a table of
 * settings, each `{ flag, env?, arg?, schema, default?, help, group }`, and three functions over
 * it: {@link parseFlags} (node:util parseArgs with options generated from the table),
 * {@link resolveSettings} (flag, else environment variable, else default; every bad value
 * collected as `invalid --flag="value": expected …`) and `usage` in settings_usage.ts (grouped
 * help text with each flag's placeholder, environment variable and default, all read from the
 * same table).
 *
 * Adding a setting is one entry in a table (and using its value):
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { num, option, resolveSettings, toggle } from "./settings.ts";
 *
 * const TABLE = {
 *   batch: option({
 *     flag: "batch", env: "MVN_BATCH", arg: "N", group: "pipeline",
 *     schema: num(z.number().int().min(1)), default: 256, help: "observations per batch",
 *   }),
 *   port: option({ flag: "http", arg: "PORT", group: "service", schema: num(z.number()), help: "…" }),
 *   quiet: toggle({ flag: "quiet", group: "output", help: "no progress bar" }),
 * };
 * const { values, errors } = resolveSettings(TABLE, { batch: "64" }, {});
 * // values: { batch: number; port?: number; quiet: boolean }
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";

/** Environment variables (`Deno.env.toObject()`); an empty value counts as unset. */
export type Env = Readonly<Record<string, string | undefined>>;

/** One setting: where its value comes from, how it is checked and how it is documented. */
export interface Setting<
  S extends z.ZodType = z.ZodType,
  D = unknown,
  F extends string = string,
> {
  /** Flag name without the dashes (`max-wait-ms`). */
  readonly flag: F;
  /** One-letter alias (`h`). */
  readonly short?: string;
  /** Environment variable read when the flag is absent. */
  readonly env?: string;
  /** Placeholder of the value in the usage text (`N`, `URL`); absent for a boolean switch. */
  readonly arg?: string;
  /** Checks the raw value: the flag's or variable's string (or a switch's boolean, or a typed value). */
  readonly schema: S;
  /** Value when neither flag nor variable is given; undefined = none (the value is optional). */
  readonly default: D;
  /** One line of usage text. */
  readonly help: string;
  /** Heading the flag is listed under in the usage text. */
  readonly group: string;
  /** What a good value looks like, after "expected" in errors; default: read from the schema. */
  readonly expects?: string;
}

/** A table of settings, keyed by the name of the resolved value. */
export type SettingsTable = Readonly<Record<string, Setting>>;

/** The resolved value of one setting: `T` with a default, `T | undefined` without. */
export type ValueOf<X> = X extends Setting<infer S, infer D>
  ? undefined extends D ? z.output<S> | undefined
  : z.output<S>
  : never;

type _WithDefault<T extends SettingsTable> = {
  [K in keyof T]: undefined extends T[K]["default"] ? never : K;
}[keyof T];
type _Simplify<O> = { [K in keyof O]: O[K] } & unknown;

/** Resolved values of a table: settings with a default are always present, others optional. */
export type Resolved<T extends SettingsTable> = _Simplify<
  & { readonly [K in _WithDefault<T>]: ValueOf<T[K]> }
  & { readonly [K in Exclude<keyof T, _WithDefault<T>>]?: ValueOf<T[K]> }
>;

/** What one setting accepts before validation: the flag's raw string or boolean, or a typed value. */
export type RawOf<X> = X extends Setting<infer S> ? string | boolean | z.input<S> : never;

/** Raw values keyed by flag name, as `parseArgs` returns them (or as a caller writes them). */
export type FlagValues<T extends SettingsTable> = {
  readonly [K in keyof T as T[K]["flag"]]?: RawOf<T[K]> | undefined;
};

/** Raw or typed values keyed by setting name (a programmatic caller's options). */
export type SettingsInput<T extends SettingsTable> = {
  readonly [K in keyof T]?: RawOf<T[K]> | undefined;
};

/** Fields of {@link option}: a setting whose flag takes a value. */
interface OptionSpec<S extends z.ZodType, F extends string> {
  readonly flag: F;
  readonly short?: string;
  readonly env?: string;
  readonly arg: string;
  readonly schema: S;
  readonly help: string;
  readonly group: string;
  readonly expects?: string;
}

/** A setting whose flag takes a value (`--batch N`), with a default: it resolves to a value. */
export function option<S extends z.ZodType, const F extends string>(
  spec: OptionSpec<S, F> & { readonly default: z.output<S> },
): Setting<S, z.output<S>, F>;
/** A setting whose flag takes a value (`--http PORT`), without a default: it may resolve to none. */
export function option<S extends z.ZodType, const F extends string>(
  spec: OptionSpec<S, F> & { readonly default?: undefined },
): Setting<S, undefined, F>;
export function option<S extends z.ZodType, const F extends string>(
  spec: OptionSpec<S, F> & { readonly default?: z.output<S> },
): Setting<S, z.output<S> | undefined, F> {
  return { ...spec, default: spec.default };
}

/** A boolean switch (`--quiet`): false unless given; its variable takes true/false, 1/0, yes/no, on/off. */
export function toggle<const F extends string>(
  spec: Omit<OptionSpec<z.ZodBoolean, F>, "arg" | "schema">,
): Setting<z.ZodBoolean, false, F> {
  return { ...spec, schema: z.boolean(), default: false };
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * A number from a flag's string (plain decimal literals only: no hex, no empty string) or from a
 * programmatic caller's number, checked by `inner`.
 */
export function num<S extends z.ZodType<number>>(
  inner: S,
): z.ZodPreprocess<S, string | number> {
  return z.preprocess((v: string | number): unknown => {
    if (typeof v !== "string") return v;
    const s = v.trim();
    return DECIMAL.test(s) ? Number(s) : Number.NaN;
  }, inner);
}

/** `a,b, c` → `["a", "b", "c"]` (an array passes through), checked by `inner`. */
export function list<S extends z.ZodType>(
  inner: S,
): z.ZodPreprocess<S, string | readonly string[]> {
  return z.preprocess(
    (v: string | readonly string[]): unknown =>
      typeof v === "string" ? v.split(",").map((s) => s.trim()) : v,
    inner,
  );
}

/** A flag was unknown or a value bad; `errors` holds one line each. */
export class SettingsError extends Error {
  readonly errors: readonly string[];
  constructor(errors: readonly string[], options?: ErrorOptions) {
    super(errors.join("\n"), options);
    this.name = "SettingsError";
    this.errors = errors;
  }
}

/** node:util parseArgs options for a table, plus `--help`/`-h`. */
export function parseArgsOptions(
  table: SettingsTable,
): Record<string, { type: "string" | "boolean"; short?: string }> {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const s of Object.values(table)) {
    options[s.flag] = s.arg === undefined ? { type: "boolean" } : { type: "string" };
    if (s.short !== undefined) options[s.flag].short = s.short;
  }
  options.help = { type: "boolean", short: "h" };
  return options;
}

/** The flags of one command line. */
export interface ParsedFlags<T extends SettingsTable> {
  readonly values: FlagValues<T>;
  readonly positionals: readonly string[];
  /** `--help` or `-h` was given. */
  readonly help: boolean;
}

/** Splits a command line by the table's flags; throws {@link SettingsError} on an unknown flag. */
export function parseFlags<T extends SettingsTable>(table: T, args: string[]): ParsedFlags<T> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: parseArgsOptions(table),
      allowPositionals: true,
      strict: true,
    });
  } catch (cause) {
    throw new SettingsError([cause instanceof Error ? cause.message : String(cause)], { cause });
  }
  const { help, ...values } = parsed.values;
  // The options were generated from the table: one string or boolean per flag of it.
  return { values: values as FlagValues<T>, positionals: parsed.positionals, help: help === true };
}

/** Programmatic options (keyed by setting name) → the same values keyed by flag name. */
export function flagValuesOf<T extends SettingsTable>(
  table: T,
  input: SettingsInput<T>,
): FlagValues<T> {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(table)) out[s.flag] = input[key];
  return out as FlagValues<T>;
}

/** Flag values (keyed by flag name) → the same values keyed by setting name. */
export function settingsInputOf<T extends SettingsTable>(
  table: T,
  flags: FlagValues<T>,
): SettingsInput<T> {
  const byFlag: Readonly<Record<string, unknown>> = flags;
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(table)) out[key] = byFlag[s.flag];
  return out as SettingsInput<T>;
}

/** The outcome of {@link resolveSettings}: values, and one line per bad setting. */
export interface Resolution<T extends SettingsTable> {
  readonly values: Resolved<T>;
  readonly errors: readonly string[];
}

const StringBool = z.stringbool({
  truthy: ["true", "1", "yes", "on"],
  falsy: ["false", "0", "no", "off"],
});

/**
 * Each setting from its flag, else its environment variable (an empty one counts as unset), else
 * its default. Bad values do not stop the others: each is reported as
 * `invalid --flag="value": expected …` (the variable's name when the value came from it).
 * Flags that are not in the table are ignored, so one command line can feed several tables.
 */
export function resolveSettings<T extends SettingsTable>(
  table: T,
  flags: FlagValues<T>,
  env: Env = {},
): Resolution<T> {
  const byFlag: Readonly<Record<string, unknown>> = flags;
  const values: Record<string, unknown> = {};
  const errors: string[] = [];
  for (const [key, s] of Object.entries(table)) {
    const fromFlag = byFlag[s.flag];
    const fromEnv = s.env === undefined || env[s.env] === "" ? undefined : env[s.env];
    if (fromFlag === undefined && fromEnv === undefined) {
      if (s.default !== undefined) values[key] = s.default;
      continue;
    }
    const label = fromFlag !== undefined ? `--${s.flag}` : `${s.env}`;
    const raw = fromFlag ?? fromEnv;
    // A switch's variable holds true/false, 1/0, yes/no or on/off.
    const b = s.arg === undefined && typeof raw === "string"
      ? StringBool.safeParse(raw)
      : undefined;
    const r = b?.success === false ? b : s.schema.safeParse(b === undefined ? raw : b.data);
    if (r.success) {
      values[key] = r.data;
    } else {
      const expected = b?.success === false
        ? "expected true or false (1/0, yes/no, on/off)"
        : expectation(s, r.error);
      errors.push(`invalid ${label}=${_show(raw)}: ${expected}`);
      // The default stands in, so that checks across settings still see a value of the type.
      if (s.default !== undefined) values[key] = s.default;
    }
  }
  return { values: values as Resolved<T>, errors };
}

function _show(raw: unknown): string {
  return JSON.stringify(raw) ?? String(raw);
}

/** "expected …" for a setting: its `expects`, else read from its schema, else zod's message. */
export function expectation(s: Setting, error?: z.ZodError): string {
  const what = s.expects ?? describeSchema(s.schema);
  if (what !== undefined) return `expected ${what}`;
  return error?.issues[0]?.message ?? "a valid value";
}

/**
 * A short description of the values a schema accepts, read from its JSON schema (numbers with
 * their bounds, enums, booleans); undefined when it says nothing useful.
 */
export function describeSchema(schema: z.ZodType): string | undefined {
  for (const io of ["output", "input"] as const) {
    let js: Record<string, unknown>;
    try {
      js = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (Array.isArray(js.enum)) return `one of ${js.enum.join(", ")}`;
    if (js.type === "boolean") return "a boolean switch";
    if (js.type === "number" || js.type === "integer") return _describeNumber(js);
  }
  return undefined;
}

function _describeNumber(js: Record<string, unknown>): string {
  const kind = js.type === "integer" ? "an integer" : "a number";
  const bound = (k: string) => {
    const v = js[k];
    return typeof v === "number" && Math.abs(v) < Number.MAX_SAFE_INTEGER ? v : undefined;
  };
  const lo = bound("minimum") ?? bound("exclusiveMinimum");
  const hi = bound("maximum") ?? bound("exclusiveMaximum");
  const loOpen = bound("minimum") === undefined;
  const hiOpen = bound("maximum") === undefined;
  if (lo !== undefined && hi !== undefined) {
    return `${kind} in ${loOpen ? "(" : "["}${lo}, ${hi}${hiOpen ? ")" : "]"}`;
  }
  if (lo !== undefined) return `${kind} ${loOpen ? ">" : "≥"} ${lo}`;
  if (hi !== undefined) return `${kind} ${hiOpen ? "<" : "≤"} ${hi}`;
  return kind;
}
