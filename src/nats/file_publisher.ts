/**
 * Plays a recorded NDJSON/CSV file into NATS JetStream (the `publish` command): rows grouped per
 * key into messages of `perMessage` observations (JSON object, JSON array or f32 block), published
 * with many acks in flight, paced by `--rate` or by the rows' `t` (`--realtime`).
 *
 * @module
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { F32_CONTENT_TYPE } from "../../schemas/messages.ts";
import { LineSource } from "../io/line_source.ts";
import { CsvParser, ndjsonDimOf, NdjsonParser, type RowParser } from "../io/row_parser.ts";
import { sniffFormat } from "../io/input_files.ts";
import { encodeF32 } from "../wire/decode.ts";
import type { Publication } from "./acked_publisher.ts";
import { publishAllAcked } from "./publish_retry.ts";

/** Message format of {@link publishFile}. */
export type PublishFormat = "json" | "array" | "f32";

/** Options of {@link publishFile}. */
export interface PublishFileOptions {
  readonly path: string;
  /** Subject prefix: rows go to `<prefix>.obs.<key>` unless `subject` is given. */
  readonly prefix: string;
  readonly subject?: string;
  /** Key of every row (else the row's key, else the file's base name). */
  readonly key?: string;
  readonly format: PublishFormat;
  readonly perMessage: number;
  /** Observations per second; undefined = as fast as acks allow. */
  readonly rate?: number;
  /** Pace by the rows' `t` (numbers: ms when > 1e11, else seconds; strings: dates). */
  readonly realtime?: boolean;
  /** Dimension (default: from the first row). */
  readonly dim?: number;
  /** Publications in flight at most. Default 1024. */
  readonly window?: number;
  readonly onProgress?: (bytesRead: number, totalBytes: number, observations: number) => void;
  readonly log: (line: string) => void;
}

/** Totals of {@link publishFile}. */
export interface PublishSummary {
  readonly observations: number;
  readonly messages: number;
  readonly skipped: number;
}

interface Pending {
  values: ArrayLike<number>[];
  t: (number | string | undefined)[];
  label: (0 | 1 | undefined)[];
}

function fileKey(path: string): string {
  const base = path.split(/[\\/]/).pop() ?? path;
  return base.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_-]/g, "_") || "default";
}

function timeMs(t: number | string | undefined): number | undefined {
  if (typeof t === "number") return t > 1e11 ? t : t * 1000;
  if (typeof t === "string") {
    const ms = Date.parse(t);
    return Number.isFinite(ms) ? ms : undefined;
  }
  return undefined;
}

/** Publishes the file; resolves once every message is acknowledged by JetStream. */
export async function publishFile(
  js: JetStreamClient,
  o: PublishFileOptions,
): Promise<PublishSummary> {
  const total = (await Deno.stat(o.path)).size;
  await using lines = await LineSource.open(o.path);
  const runId = crypto.randomUUID().slice(0, 8);
  const window = o.window ?? 1024;
  const defaultKey = o.key ?? fileKey(o.path);
  const pending = new Map<string, Pending>();
  const inFlight: Publication[] = [];
  let flushing: Promise<void> = Promise.resolve();
  let parser: RowParser | undefined;
  let csvHeader: string | undefined;
  let observations = 0;
  let messages = 0;
  let skipped = 0;
  const started = performance.now();
  let firstT: number | undefined;

  // Two groups in flight: the previous one is awaited only after the next one is sent.
  const flushPubs = async (all = false) => {
    const batch = inFlight.splice(0);
    const next = batch.length > 0 ? publishAllAcked(js, batch, o.log) : Promise.resolve();
    const prev = flushing;
    flushing = prev.then(() => next);
    await (all ? flushing : prev);
  };
  const emit = async (key: string, p: Pending) => {
    const n = p.values.length;
    let data: Uint8Array | string;
    let headers: Record<string, string> | undefined;
    const obj = (i: number) => ({
      v: Array.from(p.values[i]),
      ...(p.t[i] !== undefined ? { t: p.t[i] } : {}),
      ...(p.label[i] !== undefined ? { label: p.label[i] } : {}),
    });
    if (o.format === "f32") {
      data = encodeF32(p.values, p.values[0].length);
      headers = { "Content-Type": F32_CONTENT_TYPE };
    } else if (o.format === "array" || n > 1) {
      data = JSON.stringify(Array.from({ length: n }, (_, i) => obj(i)));
    } else {
      data = JSON.stringify(obj(0));
    }
    messages++;
    inFlight.push({
      subject: o.subject ?? `${o.prefix}.obs.${key}`,
      data,
      msgID: `publish-${runId}-${messages}`,
      headers,
    });
    // Keep up to `window` publications in flight: the previous group acks while this one fills.
    if (inFlight.length >= window / 2) await flushPubs();
  };

  while (true) {
    const chunk = await lines.next();
    if (chunk === null) break;
    for (const line of chunk.lines) {
      if (line.trim().length === 0) continue;
      if (parser === undefined) {
        if (sniffFormat(line) === "csv") {
          if (csvHeader === undefined) {
            csvHeader = line;
            continue;
          }
          parser = new CsvParser(csvHeader, [line], {}, o.dim);
        } else {
          const dim = o.dim ?? ndjsonDimOf(line, {});
          if (dim === undefined) {
            skipped++;
            continue;
          }
          parser = new NdjsonParser(dim, {});
        }
      }
      let row;
      try {
        row = parser.parse(line);
      } catch {
        skipped++;
        continue;
      }
      const key = o.key ?? row.key ?? defaultKey;
      if (o.realtime) {
        const ms = timeMs(row.t);
        if (ms !== undefined) {
          firstT ??= ms;
          const due = started + (ms - firstT);
          const wait = due - performance.now();
          if (wait > 1) {
            await flushPubs(true);
            await new Promise((r) => setTimeout(r, wait));
          }
        }
      } else if (o.rate !== undefined) {
        const due = started + (observations / o.rate) * 1000;
        const wait = due - performance.now();
        if (wait > 1) {
          await flushPubs(true);
          await new Promise((r) => setTimeout(r, wait));
        }
      }
      let p = pending.get(key);
      if (p === undefined) {
        p = { values: [], t: [], label: [] };
        pending.set(key, p);
      }
      p.values.push(Array.from(row.values));
      p.t.push(row.t);
      p.label.push(row.label);
      observations++;
      // Paced modes send each message as soon as it is full; one row per message then flushes.
      if (p.values.length >= o.perMessage) {
        pending.delete(key);
        await emit(key, p);
        if (o.realtime || o.rate !== undefined) await flushPubs();
      }
    }
    o.onProgress?.(lines.bytesRead, total, observations);
  }
  for (const [key, p] of pending) await emit(key, p);
  await flushPubs(true);
  o.onProgress?.(total, total, observations);
  return { observations, messages, skipped };
}
