/**
 * The checked-in JSON Schemas (`schemas/json/`) are what `deno task schemas` generates from the zod
 * schemas now; and the wire observation schema accepts what the worker's decoder accepts.
 */
import assert from "node:assert/strict";
import { JSON_SCHEMA_DIR, jsonSchemaFiles } from "../tools/gen_json_schemas.ts";
import { ObservationMessage } from "../schemas/observation.ts";
import { decodeMessage } from "../src/wire/decode.ts";

const root = new URL("..", import.meta.url).pathname;

Deno.test("schemas/json/ is current", async (t) => {
  const files = jsonSchemaFiles();
  await t.step("every generated file is checked in, unchanged", async () => {
    for (const [name, text] of files) {
      const path = `${JSON_SCHEMA_DIR}/${name}`;
      let current: string;
      try {
        current = await Deno.readTextFile(`${root}${path}`);
      } catch {
        assert.fail(`${path} is missing: run \`deno task schemas\` and commit the result`);
      }
      assert.ok(
        current === text,
        `${path} is stale (the zod schemas changed): run \`deno task schemas\` and commit it`,
      );
    }
  });
  await t.step("no checked-in schema is left over", () => {
    for (const entry of Deno.readDirSync(`${root}${JSON_SCHEMA_DIR}`)) {
      if (!entry.name.endsWith(".schema.json")) continue;
      assert.ok(
        files.has(entry.name),
        `${JSON_SCHEMA_DIR}/${entry.name} is no longer generated: run \`deno task schemas\``,
      );
    }
  });
});

Deno.test("the observation message schema agrees with the worker's decoder", () => {
  const good = [
    { v: [1, 2, 3] },
    { v: [1, 2, 3], t: "2026-01-01T00:00:00Z", label: 1 },
    { x: 1, y: 2, z: 3, t: 5 },
    [1, 2, 3],
    [{ v: [1, 2, 3] }, [4, 5, 6], { x: 1, y: 2, z: 3 }],
  ];
  const bad = [{ v: "1,2,3" }, { w: [1, 2, 3] }, [], "1 2 3", { v: [] }, [[1, 2, 3], "x"]];
  const decode = (v: unknown) =>
    decodeMessage({ subject: "p.obs.k", data: new TextEncoder().encode(JSON.stringify(v)) }, {
      dim: 3,
      obsPrefix: "p.obs.",
      maxBytes: 1 << 20,
    });
  for (const v of good) {
    assert.ok(ObservationMessage.safeParse(v).success, `schema refuses ${JSON.stringify(v)}`);
    assert.ok(decode(v).ok, `decoder refuses ${JSON.stringify(v)}`);
  }
  for (const v of bad) {
    assert.ok(!ObservationMessage.safeParse(v).success, `schema accepts ${JSON.stringify(v)}`);
    assert.ok(!decode(v).ok, `decoder accepts ${JSON.stringify(v)}`);
  }
});
