/**
 * Live worker pieces without a server: KV key encoding, message decoding, subject coverage,
 * configuration errors, and the learning loop's delivery rules with in-memory I/O.
 */
import assert from "node:assert/strict";
import type { Consumer, JsMsg } from "@nats-io/jetstream";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import { ConfigError, parseLiveFlags, resolveLiveConfig } from "../src/config/live_config.ts";
import type { Checkpoint, ParamsMessage } from "../schemas/messages.ts";
import type { ScoringEngine } from "../src/engine/engine.ts";
import { EngineError } from "../src/engine/errors.ts";
import { decodeMessage, encodeF32 } from "../src/wire/decode.ts";
import { LiveLoop } from "../src/live/loop.ts";
import type {
  AlarmOut,
  CheckpointStore,
  DeadLetterOut,
  InputMessage,
  MessageSource,
  OutputSink,
  RecordOut,
  ScoreOut,
} from "../src/live/ports.ts";
import { LiveMetrics } from "../src/live/metrics.ts";
import { JetStreamSource } from "../src/nats/pull_source.ts";
import { decodeKvKey, encodeKvKey } from "../src/nats/kv_key.ts";
import { filterCovers } from "../src/nats/topology.ts";
import type { HeadSnapshot, HeadState, ObservationBatch, ScoreBatch } from "../src/engine/types.ts";
import { waitFor } from "./helpers/nats_server.ts";

Deno.test("KV key encoding", async (t) => {
  await t.step("keeps letters, digits, '-' and '_' and escapes everything else as =XX", () => {
    assert.equal(encodeKvKey("pump-7_A"), "pump-7_A");
    assert.equal(encodeKvKey("site.a"), "site=2Ea");
    assert.equal(encodeKvKey("a=b/c"), "a=3Db=2Fc");
    assert.equal(encodeKvKey("é"), "=C3=A9");
  });
  await t.step("round-trips and only produces KV-legal single tokens", () => {
    for (const k of ["pump-7", "site.a.b", "x=y", "ü mlaut*>", ".lead", "trail."]) {
      const e = encodeKvKey(k);
      assert.match(e, /^[-_=A-Za-z0-9]+$/);
      assert.equal(decodeKvKey(e), k);
    }
  });
});

Deno.test("subject filter coverage", () => {
  assert.ok(filterCovers("telemetry.obs.>", "telemetry.obs.>"));
  assert.ok(filterCovers("telemetry.>", "telemetry.obs.>"));
  assert.ok(filterCovers(">", "telemetry.obs.>"));
  assert.ok(!filterCovers("telemetry.obs.*", "telemetry.obs.>"));
  assert.ok(!filterCovers("telemetry.obs.a", "telemetry.obs.>"));
  assert.ok(!filterCovers("other.>", "telemetry.obs.>"));
});

Deno.test("decoding input messages", async (t) => {
  const s = { dim: 3, obsPrefix: "telemetry.obs.", maxBytes: 200 };
  const msg = (
    data: string | Uint8Array,
    subject = "telemetry.obs.pump-7",
    contentType?: string,
  ) => ({
    subject,
    data: typeof data === "string" ? new TextEncoder().encode(data) : data,
    contentType,
  });
  await t.step("takes the model key from the subject remainder", () => {
    const d = decodeMessage(msg('{"v":[1,2,3],"t":5}', "telemetry.obs.site.pump-7"), s);
    assert.ok(d.ok);
    assert.equal(d.key, "site.pump-7");
    assert.deepEqual(Array.from(d.rows[0].values), [1, 2, 3]);
    assert.equal(d.rows[0].t, 5);
    assert.equal(d.multi, false);
  });
  await t.step(
    'reads the optional fields of {"v":[...]} and refuses bad ones as shape errors',
    () => {
      const ok = decodeMessage(
        msg('{"v":[1,2,3],"t":"12:00","key":"x","label":true,"extra":[1]}'),
        s,
      );
      assert.ok(ok.ok);
      assert.deepEqual(ok.rows[0], { values: [1, 2, 3], t: "12:00", label: 1 });
      const zero = decodeMessage(msg('{"v":[1,2,3],"label":false}'), s);
      assert.ok(zero.ok && zero.rows[0].label === 0);
      for (
        const bad of [
          '{"v":[1,2,3],"t":1e999}',
          '{"v":[1,2,3],"t":null}',
          '{"v":[1,2,3],"key":""}',
          '{"v":[1,2,3],"label":2}',
          '{"v":[1,"2",3]}',
          '{"v":[]}',
          '{"v":{"0":1}}',
        ]
      ) {
        const d = decodeMessage(msg(bad), s);
        assert.ok(!d.ok && d.reason === "shape", `${bad}: ${JSON.stringify(d)}`);
      }
      const inf = decodeMessage(msg('{"v":[1,1e999,3]}'), s);
      assert.ok(!inf.ok && inf.reason === "non_finite");
      const dim = decodeMessage(msg('{"v":[1,2]}'), s);
      assert.ok(!dim.ok && dim.reason === "dimension");
    },
  );
  await t.step("accepts xyz objects, bare arrays and arrays of observations", () => {
    const a = decodeMessage(msg('{"x":1,"y":2,"z":3}'), s);
    const b = decodeMessage(msg("[1,2,3]"), s);
    const c = decodeMessage(msg('[{"v":[1,2,3]},[4,5,6]]'), s);
    assert.ok(a.ok && b.ok && c.ok);
    assert.equal(c.rows.length, 2);
    assert.equal(c.multi, true);
    assert.deepEqual(Array.from(c.rows[1].values), [4, 5, 6]);
  });
  await t.step("decodes little-endian float32 blocks", () => {
    const data = encodeF32([[1.5, -2, 3], [4, 5, 6.25]], 3);
    const d = decodeMessage(msg(data, undefined, "application/vnd.mvn.f32"), s);
    assert.ok(d.ok);
    assert.deepEqual(d.rows.map((r) => Array.from(r.values)), [[1.5, -2, 3], [4, 5, 6.25]]);
  });
  await t.step("names the reason of every bad kind", () => {
    const reason = (m: ReturnType<typeof msg>) => {
      const d = decodeMessage(m, s);
      return d.ok ? "ok" : d.reason;
    };
    assert.equal(reason(msg("not json")), "malformed");
    assert.equal(reason(msg('{"w":1}')), "shape");
    assert.equal(reason(msg("[]")), "shape");
    assert.equal(reason(msg('{"v":[1,2]}')), "dimension");
    assert.equal(reason(msg('{"v":[1,2,1e999]}')), "non_finite");
    // Finite however large: scored (saturated when its m² overflows), not dead-lettered.
    assert.ok(decodeMessage(msg('{"v":[1,-1e300,3]}'), s).ok);
    assert.equal(reason(msg(`{"v":[1,2,3],"pad":"${"x".repeat(300)}"}`)), "oversize");
    assert.equal(
      reason(msg(new Uint8Array(10), undefined, "application/vnd.mvn.f32")),
      "f32_length",
    );
    assert.equal(
      reason(msg(encodeF32([[1, NaN, 3]], 3), undefined, "application/vnd.mvn.f32")),
      "non_finite",
    );
  });
  await t.step("sends a whole array to the DLQ when one row is bad, naming the row", () => {
    const d = decodeMessage(msg('[{"v":[1,2,3]},{"v":[1,2]}]'), s);
    assert.ok(!d.ok);
    assert.equal(d.reason, "dimension");
    assert.match(d.detail, /row 1/);
  });
});

Deno.test("live configuration", async (t) => {
  await t.step("defaults match the documented ones", () => {
    const c = resolveLiveConfig(parseLiveFlags([]), {});
    assert.equal(c.batch, 256);
    assert.equal(c.maxWaitMs, 20);
    assert.equal(c.prefix, "telemetry");
    assert.equal(c.paramsEveryMs, 1000);
    assert.equal(c.nats.url, undefined);
    assert.equal(c.head.dim, 3);
    assert.equal(c.checkpointEveryMs, 100);
    assert.equal(c.engineThread, "auto");
    assert.equal(c.scoreMessages, "row");
    assert.equal(c.duplicateWindowS, 1800);
  });
  await t.step("--duplicate-window-s must be at least twice the ack wait", () => {
    assert.equal(
      resolveLiveConfig(parseLiveFlags(["--duplicate-window-s", "60"]), {}).duplicateWindowS,
      60,
    );
    assert.equal(
      resolveLiveConfig(parseLiveFlags([]), { MVN_DUPLICATE_WINDOW_S: "300" }).duplicateWindowS,
      300,
    );
    assert.throws(
      () => resolveLiveConfig(parseLiveFlags(["--duplicate-window-s", "59"]), {}),
      (e: unknown) =>
        e instanceof ConfigError &&
        /at least twice --ack-wait-ms \(30 s\), found 59/.test(e.message),
    );
    assert.throws(
      () => resolveLiveConfig(parseLiveFlags(["--duplicate-window-s", "1.5"]), {}),
      (e: unknown) => e instanceof ConfigError && /--duplicate-window-s="1.5"/.test(e.message),
    );
  });
  await t.step("--score-messages takes row or message (flag or MVN_SCORE_MESSAGES)", () => {
    assert.equal(
      resolveLiveConfig(parseLiveFlags(["--score-messages", "message"]), {}).scoreMessages,
      "message",
    );
    assert.equal(
      resolveLiveConfig(parseLiveFlags([]), { MVN_SCORE_MESSAGES: "message" }).scoreMessages,
      "message",
    );
    assert.throws(
      () => resolveLiveConfig(parseLiveFlags(["--score-messages", "batch"]), {}),
      (e: unknown) => e instanceof ConfigError && /--score-messages="batch"/.test(e.message),
    );
  });
  await t.step(
    "--engine-thread takes auto, thread (or its old name worker) or main (flag or MVN_ENGINE_THREAD)",
    () => {
      assert.equal(
        resolveLiveConfig(parseLiveFlags(["--engine-thread", "worker"]), {}).engineThread,
        "thread",
      );
      assert.equal(
        resolveLiveConfig(parseLiveFlags([]), { MVN_ENGINE_THREAD: "main" }).engineThread,
        "main",
      );
      assert.throws(
        () => resolveLiveConfig(parseLiveFlags(["--engine-thread", "gpu"]), {}),
        (e: unknown) => e instanceof ConfigError && /--engine-thread="gpu"/.test(e.message),
      );
    },
  );
  await t.step("flags win over environment variables", () => {
    const c = resolveLiveConfig(parseLiveFlags(["--nats-url", "ws://127.0.0.1:1"]), {
      NATS_URL: "nats://127.0.0.1:2",
    });
    assert.equal(c.nats.url, "ws://127.0.0.1:1");
  });
  await t.step("a bad value names the setting, the value and what was expected", () => {
    assert.throws(
      () => resolveLiveConfig(parseLiveFlags([]), { NATS_URL: "http://x" }),
      (e: unknown) =>
        e instanceof ConfigError && /NATS_URL="http:\/\/x"/.test(e.message) &&
        /expected a nats:\/\//.test(e.message),
    );
    assert.throws(
      () => resolveLiveConfig(parseLiveFlags(["--batch", "0"]), {}),
      (e: unknown) => e instanceof ConfigError && /--batch="0"/.test(e.message),
    );
    assert.throws(
      () => resolveLiveConfig(parseLiveFlags(["--dim", "99"]), {}),
      (e: unknown) => e instanceof ConfigError && /--dim="99"/.test(e.message),
    );
    assert.throws(
      () => resolveLiveConfig(parseLiveFlags([]), { NATS_USER: "u" }),
      (e: unknown) => e instanceof ConfigError && /NATS_PASSWORD/.test(e.message),
    );
  });
  await t.step("an unknown flag is a configuration error", () => {
    assert.throws(() => parseLiveFlags(["--nope"]), ConfigError);
  });
});

// ---------------------------------------------------------------------------------------------
// In-memory I/O for the loop.

/** Counts observations per key (only `counted` rows) and scores every row with m2 = Σ x². */
class CountingEngine implements ScoringEngine {
  readonly backend = "cpu" as const;
  readonly backendReason = "fake";
  readonly config = resolveHeadConfig({ dim: 2, backend: "cpu" });
  readonly obs = new Map<string, number>();
  readonly learnedRows: string[] = [];
  /** Fails with an error of another kind (its message that of a refusal) instead of refusing. */
  untypedRefusal = false;
  release(_scores: ScoreBatch): void {}
  process(b: ObservationBatch): Promise<ScoreBatch> {
    // Like the real engine: a row it cannot score refuses the whole batch before any change.
    for (let i = 0; i < b.n; i++) {
      if (b.values[i * b.dim] === 666) {
        const message = `expected finite values, found 666 in row ${i}`;
        return Promise.reject(
          this.untypedRefusal
            ? new RangeError(message)
            : new EngineError("non_finite_input", message),
        );
      }
    }
    const m2 = new Float64Array(b.n);
    const seq = new Float64Array(b.n);
    const contrib = new Float64Array(b.n * b.dim);
    for (let i = 0; i < b.n; i++) {
      const key = b.keys[b.keyIndex[i]];
      const counted = b.counted === undefined || b.counted[i] === 1;
      if (counted) {
        this.obs.set(key, (this.obs.get(key) ?? 0) + 1);
        this.learnedRows.push(`${key}:${b.values[i * b.dim]}`);
      }
      seq[i] = this.obs.get(key) ?? 1;
      for (let j = 0; j < b.dim; j++) {
        const v = b.values[i * b.dim + j];
        contrib[i * b.dim + j] = v * v;
        m2[i] += v * v;
      }
    }
    return Promise.resolve({
      n: b.n,
      dim: b.dim,
      logProb: m2.map((v) => -v / 2),
      mahalanobis2: m2,
      // P(χ²_2 ≥ m²) = exp(−m²/2): d = 2 in these tests.
      pValue: m2.map((v) => Math.exp(-v / 2)),
      anomaly: new Uint8Array(b.n).map((_, i) => (m2[i] > 1000 ? 1 : 0)),
      contrib,
      seq,
    });
  }
  snapshot(keys?: readonly string[]): Promise<HeadSnapshot[]> {
    return Promise.resolve((keys ?? [...this.obs.keys()]).map((key) => ({
      key,
      dim: 2,
      loc: [0, 0],
      scale_tril: [[1, 0], [0, 1]],
      covariance: [[1, 0], [0, 1]],
      observations: this.obs.get(key) ?? 0,
      steps: 0,
      rejected_updates: 0,
    })));
  }
  exportState(keys?: readonly string[]): Promise<HeadState[]> {
    return Promise.resolve((keys ?? [...this.obs.keys()]).map((key) => ({
      key,
      dim: 2,
      diag: "softplus" as const,
      frame_loc: [0, 0],
      frame_tril: [1, 0, 1],
      theta: [0, 0, 0, 0, 0],
      adam_m: [0, 0, 0, 0, 0],
      adam_v: [0, 0, 0, 0, 0],
      steps: 0,
      observations: this.obs.get(key) ?? 0,
      rejected_updates: 0,
      init: null,
    })));
  }
  importState(states: readonly HeadState[]): Promise<void> {
    for (const s of states) this.obs.set(s.key, s.observations);
    return Promise.resolve();
  }
  setParams(): Promise<void> {
    return Promise.resolve();
  }
  keys(): Promise<string[]> {
    return Promise.resolve([...this.obs.keys()]);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Hands out queued messages, then `null` once closed. */
class ArraySource implements MessageSource {
  cumulativeAck = false;
  #queue: InputMessage[] = [];
  #closed = false;
  readonly events: string[];
  constructor(events: string[]) {
    this.events = events;
  }
  add(seq: number, key: string, body: string) {
    const data = new TextEncoder().encode(body);
    this.#queue.push({
      subject: `telemetry.obs.${key}`,
      seq,
      data,
      ack: () => this.events.push(`ack ${seq}`),
    });
  }
  next(timeoutMs: number): Promise<InputMessage | undefined | null> {
    const m = this.#queue.shift();
    if (m !== undefined) return Promise.resolve(m);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((r) => setTimeout(() => r(undefined), Math.min(timeoutMs, 5)));
  }
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}

class MemorySink implements OutputSink {
  /** Every score message, as published. */
  readonly messages: ScoreOut[] = [];
  /** The one-record ones. */
  readonly scores: RecordOut[] = [];
  readonly anomalies: RecordOut[] = [];
  readonly dead: DeadLetterOut[] = [];
  readonly params: ParamsMessage[] = [];
  constructor(readonly events: string[]) {}
  publishScores(items: readonly ScoreOut[]): Promise<void> {
    for (const it of items) {
      this.events.push(`score ${it.msgId}`);
      this.messages.push(it);
      if ("record" in it) this.scores.push(it);
    }
    return Promise.resolve();
  }
  publishDeadLetters(items: readonly DeadLetterOut[]): Promise<void> {
    for (const it of items) this.events.push(`dead ${it.msgId}`);
    this.dead.push(...items);
    return Promise.resolve();
  }
  publishAnomalies(items: readonly RecordOut[]): void {
    this.anomalies.push(...items);
  }
  publishParams(items: readonly ParamsMessage[]): Promise<void> {
    this.params.push(...items);
    return Promise.resolve();
  }
  readonly alarms: AlarmOut[] = [];
  publishAlarms(items: readonly AlarmOut[]): Promise<void> {
    for (const it of items) this.events.push(`alarm ${it.msgId}`);
    this.alarms.push(...items);
    return Promise.resolve();
  }
}

class MemoryStore implements CheckpointStore {
  readonly saved = new Map<string, Checkpoint>();
  failOn: string | undefined;
  constructor(readonly events: string[], initial: Checkpoint[] = []) {
    for (const c of initial) this.saved.set(c.state.key, c);
  }
  loadAll(): Promise<Checkpoint[]> {
    return Promise.resolve([...this.saved.values()]);
  }
  save(items: readonly Checkpoint[]): Promise<void> {
    for (const c of items) {
      if (c.state.key === this.failOn) return Promise.reject(new Error("conflict"));
    }
    for (const c of items) {
      this.events.push(`checkpoint ${c.state.key}@${c.last_seq}`);
      this.saved.set(c.state.key, c);
    }
    return Promise.resolve();
  }
}

// Checkpoint after every batch unless a test says otherwise: the steps below check the order of
// publications, checkpoints and acks batch by batch.
function setup(
  initial: Checkpoint[] = [],
  batch = 4,
  checkpointEveryMs = 0,
  scoreMessages: "row" | "message" = "row",
  fence?: () => void,
) {
  const events: string[] = [];
  const engine = new CountingEngine();
  const source = new ArraySource(events);
  const sink = new MemorySink(events);
  const store = new MemoryStore(events, initial);
  const loop = new LiveLoop(engine, source, sink, store, {
    dim: 2,
    batch,
    maxWaitMs: 5,
    paramsEveryMs: 0,
    checkpointEveryMs,
    obsPrefix: "telemetry.obs.",
    maxMessageBytes: 10_000,
    inputStream: "TELEMETRY",
    scoreMessages,
    // The alarm tests below are hand-worked with k = 1 (p < 0.1 adds evidence).
    alarmReference: 1,
    metrics: new LiveMetrics(),
    log: () => {},
    fence,
  });
  return { events, engine, source, sink, store, loop };
}

async function runUntilDrained(loop: LiveLoop, source: ArraySource): Promise<void> {
  await loop.init();
  const done = loop.run();
  await new Promise((r) => setTimeout(r, 60));
  await source.close();
  loop.stop();
  await done;
}

Deno.test("learning loop with in-memory I/O", async (t) => {
  await t.step(
    "publishes one score per observation with stream msg ids, acks after checkpoint",
    async () => {
      const { events, source, sink, store, loop } = setup();
      source.add(1, "a", "[1,2]");
      source.add(2, "b", '[{"v":[3,4]},{"v":[5,6]}]');
      source.add(3, "a", '{"v":[7,8],"t":"x"}');
      await runUntilDrained(loop, source);
      assert.deepEqual(sink.scores.map((s) => s.msgId).sort(), [
        "TELEMETRY:1",
        "TELEMETRY:2:0",
        "TELEMETRY:2:1",
        "TELEMETRY:3",
      ]);
      const r3 = sink.scores.find((s) => s.msgId === "TELEMETRY:3")!.record;
      assert.equal(r3.mahalanobis2, 49 + 64);
      assert.equal(r3.t, "x");
      assert.equal(r3.stream_seq, 3);
      assert.equal(r3.seq, 2);
      assert.equal(store.saved.get("a")?.last_seq, 3);
      assert.equal(store.saved.get("b")?.last_seq, 2);
      for (const seq of [1, 2, 3]) {
        const ack = events.indexOf(`ack ${seq}`);
        assert.ok(ack > events.findIndex((e) => e.startsWith("score TELEMETRY:" + seq)));
        assert.ok(ack > events.findIndex((e) => e.startsWith("checkpoint")));
      }
    },
  );

  await t.step(
    "score messages per input message: one JSON array per multi-row message, one record otherwise",
    async () => {
      const { events, source, sink, loop } = setup([], 16, 0, "message");
      source.add(1, "a", "[1,2]");
      source.add(2, "b", '[{"v":[3,4]},{"v":[50,6]},{"v":[5,6]}]');
      // A redelivered copy in the same batch: a message of its own (same id, the server drops it).
      source.add(2, "b", '[{"v":[3,4]},{"v":[50,6]},{"v":[5,6]}]');
      source.add(3, "a", '[{"v":[7,8]}]');
      await runUntilDrained(loop, source);
      assert.deepEqual(sink.messages.map((m) => m.msgId), [
        "TELEMETRY:1",
        "TELEMETRY:2",
        "TELEMETRY:2",
        "TELEMETRY:3",
      ]);
      const copies = sink.messages.filter((m) => m.msgId === "TELEMETRY:2");
      assert.deepEqual(copies.map((m) => "records" in m ? m.records.length : 1), [3, 3]);
      const byId = new Map(sink.messages.toReversed().map((m) => [m.msgId, m])); // first copies
      const one = byId.get("TELEMETRY:1")!;
      assert.ok("record" in one && one.record.mahalanobis2 === 5 && one.record.index === undefined);
      const two = byId.get("TELEMETRY:2")!;
      assert.ok("records" in two);
      assert.equal(two.key, "b");
      assert.deepEqual(two.records.map((r) => [r.index, r.seq, r.mahalanobis2, r.stream_seq]), [
        [0, 1, 25, 2],
        [1, 2, 2536, 2],
        [2, 3, 61, 2],
      ]);
      // An array of one row is still an array: its message has the form of its input.
      const three = byId.get("TELEMETRY:3")!;
      assert.ok("records" in three && three.records.length === 1 && three.records[0].index === 0);
      // Anomalies still go out record by record.
      assert.deepEqual(sink.anomalies.map((a) => [a.msgId, a.record.mahalanobis2]), [
        ["TELEMETRY:2:1", 2536],
      ]);
      assert.ok(events.indexOf("ack 3") > events.indexOf("score TELEMETRY:3"));
    },
  );

  await t.step("scores but never re-learns messages at or below a key's checkpoint", async () => {
    const cp = (key: string, last_seq: number, observations: number): Checkpoint => ({
      last_seq,
      written_at: "2026-01-01T00:00:00Z",
      state: {
        key,
        dim: 2,
        diag: "softplus",
        frame_loc: [0, 0],
        frame_tril: [1, 0, 1],
        theta: [0, 0, 0, 0, 0],
        adam_m: [0, 0, 0, 0, 0],
        adam_v: [0, 0, 0, 0, 0],
        steps: 0,
        observations,
        rejected_updates: 0,
        init: null,
      },
    });
    // Key a applied seqs 1 and 3 before the "crash"; b applied 2.
    const { engine, source, sink, store, loop } = setup([cp("a", 3, 2), cp("b", 2, 1)]);
    source.add(1, "a", "[1,1]");
    source.add(2, "b", "[2,2]");
    source.add(3, "a", "[3,3]");
    source.add(4, "b", "[4,4]");
    source.add(5, "a", "[5,5]");
    await runUntilDrained(loop, source);
    assert.equal(sink.scores.length, 5);
    assert.deepEqual(engine.learnedRows, ["b:4", "a:5"]);
    assert.equal(engine.obs.get("a"), 3);
    assert.equal(engine.obs.get("b"), 2);
    assert.equal(store.saved.get("a")?.last_seq, 5);
    assert.equal(store.saved.get("b")?.last_seq, 4);
  });

  await t.step(
    "alarms: records carry them, episodes go out once with ids from key and seqs, a restart from a checkpoint neither loses nor doubles one",
    async () => {
      // d = 2: p = exp(−m²/2). [4,0]: m² 16, −log10 p = 3.47; [0,0]: p = 1. CUSUM (h 5, k 1):
      // seqs 4–6 loud → S 2.47, 4.94, 7.4 → opens at 6; quiet 7–11 → S 4…0 → closes at 11
      // (episode 6–10); loud 15–16 → S 2.47, 4.94, never opens.
      const loud = new Set([4, 5, 6, 15, 16]);
      const body = (s: number) => (loud.has(s) ? "[4,0]" : "[0,0]");
      const feed = (src: ArraySource, from: number, to: number) => {
        for (let s = from; s <= to; s++) src.add(s, "a", body(s));
      };
      const whole = setup([], 1);
      feed(whole.source, 1, 20);
      await runUntilDrained(whole.loop, whole.source);
      const alarmOf = (sink: MemorySink) =>
        new Map(sink.scores.map((r) => [r.record.stream_seq, r.record.alarm]));
      const on = [...alarmOf(whole.sink)].filter(([, a]) => a).map(([s]) => s).sort((x, y) =>
        x - y
      );
      assert.deepEqual(on, [6, 7, 8, 9, 10]);
      assert.deepEqual(whole.sink.alarms.map((a) => a.msgId), ["TELEMETRY:alarm:a:6-10"]);
      const ep = whole.sink.alarms[0].episode;
      assert.deepEqual([ep.key, ep.start_seq, ep.end_seq, ep.observations], ["a", 6, 10, 5]);
      assert.ok(Math.abs(ep.peak_log_p - 16 / 2 / Math.LN10) < 1e-9);
      assert.deepEqual(ep.top_dims, [0]);
      assert.deepEqual(ep.top_shares, [1]);
      // The episode is published before the checkpoint of the batch that closed it.
      assert.ok(
        whole.events.indexOf("alarm TELEMETRY:alarm:a:6-10") <
          whole.events.indexOf("checkpoint a@11"),
      );

      for (const cut of [5, 6, 8, 10, 11]) {
        // Crash after publishing up to seq 12 with the checkpoint at `cut`: restart from it and
        // redeliver everything after cut - 2 (some already applied, some not).
        const before = setup([], 1);
        feed(before.source, 1, 12);
        await runUntilDrained(before.loop, before.source);
        const upTo = setup([], 1);
        feed(upTo.source, 1, cut);
        await runUntilDrained(upTo.loop, upTo.source);
        const cp = upTo.store.saved.get("a")!;
        assert.equal(cp.last_seq, cut);
        assert.ok(cp.alarm !== undefined);
        const after = setup([JSON.parse(JSON.stringify(cp))], 1);
        feed(after.source, Math.max(1, cut - 2), 20);
        await runUntilDrained(after.loop, after.source);
        // Same id, same record: whatever was published twice is dropped by the server.
        const byId = new Map(before.sink.scores.map((r) => [r.msgId, r.record]));
        for (const r of after.sink.scores) {
          const first = byId.get(r.msgId);
          if (first !== undefined && r.record.stream_seq > cut) {
            assert.deepEqual(r.record, first, `cut ${cut}: ${r.msgId}`);
          }
        }
        for (const [seq, alarm] of alarmOf(after.sink)) {
          if (seq > cut) assert.equal(alarm, alarmOf(whole.sink).get(seq), `cut ${cut}: ${seq}`);
        }
        const ids = new Map<string, unknown>();
        for (const a of [...before.sink.alarms, ...after.sink.alarms]) {
          if (ids.has(a.msgId)) assert.deepEqual(a.episode, ids.get(a.msgId));
          ids.set(a.msgId, a.episode);
        }
        assert.deepEqual([...ids.keys()], ["TELEMETRY:alarm:a:6-10"], `cut ${cut}`);
        assert.deepEqual(ids.get("TELEMETRY:alarm:a:6-10"), ep);
      }
    },
  );

  await t.step(
    "a checkpoint without an alarm state (older worker) loads, its key starts closed",
    async () => {
      const { source, sink, loop } = setup([{
        last_seq: 3,
        written_at: "2026-01-01T00:00:00Z",
        state: {
          key: "a",
          dim: 2,
          diag: "softplus",
          frame_loc: [0, 0],
          frame_tril: [1, 0, 1],
          theta: [0, 0, 0, 0, 0],
          adam_m: [0, 0, 0, 0, 0],
          adam_v: [0, 0, 0, 0, 0],
          steps: 0,
          observations: 3,
          rejected_updates: 0,
          init: null,
        },
      }], 1);
      source.add(4, "a", "[0,0]");
      await runUntilDrained(loop, source);
      assert.equal(sink.scores[0].record.alarm, false);
    },
  );

  await t.step("a redelivered message in the same run is not learned again", async () => {
    const { engine, source, sink, loop } = setup();
    source.add(1, "a", "[1,1]");
    source.add(2, "a", "[2,2]");
    source.add(1, "a", "[1,1]");
    await runUntilDrained(loop, source);
    assert.equal(sink.scores.length, 3);
    assert.equal(engine.obs.get("a"), 2);
  });

  await t.step(
    "bad messages go to the dead letters with reason and sequence and are acked",
    async () => {
      const { events, source, sink, engine, loop } = setup();
      source.add(1, "a", "nope");
      source.add(2, "a", "[1,2,3]");
      source.add(3, "a", "[1,2]");
      await runUntilDrained(loop, source);
      assert.deepEqual(sink.dead.map((d) => [d.streamSeq, d.reason, d.msgId]), [
        [1, "malformed", "TELEMETRY:1"],
        [2, "dimension", "TELEMETRY:2"],
      ]);
      assert.equal(sink.dead[0].subject, "telemetry.obs.a");
      assert.equal(engine.obs.get("a"), 1);
      assert.ok(events.includes("ack 1") && events.includes("ack 2") && events.includes("ack 3"));
    },
  );

  await t.step(
    "a message the engine refuses goes to the DLQ; the rest of its batch is learned in order",
    async () => {
      const { engine, source, sink, events, loop } = setup([], 8);
      for (let s = 1; s <= 6; s++) source.add(s, "a", s === 4 ? "[666,1]" : `[${s},1]`);
      await runUntilDrained(loop, source);
      assert.deepEqual(engine.learnedRows, ["a:1", "a:2", "a:3", "a:5", "a:6"]);
      assert.deepEqual(sink.dead.map((d) => [d.streamSeq, d.reason]), [[4, "non_finite"]]);
      assert.match(sink.dead[0].detail, /engine refused/);
      assert.deepEqual(sink.scores.map((s) => s.record.stream_seq).sort(), [1, 2, 3, 5, 6]);
      for (let s = 1; s <= 6; s++) assert.ok(events.includes(`ack ${s}`));
    },
  );

  await t.step(
    "a refusal is recognised by its error code: another error with the same text is fatal",
    async () => {
      const { engine, source, sink, events, loop } = setup([], 8);
      engine.untypedRefusal = true;
      for (let s = 1; s <= 3; s++) source.add(s, "a", s === 2 ? "[666,1]" : `[${s},1]`);
      await loop.init();
      await assert.rejects(loop.run(), /expected finite values/);
      assert.deepEqual(sink.dead, []);
      assert.ok(!events.some((e) => e.startsWith("ack")));
    },
  );

  await t.step("a failed checkpoint stops the loop without acking that batch", async () => {
    const { events, source, store, loop } = setup([], 1);
    store.failOn = "b";
    source.add(1, "a", "[1,1]");
    source.add(2, "b", "[2,2]");
    source.add(3, "a", "[3,3]");
    await loop.init();
    await assert.rejects(loop.run(), /conflict/);
    assert.ok(events.includes("ack 1"));
    assert.ok(!events.includes("ack 2"));
    assert.ok(!events.includes("ack 3"));
  });

  await t.step(
    "a fence that throws (lease lost) stops commits: no checkpoint, no ack",
    async () => {
      let calls = 0;
      // The first commit passes (its two checks: before the checkpoint, before the ack).
      const fence = () => {
        if (++calls > 2) throw new Error("lease lost");
      };
      const { events, source, loop } = setup([], 1, 0, "row", fence);
      source.add(1, "a", "[1,1]");
      source.add(2, "b", "[2,2]");
      source.add(3, "a", "[3,3]");
      await loop.init();
      await assert.rejects(loop.run(), /lease lost/);
      assert.ok(events.includes("ack 1"));
      assert.ok(!events.some((e) => e.startsWith("checkpoint b")), events.join(", "));
      assert.ok(!events.includes("ack 2"));
      assert.ok(!events.includes("ack 3"));
    },
  );

  await t.step(
    "with a checkpoint interval, many batches share a checkpoint and every ack follows the checkpoint that covers it",
    async () => {
      const { events, source, loop } = setup([], 2, 40);
      await loop.init();
      const t0 = performance.now();
      const done = loop.run();
      // A trickle: one message every ~2 ms (or slower, on a busy machine), two keys.
      for (let s = 1; s <= 100; s++) {
        source.add(s, s % 2 === 0 ? "a" : "b", `[${s},1]`);
        await new Promise((r) => setTimeout(r, 2));
      }
      // Idle now: the last messages are still checkpointed and acked, without a stop.
      await waitFor("all 100 acked", () => events.includes("ack 100"), 120_000);
      const elapsed = performance.now() - t0;
      for (let s = 1; s <= 100; s++) assert.ok(events.includes(`ack ${s}`), `ack ${s}`);
      // At most one checkpoint per key per 40 ms interval (and the first and the idle one),
      // however long the trickle took.
      const checkpoints = events.filter((e) => e.startsWith("checkpoint"));
      const most = 2 * (Math.ceil(elapsed / 40) + 2);
      assert.ok(
        checkpoints.length <= most,
        `${checkpoints.length} checkpoint writes in ${elapsed.toFixed(0)} ms, expected ≤ ${most}`,
      );
      // The checkpoint of a key with last_seq ≥ s is written before message s is acked.
      for (let s = 1; s <= 100; s++) {
        const key = s % 2 === 0 ? "a" : "b";
        const ackAt = events.indexOf(`ack ${s}`);
        const covered = events.findIndex((e) => {
          const m = /^checkpoint (\w+)@(\d+)$/.exec(e);
          return m !== null && m[1] === key && Number(m[2]) >= s;
        });
        assert.ok(covered >= 0 && covered < ackAt, `message ${s}: checkpoint after its ack`);
      }
      await source.close();
      loop.stop();
      await done;
    },
  );

  await t.step(
    "with cumulative acks, one ack per checkpoint, after it, for its last message",
    async () => {
      const { events, source, loop } = setup([], 2, 30);
      source.cumulativeAck = true;
      await loop.init();
      const t0 = performance.now();
      const done = loop.run();
      // At least 120 ms of trickle: more than one 30 ms checkpoint interval.
      for (let s = 1; s <= 60; s++) {
        source.add(s, s % 3 === 0 ? "a" : "b", `[${s},1]`);
        await new Promise((r) => setTimeout(r, 2));
      }
      await waitFor("the ack of message 60", () => events.includes("ack 60"), 120_000);
      const elapsed = performance.now() - t0;
      const acks = events.filter((e) => e.startsWith("ack")).map((e) => Number(e.slice(4)));
      // One ack per checkpoint: at most one per 30 ms interval, however long the trickle took.
      const most = Math.ceil(elapsed / 30) + 2;
      assert.ok(
        acks.length >= 2 && acks.length <= most,
        `${acks.length} acks in ${elapsed.toFixed(0)} ms, expected 2 to ${most}`,
      );
      assert.equal(acks.at(-1), 60);
      assert.deepEqual(acks, [...acks].sort((a, b) => a - b));
      // Each ack follows the checkpoints of every key up to it.
      for (const seq of acks) {
        const ackAt = events.indexOf(`ack ${seq}`);
        for (const key of ["a", "b"]) {
          const lastOfKey = Array.from({ length: seq }, (_, i) => i + 1)
            .filter((s) => (s % 3 === 0 ? "a" : "b") === key).at(-1);
          // A key with no message up to this ack (a slow trickle can ack 1 or 2 alone) has
          // nothing to be covered.
          if (lastOfKey === undefined) continue;
          const covered = events.findIndex((e) => {
            const m = /^checkpoint (\w+)@(\d+)$/.exec(e);
            return m !== null && m[1] === key && Number(m[2]) >= lastOfKey;
          });
          assert.ok(covered >= 0 && covered < ackAt, `ack ${seq} before ${key}'s checkpoint`);
        }
      }
      await source.close();
      loop.stop();
      await done;
    },
  );

  await t.step("publishes parameters of the keys that learned", async () => {
    const { source, sink, loop } = setup();
    source.add(1, "a", "[1,1]");
    source.add(2, "b", "[2,2]");
    await runUntilDrained(loop, source);
    const last = new Map(sink.params.map((p) => [p.key, p]));
    assert.equal(last.get("a")?.observations, 1);
    assert.equal(last.get("b")?.observations, 1);
  });
});

Deno.test("pull source: a hole in the delivery sequence re-creates the consumer before anything newer", async () => {
  const fakeMsg = (deliverySequence: number, seq: number): JsMsg =>
    ({
      subject: "telemetry.obs.a",
      seq,
      data: new TextEncoder().encode("[1,2]"),
      headers: undefined,
      info: { deliverySequence },
      ack: () => {},
    }) as unknown as JsMsg;
  // fetch() as the source uses it: messages handed to opts.callback, then closed() resolves
  // (stop() ends it early, as the source does on a hole).
  const consumerOf = (fetches: JsMsg[][]): Consumer =>
    ({
      fetch: (opts: { callback: (m: JsMsg) => void }) => {
        const batch = fetches.shift() ?? [];
        let stopped = false;
        let end = () => {};
        const closed = new Promise<void>((r) => (end = r));
        setTimeout(() => {
          for (const m of batch) if (!stopped) opts.callback(m);
          setTimeout(end, batch.length === 0 ? 5 : 0);
        }, 0);
        return Promise.resolve({
          closed: () => closed,
          stop: () => {
            stopped = true;
            end();
          },
        });
      },
    }) as unknown as Consumer;
  // Old consumer: deliveries 1, 2, then 5 (3 and 4 lost in transit), then 6.
  const old = consumerOf([[fakeMsg(1, 1), fakeMsg(2, 2), fakeMsg(5, 5), fakeMsg(6, 6)]]);
  // Re-created from the ack floor (0): everything again, in order.
  const fresh = consumerOf([[1, 2, 3, 4, 5, 6].map((s) => fakeMsg(s, s))]);
  let resets = 0;
  const source = new JetStreamSource(old, {
    maxMessages: 100,
    expiresMs: 1000,
    reset: () => {
      resets++;
      return Promise.resolve(fresh);
    },
    log: () => {},
  });
  const seqs: number[] = [];
  while (seqs.length < 8) {
    const m = await source.next(100);
    if (m) seqs.push(m.seq);
  }
  await source.close();
  assert.equal(resets, 1);
  assert.deepEqual(seqs, [1, 2, 1, 2, 3, 4, 5, 6]);
});

Deno.test("pull source: a request left open past its expiry does not hold delivery up", async () => {
  const fakeMsg = (seq: number): JsMsg =>
    ({
      subject: "telemetry.obs.a",
      seq,
      data: new TextEncoder().encode("[1,2]"),
      headers: undefined,
      info: { deliverySequence: seq },
      ack: () => {},
    }) as unknown as JsMsg;
  const events: string[] = [];
  let calls = 0;
  // The first request gets deliveries 1-2, then nothing, and ends only by itself after 5 s
  // (no expiry notice: the client's missed heartbeats), with one more delivery (7) just before;
  // every later request gets the next two and ends.
  const consumer = {
    fetch: (opts: { callback: (m: JsMsg) => void }) => {
      const n = calls++;
      let end = () => {};
      const closed = new Promise<void>((r) => (end = r));
      const batch = n === 0 ? [1, 2] : n <= 2 ? [2 * n + 1, 2 * n + 2] : [];
      setTimeout(() => {
        for (const s of batch) opts.callback(fakeMsg(s));
        if (n > 0) setTimeout(end, batch.length === 0 ? 5 : 0);
      }, 0);
      if (n === 0) {
        setTimeout(() => {
          opts.callback(fakeMsg(7));
          events.push("first ended by itself");
          end();
        }, 5_000);
      }
      const stop = () => {
        events.push(`request ${n} stopped`);
        end();
      };
      return Promise.resolve({ closed: () => closed, stop });
    },
  } as unknown as Consumer;
  const source = new JetStreamSource(consumer, { maxMessages: 100, expiresMs: 200, log: () => {} });
  const seqs: number[] = [];
  while (seqs.length < 6) {
    const m = await source.next(1000);
    if (m) seqs.push(m.seq);
  }
  events.push("six delivered");
  await source.close();
  // close() waited for the first request, whose late delivery is still in the queue.
  const rest: number[] = [];
  for (let m = await source.next(0); m; m = await source.next(0)) rest.push(m.seq);
  assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(rest, [7]);
  // Deliveries 3-6 came through other requests while the first was open, and the client never
  // stopped a request (a stopped request's late deliveries would be lost: a hole).
  assert.deepEqual(events, ["six delivered", "first ended by itself"]);
});
