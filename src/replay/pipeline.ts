/**
 * Replay's pipeline: reads the input files in order, parses their rows, collects them in batches,
 * keeps up to {@link PIPELINE_DEPTH} engine calls in flight and writes the score records (and
 * alarm episodes) in input order; then the parameters and the summary.
 *
 * @module
 */
import type { HeadConfig } from "../config/head_config.ts";
import type { ReplayOptions, SkipReason } from "../../schemas/replay.ts";
import type { ReplaySummary } from "../../schemas/replay.ts";
import type { ScoringEngine } from "../engine/engine.ts";
import type { ScoreBatch } from "../engine/types.ts";
import { BufferedTextWriter } from "../io/buffered_writer.ts";
import type { ByteSink } from "../io/buffered_writer.ts";
import { BadInputError, ReplayUsageError } from "../io/errors.ts";
import { type InputFile, sniffFormat } from "../io/input_files.ts";
import {
  CSV_SAMPLE_LINES,
  CsvParser,
  type FieldSpec,
  NdjsonParser,
  type ParsedRow,
  type RowParser,
} from "../io/row_parser.ts";
import { formatScores } from "../wire/score_format.ts";
import { AlarmTally } from "./alarms.ts";
import { BatchBuilder, type ReplayEchoes } from "./batch.ts";
import { ColumnChecks } from "./column_checks.ts";
import { KeyTable } from "./key_table.ts";
import { contextProblem, isBlank, openInput } from "./input.ts";
import { openOut, stderrWrite, writeJson } from "./output.ts";
import { paramsOut } from "./params_io.ts";
import type { StartParams } from "./params_io.ts";
import { ProgressBar } from "./progress.ts";
import { buildSummary, summaryLine } from "./summary.ts";

/** Batches handed to the engine before the oldest result is awaited. */
export const PIPELINE_DEPTH = 4;

/** What replay needs of an engine (a {@link ScoringEngine} has it all). */
export type ReplayEngine =
  & Pick<
    ScoringEngine,
    "backendReason" | "process" | "setParams" | "snapshot" | "close"
  >
  & Partial<Pick<ScoringEngine, "release">>
  & { readonly backend: string };

/** Where replay reads and writes besides its files; every field has a default. */
export interface ReplayIO {
  /** Score records when `--out` is not given. Default `Deno.stdout`. */
  readonly stdout?: ByteSink;
  /** One line of diagnostics (no newline). Default: written to `Deno.stderr`. */
  readonly stderr?: (line: string) => void;
  /**
   * Whether to draw a progress bar on stderr. Default: when stderr is a terminal and the records
   * do not go to that terminal.
   */
  readonly progress?: boolean;
  /**
   * Makes the engine. Default: `createEngine(config, { thread: "auto", log })` from
   * `src/engine/thread/compute_thread.ts`.
   */
  readonly createEngine?: (
    config: HeadConfig,
    log: (line: string) => void,
  ) => Promise<ReplayEngine>;
}

/**
 * Runs the replay on an engine made for `config` (closed by the caller): writes the records, and
 * `--alarms`, `--params-out` and `--summary` when asked; resolves to the summary.
 */
export async function runPipeline(
  opts: ReplayOptions,
  io: ReplayIO,
  log: (line: string) => void,
  files: readonly InputFile[],
  fields: FieldSpec,
  dim: number,
  params: StartParams | null,
  engine: ReplayEngine,
  config: HeadConfig,
): Promise<ReplaySummary> {
  const initRows = config.init_rows;
  const conditional = config.head === "conditional";
  const nFeatures = conditional ? config.features : 0;
  const timed = conditional && config.time_features.length > 0;
  const started = performance.now();
  // Warm-up observations add no evidence to the alarm (heads given by --params-in flag at once).
  const armedFrom = params !== null ? 0 : config.warmup + 1;
  if (params !== null) {
    for (const [key, p] of params.byKey) await engine.setParams(key, p);
  }
  let outFile: Deno.FsFile | null = null;
  let alarmsFile: Deno.FsFile | null = null;
  if (opts.out !== undefined) outFile = await openOut(opts.out, "--out");
  try {
    if (opts.alarms !== undefined) alarmsFile = await openOut(opts.alarms, "--alarms");
    const alarmWriter = alarmsFile === null ? null : new BufferedTextWriter(alarmsFile);
    const writer = new BufferedTextWriter(outFile ?? io.stdout ?? Deno.stdout);
    // Records on the same terminal would tear the bar apart: draw it only when they go elsewhere.
    const progressOn = !opts.quiet &&
      (io.progress ??
        (Deno.stderr.isTerminal() && (outFile !== null || !Deno.stdout.isTerminal())));
    const totalBytes = files.reduce((s, f) => s + f.size, 0);
    const bar = progressOn ? new ProgressBar(totalBytes, stderrWrite) : null;
    const keys = new KeyTable();
    const skipped = new Map<SkipReason, number>();
    const tally = new AlarmTally(
      dim,
      opts.alarm_threshold,
      config.alpha,
      armedFrom,
      alarmWriter,
    );
    let observations = 0;
    let anomalies = 0;
    let blank = 0;
    let warnings = 0;
    let badLabels = 0;
    let bytesDone = 0;
    let stopped = false;
    const builder = new BatchBuilder(opts.batch, dim, { features: nFeatures, timed }, keys);
    const inflight: { scores: Promise<ScoreBatch>; echoes: ReplayEchoes }[] = [];

    const drainOne = async (): Promise<void> => {
      const head = inflight.shift();
      if (head === undefined) return;
      const scores = await head.scores;
      const alarm = tally.step(scores, head.echoes);
      anomalies += formatScores(scores, head.echoes, keys, writer, alarm);
      await alarmWriter?.flushIfFull();
      observations += scores.n;
      // Records are formatted: the score buffers go back to the engine for the next batches.
      engine.release?.(scores);
      await writer.flushIfFull();
    };
    const submit = async (): Promise<void> => {
      columns.flush();
      if (builder.n === 0) return;
      const { batch, echoes } = builder.take();
      inflight.push({ scores: engine.process(batch), echoes });
      // Keep later rejections from surfacing as unhandled while earlier ones are awaited.
      inflight[inflight.length - 1].scores.catch(() => {});
      if (inflight.length >= PIPELINE_DEPTH) await drainOne();
    };
    /** One warning on stderr, up to --max-warnings of them (bad lines included). */
    const warn = (text: string): void => {
      if (warnings < opts.max_warnings) {
        log(text);
      } else if (warnings === opts.max_warnings) {
        log(
          `replay: more warnings (bad lines, labels, columns) not shown (--max-warnings ${opts.max_warnings}); see the summary`,
        );
      }
      warnings++;
    };
    const bad = (file: InputFile, line: number, err: BadInputError): void => {
      skipped.set(err.reason, (skipped.get(err.reason) ?? 0) + 1);
      warn(`${file.path}:${line}: ${err.reason}: ${err.message}`);
      if (opts.strict) stopped = true;
    };
    const columns = new ColumnChecks(dim, initRows, keys, fields, warn);
    /**
     * A new key's start parameters, when they are set as the key appears: the single entry of
     * --params-in (keys from its map were set up front); null for none.
     */
    const startParams = (key: string): StartParams["all"] => {
      const given = params?.byKey.get(key) ?? params?.all ?? null;
      if (opts.freeze && given === null) {
        throw new ReplayUsageError(
          `--freeze: expected --params-in '${opts.params_in}' to hold parameters for key '${key}', found none`,
        );
      }
      return given !== null && !params!.byKey.has(key) ? given : null;
    };

    files: for (const file of files) {
      await using src = await openInput(file);
      let parser: RowParser | null = null;
      for (let chunk = await src.next(); chunk !== null; chunk = await src.next()) {
        const lines = chunk.lines;
        for (let j = 0; j < lines.length; j++) {
          const line = lines[j];
          const lineNo = chunk.first + j;
          if (isBlank(line)) {
            blank++;
            continue;
          }
          if (parser === null) {
            const format = file.format === "auto" ? sniffFormat(line) : file.format;
            if (format === "ndjson") {
              parser = new NdjsonParser(dim, fields);
            } else {
              const samples: string[] = [];
              for (let s = j + 1; s < lines.length && samples.length < CSV_SAMPLE_LINES; s++) {
                if (!isBlank(lines[s])) samples.push(lines[s]);
              }
              try {
                parser = new CsvParser(line, samples, fields, dim);
              } catch (e) {
                if (!(e instanceof BadInputError)) throw e;
                bad(file, lineNo, e);
                if (stopped) break files;
                continue files;
              }
              continue;
            }
          }
          let row: ParsedRow;
          try {
            row = parser.parse(line);
          } catch (e) {
            if (!(e instanceof BadInputError)) throw e;
            bad(file, lineNo, e);
            if (stopped) break files;
            continue;
          }
          const problem = conditional ? contextProblem(row, nFeatures, timed) : null;
          if (problem !== null) {
            bad(file, lineNo, problem);
            if (stopped) break files;
            continue;
          }
          const key = row.key ?? file.key;
          let id = keys.id(key);
          if (id < 0) {
            // Awaited only when there is something to set: a promise per new key costs time
            // and memory with many keys (issue 13). The engine handles calls in order, so the
            // key's first batch sees its parameters.
            const given = startParams(key);
            if (given !== null) await engine.setParams(key, given);
            id = keys.add(key, columns.alloc());
          }
          if (row.labelProblem !== undefined) {
            badLabels++;
            warn(`${file.path}:${lineNo}: bad_label: ${row.labelProblem}`);
          }
          const seen = keys.countRow(id);
          const learn = !opts.freeze &&
            (opts.train_rows === undefined || seen < opts.train_rows);
          if (learn) columns.add(id, seen, row.values, parser);
          builder.add(id, key, row.values, row.t, row.label, learn, row.features);
          if (builder.full) {
            await submit();
            bar?.update(bytesDone + src.bytesRead, observations);
          }
        }
      }
      bytesDone += src.bytesRead;
    }
    // Keys with fewer training rows than a head's initialisation are checked on what they had.
    if (!stopped) columns.finish();
    await submit();
    while (inflight.length > 0) await drainOne();
    await writer.flush();
    tally.closeOpen((key) => keys.id(key));
    await alarmWriter?.flush();
    bar?.finish();

    if (opts.params_out !== undefined) {
      const doc = paramsOut(await engine.snapshot());
      await writeJson(opts.params_out, "--params-out", doc);
    }
    const seconds = (performance.now() - started) / 1000;
    const summary = buildSummary(opts, engine, {
      files: files.length,
      dim,
      observations,
      anomalies,
      keys: keys.size,
      skipped,
      blank,
      badLabels,
      degenerate: columns.degenerate,
      stopped,
      seconds,
    }, tally);
    if (opts.summary !== undefined) await writeJson(opts.summary, "--summary", summary);
    if (!opts.quiet) log(summaryLine(summary));
    return summary;
  } finally {
    outFile?.close();
    alarmsFile?.close();
  }
}
