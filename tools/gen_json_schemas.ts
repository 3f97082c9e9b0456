/**
 * Generates the JSON Schemas of every wire type from the zod schemas into `schemas/json/`
 * (`deno task schemas`). `tests/wire_json_schemas.test.ts` fails when the checked-in files differ
 * from what this generates. Alarm episodes have no zod schema yet (see docs/api.md).
 *
 * The schemas describe what the zod parsers accept (`io: "input"`): objects allow fields they do
 * not list, so a client validating with them keeps working when a newer worker adds a field.
 *
 * @module
 */
import { z } from "zod";
import {
  Checkpoint,
  DeadLetterHeaders,
  LiveScoreRecord,
  ParamsMessage,
} from "../schemas/messages.ts";
import { Observation, ObservationMessage } from "../schemas/observation.ts";
import { ScoreRecord } from "../schemas/score_record.ts";
import { ServiceErrorReply, ServiceScoreReply } from "../schemas/service.ts";

/** Where the files go, relative to the project root. */
export const JSON_SCHEMA_DIR = "schemas/json";

interface Entry {
  readonly schema: z.ZodType;
  readonly title: string;
  readonly description: string;
}

const ENTRIES: Record<string, Entry> = {
  observation: {
    schema: Observation,
    title: "Observation",
    description: 'One observation: {"v":[d numbers]}, {"x":..,"y":..,"z":..} or [d numbers].',
  },
  observation_message: {
    schema: ObservationMessage,
    title: "Observation message",
    description:
      "A message on <prefix>.obs.<key>: one observation or a non-empty array of them (or, not " +
      "described here, an f32 block with Content-Type application/vnd.mvn.f32).",
  },
  score_record: {
    schema: ScoreRecord,
    title: "Score record (replay)",
    description: "One line of replay's NDJSON output: the score of one observation.",
  },
  live_score_record: {
    schema: LiveScoreRecord,
    title: "Score record (live)",
    description:
      "A message on <prefix>.scores.<key> (stream <PREFIX>_SCORES) and <prefix>.anomalies.<key>; " +
      "with --score-messages message, a score message holds an array of these.",
  },
  params: {
    schema: ParamsMessage,
    title: "Parameters",
    description:
      "Parameters of one key: on <prefix>.params.<key> and in KV bucket <prefix>_params " +
      "(KV key: the model key with bytes other than [A-Za-z0-9_-] written =XX).",
  },
  checkpoint: {
    schema: Checkpoint,
    title: "Checkpoint",
    description: "Resumable state of one key in KV bucket <prefix>_checkpoints.",
  },
  dead_letter_headers: {
    schema: DeadLetterHeaders,
    title: "Dead-letter headers",
    description:
      "Headers of a message on <prefix>.dlq.<key> (stream <PREFIX>_DLQ), as header name → value; " +
      "the body is the original payload.",
  },
  service_score_request: {
    schema: ObservationMessage,
    title: "Scoring service request",
    description:
      "Body of a request to <prefix>.svc.score.<key> (service mvn, endpoint score): any " +
      "observation message form (or an f32 block with Content-Type application/vnd.mvn.f32).",
  },
  service_score_reply: {
    schema: ServiceScoreReply,
    title: "Scoring service reply",
    description:
      "One score record per observation of the request, against the key's current parameters " +
      "(nothing learned).",
  },
  service_error: {
    schema: ServiceErrorReply,
    title: "Scoring service error reply",
    description: "Body of an error reply; headers Nats-Service-Error-Code (= error.code) and " +
      "Nats-Service-Error (= error.message) say the same.",
  },
};

/** File name (in {@link JSON_SCHEMA_DIR}) → its JSON text, as generated now. */
export function jsonSchemaFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const [name, e] of Object.entries(ENTRIES)) {
    const { $schema, ...rest } = z.toJSONSchema(e.schema, {
      target: "draft-2020-12",
      io: "input",
    }) as Record<
      string,
      unknown
    >;
    const doc = { $schema, title: e.title, description: e.description, ...rest };
    files.set(`${name}.schema.json`, JSON.stringify(doc, null, 2) + "\n");
  }
  return files;
}

if (import.meta.main) {
  const root = new URL("..", import.meta.url).pathname;
  const dir = `${root}${JSON_SCHEMA_DIR}`;
  await Deno.mkdir(dir, { recursive: true });
  const files = jsonSchemaFiles();
  for (const [name, text] of files) await Deno.writeTextFile(`${dir}/${name}`, text);
  for (const entry of Deno.readDirSync(dir)) {
    if (entry.name.endsWith(".schema.json") && !files.has(entry.name)) {
      await Deno.remove(`${dir}/${entry.name}`);
    }
  }
  console.error(`wrote ${files.size} JSON Schemas to ${JSON_SCHEMA_DIR}/`);
}
