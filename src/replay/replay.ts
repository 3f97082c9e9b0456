/**
 * Offline back-testing: reads recorded NDJSON/CSV streams, sends their rows in input order and in
 * mini-batches to the scoring engine (scored with the parameters from before each batch, then
 * learned), and writes one score record per observation.
 *
 * The engine runs where `createEngine`'s `thread: "auto"` puts it: in this thread on cpu (a batch
 * costs less than a thread hop), in the compute thread on webgpu, where up to
 * {@link PIPELINE_DEPTH} batches are in flight while this thread reads, parses and formats.
 *
 * @module
 */
import { resolveHeadConfig } from "../config/head_config.ts";
import type { HeadConfig, HeadConfigInput } from "../config/head_config.ts";
import { REPLAY_SETTINGS, ReplayInput, ReplaySummary } from "../../schemas/replay.ts";
import type {
  DegenerateEntry,
  ReplayOptions,
  ReplayOptionsInput,
  SkipReason,
} from "../../schemas/replay.ts";
import { flagValuesOf, resolveSettings } from "../config/settings.ts";
import type { ScoringEngine } from "../engine/engine.ts";
import { StandInEngine } from "../engine/stand_in.ts";
import type { ObservationBatch, ScoreBatch } from "../engine/types.ts";
import { BufferedTextWriter } from "../io/buffered_writer.ts";
import type { ByteSink } from "../io/buffered_writer.ts";
import { BadInputError, ReplayUsageError } from "../io/errors.ts";
import { type InputFile, listInputs, sniffFormat } from "../io/input_files.ts";
import { LineSource } from "../io/line_source.ts";
import { ColumnMoments, degenerateColumns, describeDegenerate } from "./degenerate_columns.ts";
import { Confusion } from "./metrics.ts";
import { EpisodeCounter } from "./episode_metrics.ts";
import { AlarmBank, type AlarmEpisode, alarmReference } from "../model/alarm.ts";
import { paramsDim, paramsOut, readParamsFile } from "./params_io.ts";
import type { StartParams } from "./params_io.ts";
import { ProgressBar } from "./progress.ts";
import {
  CSV_SAMPLE_LINES,
  CsvParser,
  type FieldSpec,
  ndjsonDimOf,
  NdjsonParser,
  type ParsedRow,
  type RowParser,
} from "../io/row_parser.ts";
import { formatScores, type RowEchoes, timeJson } from "../wire/score_format.ts";
import { timeMs } from "../model/time_features.ts";

/** Batches handed to the engine before the oldest result is awaited. */
export const PIPELINE_DEPTH = 4;
/** Dimension when neither `--dim`, `--columns` nor a good row says. */
const FALLBACK_DIM = 3;
/** Non-blank lines per file looked at to infer the dimension. */
const INFER_LINES = 1000;

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
 * Validates replay options; throws {@link ReplayUsageError} naming the flag, the value given and
 * what was expected.
 */
export function resolveReplayOptions(input: ReplayOptionsInput): ReplayOptions {
  const errors: string[] = [];
  const file = ReplayInput.safeParse(input.input);
  if (!file.success) {
    errors.push(
      `<file|dir>: expected a file or directory path, found ${
        input.input === undefined ? "nothing" : JSON.stringify(input.input)
      }`,
    );
  }
  const r = resolveSettings(REPLAY_SETTINGS, flagValuesOf(REPLAY_SETTINGS, input));
  errors.push(...r.errors);
  if (errors.length > 0) throw new ReplayUsageError(errors.join("\n"));
  const o: ReplayOptions = { ...r.values, input: file.data ?? input.input };
  if (o.freeze && o.train_rows !== undefined) {
    throw new ReplayUsageError(
      "--freeze and --train-rows: expected at most one of them (--freeze learns nothing)",
    );
  }
  if (o.dim !== undefined && o.columns !== undefined && o.columns.length !== o.dim) {
    throw new ReplayUsageError(
      `--dim: expected ${o.columns.length} to match --columns ${
        o.columns.join(",")
      }, found ${o.dim}`,
    );
  }
  return o;
}

/**
 * Replays the input through the engine and writes one score record per observation.
 * Resolves to the run's summary (`stopped` is true when `--strict` met a bad line). Throws
 * {@link ReplayUsageError} for what the user asked that cannot be done.
 */
export async function replay(
  options: ReplayOptionsInput,
  io: ReplayIO = {},
): Promise<ReplaySummary> {
  const opts = resolveReplayOptions(options);
  if (opts.freeze && opts.params_in === undefined) {
    throw new ReplayUsageError(
      "--freeze: expected --params-in with parameters for the keys (frozen heads cannot learn any)",
    );
  }
  const log = io.stderr ?? _stderrLine;
  const files = await listInputs(opts.input);
  const params = opts.params_in === undefined ? null : await readParamsFile(opts.params_in);
  const fields = fieldSpec(opts);
  const dim = await resolveDim(opts, files, fields, params);
  const { optimizer, horizon, change_threshold, lr, alpha, warmup, diag, backend } = opts;
  const headInput: HeadConfigInput = {
    dim,
    optimizer,
    horizon,
    change_threshold,
    lr,
    alpha,
    warmup,
    diag,
    backend,
  };
  Object.assign(headInput, conditionalInput(opts));
  const config = resolveHeadConfig(headInput);
  const make = io.createEngine ?? _defaultEngine;
  const engine = await make(config, log);
  try {
    if (!opts.quiet) log(`replay: ${engine.backendReason || `backend ${engine.backend}`}`);
    return await _run(opts, io, log, files, fields, dim, params, engine, config);
  } finally {
    await engine.close();
  }
}

/**
 * The speed floor of {@link replay}: the same reading, parsing and writing of one record per
 * observation, with no model: every row is scored against the standard normal (loc 0, identity
 * scale), so the records have the same shape and about the same text as replay's.
 */
export async function replayFloor(
  options: ReplayOptionsInput,
  io: ReplayIO = {},
): Promise<ReplaySummary> {
  return await replay({ ...options, params_in: undefined, params_out: undefined, freeze: false }, {
    ...io,
    createEngine: (config) => Promise.resolve(new StandInEngine(config, "standard_normal")),
  });
}

async function _defaultEngine(
  config: HeadConfig,
  log: (line: string) => void,
): Promise<ReplayEngine> {
  const { createEngine } = await import("../engine/thread/compute_thread.ts");
  return await createEngine(config, { thread: "auto", log });
}

const _encoder = new TextEncoder();
function _stderrLine(line: string): void {
  const bytes = _encoder.encode(line + "\n");
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

/**
 * The conditional head's part of the head configuration (`--head conditional`, `--hidden`,
 * `--feature-columns` or `--features`, `--time-features`); throws {@link ReplayUsageError} for
 * context flags without the conditional head, or the conditional head without context.
 */
function conditionalInput(o: ReplayOptions): HeadConfigInput {
  const features = o.feature_columns?.length ?? o.features ?? 0;
  const periods = o.time_features ?? [];
  if (o.head !== "conditional") {
    const given = [
      o.feature_columns && "--feature-columns",
      o.features && "--features",
      o.time_features && "--time-features",
      o.hidden && "--hidden",
    ].filter((f) => f);
    if (given.length > 0) {
      throw new ReplayUsageError(
        `${given[0]}: expected --head conditional, found the default head`,
      );
    }
    return {};
  }
  if (features === 0 && periods.length === 0) {
    throw new ReplayUsageError(
      "--head conditional: expected context (--feature-columns, --features or --time-features), found none",
    );
  }
  if (o.feature_columns !== undefined && o.features !== undefined && o.features !== features) {
    throw new ReplayUsageError(
      `--features: expected ${features} to match --feature-columns, found ${o.features}`,
    );
  }
  const input: HeadConfigInput = { head: "conditional", features, time_features: [...periods] };
  if (o.hidden !== undefined) input.hidden = o.hidden;
  return input;
}

function fieldSpec(o: ReplayOptions): FieldSpec {
  return {
    features: o.feature_columns,
    columns: o.columns,
    time: o.time_column,
    key: o.key_column,
    label: o.label_column,
    delimiter: o.delimiter,
  };
}

function isBlank(line: string): boolean {
  return line.length === 0 || (line.charCodeAt(0) <= 32 && line.trim() === "");
}

/** `--dim`, else the number of `--columns`, else the first good row, else the params, else 3. */
async function resolveDim(
  o: ReplayOptions,
  files: readonly InputFile[],
  fields: FieldSpec,
  params: StartParams | null,
): Promise<number> {
  const pDim = params === null ? undefined : paramsDim(params);
  const dim = o.dim ?? o.columns?.length ?? (await inferDim(files, fields)) ?? pDim ??
    FALLBACK_DIM;
  if (pDim !== undefined && pDim !== dim) {
    throw new ReplayUsageError(
      `--params-in '${o.params_in}': expected parameters of dimension ${dim} (the data's), found ${pDim}`,
    );
  }
  return dim;
}

/** Dimension of the first good row of the first file that has one. */
async function inferDim(
  files: readonly InputFile[],
  fields: FieldSpec,
): Promise<number | undefined> {
  for (const file of files) {
    await using src = await _open(file);
    let format = file.format;
    let seen = 0;
    let header: string | null = null;
    const samples: string[] = [];
    for (let chunk = await src.next(); chunk !== null; chunk = await src.next()) {
      for (const line of chunk.lines) {
        if (isBlank(line)) continue;
        if (format === "auto") format = sniffFormat(line);
        if (format === "ndjson") {
          const d = ndjsonDimOf(line, fields);
          if (d !== undefined) return d;
        } else if (header === null) {
          header = line;
        } else {
          samples.push(line);
          if (samples.length >= CSV_SAMPLE_LINES) break;
        }
        if (++seen >= INFER_LINES) break;
      }
      if (seen >= INFER_LINES || samples.length >= CSV_SAMPLE_LINES) break;
    }
    if (header !== null && samples.length > 0) {
      try {
        return new CsvParser(header, samples, fields).dim;
      } catch (e) {
        if (!(e instanceof BadInputError)) throw e;
      }
    }
  }
  return undefined;
}

async function _open(file: InputFile): Promise<LineSource> {
  try {
    return await LineSource.open(file.path);
  } catch (cause) {
    throw new ReplayUsageError(`input '${file.path}': cannot be opened (${String(cause)})`, {
      cause,
    });
  }
}

/** Rows collected for one engine call, with what their records echo. */
class BatchBuilder {
  n = 0;
  #cap: number;
  #dim: number;
  #values!: Float64Array;
  #keyIndex!: Uint32Array;
  #learn!: Uint8Array;
  #keys: string[] = [];
  #keyPos = new Map<string, number>();
  #keyJson: string[] = [];
  #tJson: string[] = [];
  #label!: Int8Array;
  /** Conditional head: features per row (0: none) and whether rows carry their time. */
  readonly #F: number;
  readonly #timed: boolean;
  #features!: Float64Array;
  #timeMs!: Float64Array;

  constructor(cap: number, dim: number, context: { features: number; timed: boolean }) {
    this.#cap = cap;
    this.#dim = dim;
    this.#F = context.features;
    this.#timed = context.timed;
    this.#reset();
  }

  get full(): boolean {
    return this.n >= this.#cap;
  }

  add(
    key: string,
    keyJson: string,
    values: ArrayLike<number>,
    t: number | string | undefined,
    label: 0 | 1 | undefined,
    learn: boolean,
    features?: ArrayLike<number>,
  ): void {
    const i = this.n++;
    const F = this.#F;
    if (F > 0 && features !== undefined) {
      for (let j = 0; j < F; j++) this.#features[i * F + j] = features[j];
    }
    if (this.#timed) this.#timeMs[i] = timeMs(t);
    let k = this.#keyPos.get(key);
    if (k === undefined) {
      k = this.#keys.length;
      this.#keys.push(key);
      this.#keyPos.set(key, k);
    }
    this.#keyIndex[i] = k;
    const d = this.#dim;
    for (let j = 0; j < d; j++) this.#values[i * d + j] = values[j];
    this.#learn[i] = learn ? 1 : 0;
    this.#keyJson.push(keyJson);
    this.#tJson.push(timeJson(t));
    this.#label[i] = label ?? -1;
  }

  /** The batch so far (fresh arrays each time: the engine may take ownership of them). */
  take(): { batch: ObservationBatch; echoes: RowEchoes } {
    const n = this.n;
    const batch: ObservationBatch = {
      dim: this.#dim,
      n,
      values: n === this.#cap ? this.#values : this.#values.slice(0, n * this.#dim),
      keyIndex: n === this.#cap ? this.#keyIndex : this.#keyIndex.slice(0, n),
      keys: this.#keys,
      learn: n === this.#cap ? this.#learn : this.#learn.slice(0, n),
      ...(this.#F > 0
        ? { features: this.#features.slice(0, n * this.#F), featureDim: this.#F }
        : {}),
      ...(this.#timed ? { timeMs: this.#timeMs.slice(0, n) } : {}),
    };
    const echoes: RowEchoes = { keyJson: this.#keyJson, tJson: this.#tJson, label: this.#label };
    this.#reset();
    return { batch, echoes };
  }

  #reset(): void {
    this.n = 0;
    this.#values = new Float64Array(this.#cap * this.#dim);
    this.#keyIndex = new Uint32Array(this.#cap);
    this.#learn = new Uint8Array(this.#cap);
    this.#keys = [];
    this.#keyPos = new Map();
    this.#keyJson = [];
    this.#tJson = [];
    this.#label = new Int8Array(this.#cap);
    if (this.#F > 0) this.#features = new Float64Array(this.#cap * this.#F);
    if (this.#timed) this.#timeMs = new Float64Array(this.#cap);
  }
}

interface KeyInfo {
  readonly json: string;
  /** Rows of this key read so far. */
  rows: number;
  /** Moments of its first training rows, until they are checked for degenerate columns. */
  moments: ColumnMoments | null;
  /** The parser of its latest row (names its value columns). */
  parser: RowParser | null;
}

async function _run(
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
  const openOut = async (path: string, flag: string): Promise<Deno.FsFile> => {
    try {
      return await Deno.open(path, { write: true, create: true, truncate: true });
    } catch (cause) {
      throw new ReplayUsageError(`${flag} '${path}': cannot be written (${String(cause)})`, {
        cause,
      });
    }
  };
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
    const bar = progressOn
      ? new ProgressBar(totalBytes, (text) => {
        Deno.stderr.writeSync(_encoder.encode(text));
      })
      : null;
    const keys = new Map<string, KeyInfo>();
    const skipped = new Map<SkipReason, number>();
    const confusion = new Confusion();
    const alarmConfusion = new Confusion();
    const anomalyEpisodes = new EpisodeCounter();
    const alarmEpisodes = new EpisodeCounter();
    // Keyed by the key's JSON text (what the rows carry); time values kept as their JSON text.
    const alarmBank = new AlarmBank<string>(
      dim,
      opts.alarm_threshold,
      alarmReference(config.alpha),
    );
    let episodes = 0;
    const writeEpisode = (e: AlarmEpisode<string>, open: boolean): void => {
      episodes++;
      if (alarmWriter === null) return;
      const ep = {
        ...e,
        key: JSON.parse(e.key),
        start_t: e.start_t === "" ? null : JSON.parse(e.start_t),
        end_t: e.end_t === "" ? null : JSON.parse(e.end_t),
        ...(open ? { open: true } : {}),
      };
      alarmWriter.write(JSON.stringify(ep) + "\n");
    };
    let observations = 0;
    let anomalies = 0;
    let blank = 0;
    let warnings = 0;
    let badLabels = 0;
    const degenerate: DegenerateEntry[] = [];
    let bytesDone = 0;
    let stopped = false;
    const builder = new BatchBuilder(opts.batch, dim, { features: nFeatures, timed });
    const inflight: { scores: Promise<ScoreBatch>; echoes: RowEchoes }[] = [];

    const drainOne = async (): Promise<void> => {
      const head = inflight.shift();
      if (head === undefined) return;
      const scores = await head.scores;
      const { keyJson, tJson, label: labels } = head.echoes;
      const d = scores.dim;
      const alarm = new Uint8Array(scores.n);
      for (let i = 0; i < scores.n; i++) {
        const seq = scores.seq[i];
        const r = alarmBank.step(keyJson[i], {
          seq,
          t: tJson[i],
          pValue: scores.pValue[i],
          contrib: scores.contrib.subarray(i * d, i * d + d),
          armed: seq >= armedFrom,
        });
        alarm[i] = r.alarm ? 1 : 0;
        if (r.closed !== null) writeEpisode(r.closed, false);
        const l = labels[i];
        if (l >= 0) {
          confusion.add(l as 0 | 1, scores.anomaly[i] === 1);
          alarmConfusion.add(l as 0 | 1, r.alarm);
          anomalyEpisodes.add(keyJson[i], l as 0 | 1, scores.anomaly[i] === 1);
          alarmEpisodes.add(keyJson[i], l as 0 | 1, r.alarm);
        }
      }
      anomalies += formatScores(scores, head.echoes, writer, alarm);
      await alarmWriter?.flushIfFull();
      observations += scores.n;
      // Records are formatted: the score buffers go back to the engine for the next batches.
      engine.release?.(scores);
      await writer.flushIfFull();
    };
    const submit = async (): Promise<void> => {
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
    /** Checks a key's training rows so far for constant and collinear columns (once per key). */
    const checkColumns = (key: string, info: KeyInfo): void => {
      const m = info.moments;
      if (m === null) return;
      info.moments = null;
      const names = info.parser?.valueNames ?? [];
      const raw = info.parser instanceof CsvParser ? info.parser.valueColumns : fields.columns;
      for (const c of degenerateColumns(m)) {
        degenerate.push({
          key,
          index: c.index,
          column: raw?.[c.index] ?? null,
          kind: c.kind,
          with: [...c.with],
          rows: m.count,
        });
        warn(describeDegenerate(key, c, names, m.count));
      }
    };
    const newKey = async (key: string): Promise<KeyInfo> => {
      const given = params?.byKey.get(key) ?? params?.all ?? null;
      if (opts.freeze && given === null) {
        throw new ReplayUsageError(
          `--freeze: expected --params-in '${opts.params_in}' to hold parameters for key '${key}', found none`,
        );
      }
      // Keys from the map were set up front; the single entry is set as each key appears
      // (the engine handles calls in order, so the key's first batch sees it).
      if (given !== null && !params!.byKey.has(key)) await engine.setParams(key, given);
      const info: KeyInfo = {
        json: JSON.stringify(key),
        rows: 0,
        moments: new ColumnMoments(dim),
        parser: null,
      };
      keys.set(key, info);
      return info;
    };

    files: for (const file of files) {
      await using src = await _open(file);
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
          const info = keys.get(key) ?? (await newKey(key));
          if (row.labelProblem !== undefined) {
            badLabels++;
            warn(`${file.path}:${lineNo}: bad_label: ${row.labelProblem}`);
          }
          const learn = !opts.freeze &&
            (opts.train_rows === undefined || info.rows < opts.train_rows);
          info.rows++;
          if (learn && info.moments !== null) {
            info.parser = parser;
            info.moments.add(row.values);
            if (info.moments.count >= initRows) checkColumns(key, info);
          }
          builder.add(key, info.json, row.values, row.t, row.label, learn, row.features);
          if (builder.full) {
            await submit();
            bar?.update(bytesDone + src.bytesRead, observations);
          }
        }
      }
      bytesDone += src.bytesRead;
    }
    // Keys with fewer training rows than a head's initialisation are checked on what they had.
    if (!stopped) { for (const [key, info] of keys) checkColumns(key, info); }
    await submit();
    while (inflight.length > 0) await drainOne();
    await writer.flush();
    for (const e of alarmBank.openEpisodes()) writeEpisode(e, true);
    await alarmWriter?.flush();
    bar?.finish();

    if (opts.params_out !== undefined) {
      const doc = paramsOut(await engine.snapshot());
      await _writeJson(opts.params_out, "--params-out", doc);
    }
    const seconds = (performance.now() - started) / 1000;
    let skippedTotal = 0;
    for (const c of skipped.values()) skippedTotal += c;
    const summary: ReplaySummary = ReplaySummary.parse({
      input: opts.input,
      files: files.length,
      dim,
      observations,
      anomalies,
      keys: keys.size,
      skipped: skippedTotal,
      skipped_by_reason: Object.fromEntries([...skipped].sort((a, b) => (a[0] < b[0] ? -1 : 1))),
      blank_lines: blank,
      bad_labels: badLabels,
      degenerate_columns: degenerate,
      stopped,
      seconds,
      obs_per_s: seconds > 0 ? observations / seconds : 0,
      backend: engine.backend,
      backend_reason: engine.backendReason,
      seed: opts.seed ?? null,
      batch: opts.batch,
      freeze: opts.freeze,
      train_rows: opts.train_rows ?? null,
      metrics: confusion.labelled > 0 ? confusion.metrics() : null,
      alarm_threshold: opts.alarm_threshold,
      alarm_episodes: episodes,
      alarm_metrics: alarmConfusion.labelled > 0 ? alarmConfusion.metrics() : null,
      episode_metrics: confusion.labelled > 0
        ? { anomaly: anomalyEpisodes.metrics(), alarm: alarmEpisodes.metrics() }
        : null,
    });
    if (opts.summary !== undefined) await _writeJson(opts.summary, "--summary", summary);
    if (!opts.quiet) log(summaryLine(summary));
    return summary;
  } finally {
    outFile?.close();
    alarmsFile?.close();
  }
}

/** Why a row cannot feed the conditional head (features of the wrong count, no time), or null. */
function contextProblem(row: ParsedRow, features: number, timed: boolean): BadInputError | null {
  if (features > 0) {
    const f = row.features;
    if (f === undefined || f.length !== features) {
      return new BadInputError(
        "features",
        `expected ${features} features, found ${f === undefined ? "none" : f.length}`,
      );
    }
  }
  if (timed && !Number.isFinite(timeMs(row.t))) {
    return new BadInputError(
      "bad_time",
      `expected a time (epoch number or ISO-8601) for --time-features, found ${
        row.t === undefined ? "none" : JSON.stringify(row.t)
      }`,
    );
  }
  return null;
}

async function _writeJson(path: string, flag: string, value: unknown): Promise<void> {
  try {
    await Deno.writeTextFile(path, JSON.stringify(value, null, 2) + "\n");
  } catch (cause) {
    throw new ReplayUsageError(`${flag} '${path}': cannot be written (${String(cause)})`, {
      cause,
    });
  }
}

/** The one-line summary printed on stderr. */
export function summaryLine(s: ReplaySummary): string {
  const reasons = Object.entries(s.skipped_by_reason).map(([r, c]) => `${r} ${c}`).join(", ");
  let line = `replay: ${s.observations} observations, ${s.keys} keys, ${s.anomalies} anomalies, ` +
    `${s.skipped} skipped${reasons ? ` (${reasons})` : ""}, ` +
    `${s.bad_labels > 0 ? `${s.bad_labels} unreadable labels (scored unlabelled), ` : ""}` +
    `${
      s.degenerate_columns.length > 0 ? `${s.degenerate_columns.length} degenerate columns, ` : ""
    }` +
    `${s.seconds.toFixed(2)} s, ` +
    `${Math.round(s.obs_per_s)} obs/s, backend ${s.backend}`;
  if (s.metrics !== null) {
    const m = s.metrics;
    const f = (x: number | null) => (x === null ? "n/a" : x.toFixed(4));
    line += `; TP ${m.tp} FP ${m.fp} FN ${m.fn} TN ${m.tn} F1 ${f(m.f1)} FAR ${f(m.far)} ` +
      `MAR ${f(m.mar)}`;
  }
  line += `; ${s.alarm_episodes} alarm episodes`;
  if (s.alarm_metrics !== null && s.episode_metrics !== null) {
    const m = s.alarm_metrics;
    const e = s.episode_metrics.alarm;
    const f = (x: number | null) => (x === null ? "n/a" : x.toFixed(4));
    line += ` (alarm F1 ${f(m.f1)} FAR ${f(m.far)} MAR ${f(m.mar)}; segments detected ` +
      `${e.detected}/${e.segments}, false episodes ${f(e.false_per_10k)} per 10k)`;
  }
  if (s.stopped) line += "; stopped at the first bad line (--strict)";
  return line;
}
