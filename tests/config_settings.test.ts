/**
 * The generic settings modules (src/config/settings.ts, settings_usage.ts): parseArgs options,
 * resolution of flags and environment variables, errors and generated usage; and the tables built
 * on it.
 */
import { REPLAY_V8_FLAGS_ARG, V8_FLAGS_ARG } from "../src/config/v8_flags.ts";
import assert from "node:assert/strict";
import { z } from "zod";
import {
  describeSchema,
  flagValuesOf,
  num,
  option,
  parseArgsOptions,
  parseFlags,
  type Resolved,
  resolveSettings,
  SettingsError,
  settingsInputOf,
  type SettingsTable,
  toggle,
} from "../src/config/settings.ts";
import { formatDefault, usage } from "../src/config/settings_usage.ts";
import { MODEL_SETTINGS } from "../src/config/model_settings.ts";
import { HeadConfigInput, resolveHeadConfig } from "../src/config/head_config.ts";
import { LIVE_SETTINGS, LIVE_USAGE, NATS_CLIENT_SETTINGS } from "../src/config/live_config.ts";
import { REPLAY_SETTINGS } from "../schemas/replay.ts";
import { USAGE as REPLAY_USAGE } from "../src/cli/replay.ts";
import { BENCH_SETTINGS } from "../bench/schema.ts";

const TABLE = {
  batch: option({
    flag: "batch",
    env: "T_BATCH",
    arg: "N",
    group: "pipeline",
    schema: num(z.number().int().min(1).max(100)),
    default: 8,
    help: "rows per batch",
  }),
  mode: option({
    flag: "mode",
    env: "T_MODE",
    arg: "fast|slow",
    group: "pipeline",
    schema: z.enum(["fast", "slow"]),
    default: "fast",
    help: "how",
  }),
  port: option({
    flag: "http-port",
    env: "T_PORT",
    arg: "PORT",
    group: "service",
    schema: num(z.number().int().min(0).max(65535)),
    help: "listen here",
  }),
  name: option({
    flag: "name",
    arg: "S",
    group: "service",
    schema: z.string().regex(/^[a-z]+$/, "expected lower-case letters"),
    help: "a name",
  }),
  quiet: toggle({ flag: "quiet", env: "T_QUIET", group: "service", help: "say less" }),
} as const;

Deno.test("resolved types follow the table: a default gives T, none gives T | undefined", () => {
  const { values, errors } = resolveSettings(TABLE, {});
  assert.deepEqual(errors, []);
  // Compile-time: these assignments fail to type-check if the inference is wrong.
  const batch: number = values.batch;
  const mode: "fast" | "slow" = values.mode;
  const quiet: boolean = values.quiet;
  const port: number | undefined = values.port;
  // @ts-expect-error: a setting without a default may be undefined
  const portStrict: number = values.port;
  const typed: Resolved<typeof TABLE> = { batch: 1, mode: "slow", quiet: false };
  assert.deepEqual({ batch, mode, quiet, port, portStrict }, {
    batch: 8,
    mode: "fast",
    quiet: false,
    port: undefined,
    portStrict: undefined,
  });
  assert.equal(typed.port, undefined);
});

Deno.test("a flag beats its environment variable; an empty variable is unset", () => {
  const env = { T_BATCH: "20", T_MODE: "slow", T_PORT: "", T_QUIET: "yes" };
  const fromEnv = resolveSettings(TABLE, {}, env);
  assert.deepEqual(fromEnv.errors, []);
  assert.equal(fromEnv.values.batch, 20);
  assert.equal(fromEnv.values.mode, "slow");
  assert.equal(fromEnv.values.port, undefined);
  assert.equal(fromEnv.values.quiet, true);
  const parsed = parseFlags(TABLE, ["--batch", "30", "--http-port", "8080", "--quiet"]);
  const both = resolveSettings(TABLE, parsed.values, { ...env, T_PORT: "9090", T_QUIET: "0" });
  assert.deepEqual(both.errors, []);
  assert.equal(both.values.batch, 30);
  assert.equal(both.values.port, 8080);
  assert.equal(both.values.quiet, true);
  assert.equal(both.values.mode, "slow");
});

Deno.test("every bad value is reported, naming the flag or variable, the value and what was expected", () => {
  const parsed = parseFlags(TABLE, ["--batch", "0", "--name", "X1"]);
  const r = resolveSettings(TABLE, parsed.values, {
    T_MODE: "medium",
    T_PORT: "0x10",
    T_QUIET: "maybe",
  });
  assert.deepEqual(r.errors, [
    'invalid --batch="0": expected an integer in [1, 100]',
    'invalid T_MODE="medium": expected one of fast, slow',
    'invalid T_PORT="0x10": expected an integer in [0, 65535]',
    'invalid --name="X1": expected lower-case letters',
    'invalid T_QUIET="maybe": expected true or false (1/0, yes/no, on/off)',
  ]);
  // The default stands in for a bad value, so checks across settings see the declared type.
  assert.equal(r.values.batch, 8);
  // A programmatic typed value is named by its flag too.
  const typed = resolveSettings(TABLE, flagValuesOf(TABLE, { batch: 1000 }));
  assert.deepEqual(typed.errors, ["invalid --batch=1000: expected an integer in [1, 100]"]);
});

Deno.test("parseFlags: generated options, --help, positionals, unknown flags", () => {
  const options = parseArgsOptions(TABLE);
  for (const s of Object.values(TABLE)) {
    assert.equal(options[s.flag].type, s.arg === undefined ? "boolean" : "string", s.flag);
  }
  assert.deepEqual(options.help, { type: "boolean", short: "h" });
  const p = parseFlags(TABLE, ["in.csv", "-h", "--mode", "slow"]);
  assert.equal(p.help, true);
  assert.deepEqual(p.positionals, ["in.csv"]);
  assert.deepEqual(settingsInputOf(TABLE, p.values).mode, "slow");
  assert.throws(() => parseFlags(TABLE, ["--nope"]), SettingsError);
  assert.throws(() => parseFlags(TABLE, ["--batch"]), SettingsError);
});

Deno.test("describeSchema reads bounds and choices from the schema", () => {
  assert.equal(describeSchema(z.number().int().min(1).max(32)), "an integer in [1, 32]");
  assert.equal(describeSchema(z.number().gt(0).lt(1)), "a number in (0, 1)");
  assert.equal(describeSchema(z.number().positive().max(10)), "a number in (0, 10]");
  assert.equal(describeSchema(z.number().int().min(0)), "an integer ≥ 0");
  assert.equal(describeSchema(z.number().gt(1)), "a number > 1");
  assert.equal(describeSchema(num(z.number().min(0))), "a number ≥ 0");
  assert.equal(describeSchema(z.enum(["a", "b"])), "one of a, b");
  assert.equal(describeSchema(z.string().regex(/x/)), undefined);
});

/** Each flag of the table appears in the usage with its placeholder, default and variable. */
function assertUsageComplete(table: SettingsTable, text: string): void {
  const lines = text.split("\n");
  for (const s of Object.values(table)) {
    const i = lines.findIndex((l) => new RegExp(`^\\s+(-\\w, )?--${s.flag}( |$)`).test(l));
    assert.ok(i >= 0, `--${s.flag} is missing from\n${text}`);
    if (s.arg !== undefined) assert.ok(lines[i].includes(`--${s.flag} ${s.arg}`), s.flag);
    // The entry runs until the next flag line (wrapped help is indented).
    let end = i + 1;
    while (end < lines.length && /^\s{4,}\S/.test(lines[end])) end++;
    const entry = lines.slice(i, end).join(" ").replace(/\s+/g, " ");
    if (s.default !== undefined && s.default !== false) {
      assert.ok(entry.includes(`default ${formatDefault(s.default)}`), `${s.flag}: ${entry}`);
    }
    if (s.env !== undefined) assert.ok(entry.includes(`env ${s.env}`), `${s.flag}: ${entry}`);
    assert.ok(entry.includes(s.help.split(" ")[0]), `${s.flag}: ${entry}`);
  }
  assert.match(text, /-h, --help/);
}

Deno.test("usage lists every flag, grouped, with its placeholder, default and variable", () => {
  const text = usage(TABLE, { synopsis: "usage: t [options]", groups: ["service"] });
  assertUsageComplete(TABLE, text);
  assert.ok(text.indexOf("service:") < text.indexOf("pipeline:"));
  assert.ok(text.split("\n").every((l) => l.length <= 100), text);
});

Deno.test("the commands' usage texts are complete", () => {
  assertUsageComplete(LIVE_SETTINGS, LIVE_USAGE);
  assertUsageComplete(REPLAY_SETTINGS, REPLAY_USAGE);
  for (const t of [LIVE_SETTINGS, REPLAY_SETTINGS, BENCH_SETTINGS, NATS_CLIENT_SETTINGS]) {
    assertUsageComplete(t, usage(t, { synopsis: "usage" }));
  }
});

Deno.test("the model table follows HeadConfigInput: same keys, schemas and defaults", () => {
  const shape = HeadConfigInput.shape;
  for (const [key, s] of Object.entries(MODEL_SETTINGS)) {
    assert.ok(key in shape, key);
    const field = shape[key as keyof typeof shape];
    // The conditional head's options have no default of their own, so that one given without
    // --head conditional can be told from one left out; the head's defaults then apply.
    const given = ["hidden", "features", "time_features"].includes(key);
    const expected = !given && field instanceof z.ZodDefault ? field.def.defaultValue : undefined;
    assert.deepEqual(s.default, expected, key);
  }
  // Resolved model values feed the head configuration as they are.
  const { values, errors } = resolveSettings(
    MODEL_SETTINGS,
    parseFlags(MODEL_SETTINGS, [
      "--dim",
      "4",
      "--lr",
      "0.5",
    ]).values,
  );
  assert.deepEqual(errors, []);
  const head = resolveHeadConfig(values);
  assert.equal(head.dim, 4);
  assert.equal(head.lr, 0.5);
  assert.deepEqual(
    resolveHeadConfig(resolveSettings(MODEL_SETTINGS, {}).values),
    resolveHeadConfig(),
  );
});

Deno.test("deno task start, bench and replay run with the V8 flags of src/config/v8_flags.ts", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  ) as { tasks: Record<string, string> };
  const expected = { start: V8_FLAGS_ARG, bench: V8_FLAGS_ARG, replay: REPLAY_V8_FLAGS_ARG };
  for (const [task, flags] of Object.entries(expected)) {
    const args = config.tasks[task].split(" ");
    assert.deepEqual(args.filter((a) => a.startsWith("--v8-flags")), [flags], task);
  }
});
