/**
 * Replay's alarms: each record carries the key's alarm state, `--alarms` writes the episodes, the
 * summary rates `anomaly` and `alarm` (points and episodes), and a finite reading whose m²
 * overflows is scored saturated instead of skipped.
 */
import assert from "node:assert/strict";
import { AlarmEpisode } from "../schemas/alarm.ts";
import { ReplaySummary } from "../schemas/replay.ts";
import { ScoreRecord } from "../schemas/score_record.ts";
import { AlarmBank } from "../src/model/alarm.ts";
import { resolveHeadConfig } from "../src/config/head_config.ts";
import { replay } from "../src/replay/replay.ts";
import { MemorySink } from "./helpers/replay.ts";
import { tempDir } from "./helpers/temp_dir.ts";
import { gaussian, rng } from "./helpers/synthetic.ts";

/** 3-D N(0, I) rows; rows [from, to) shifted by `shift` in every value and labelled 1. */
function recording(n: number, from: number, to: number, shift: number, seed: number): string {
  const g = gaussian(rng(seed));
  let text = "";
  for (let i = 0; i < n; i++) {
    const s = i >= from && i < to ? shift : 0;
    const v = [g() + s, g() + s, g() + s];
    text += JSON.stringify({ t: 1000 + i, a: v[0], b: v[1], c: v[2], label: s !== 0 ? 1 : 0 }) +
      "\n";
  }
  return text;
}

async function run(input: string, extra: Record<string, unknown> = {}) {
  const sink = new MemorySink();
  const summary = await replay({ input, backend: "cpu", columns: "a,b,c", ...extra }, {
    stdout: sink,
    stderr: () => {},
    progress: false,
  });
  return {
    summary: ReplaySummary.parse(summary),
    records: sink.records().map((r) => ScoreRecord.parse(r)),
  };
}

Deno.test("replay: records carry the alarm, --alarms writes each episode, the summary rates both", async (t) => {
  await using dir = await tempDir();
  const input = await dir.write("x.ndjson", recording(1500, 1000, 1040, 6, 11));
  const alarmsPath = `${dir.path}/alarms.ndjson`;
  const { summary, records } = await run(input, { alarms: alarmsPath });
  const episodes = (await Deno.readTextFile(alarmsPath)).split("\n").filter((l) => l !== "")
    .map((l) => AlarmEpisode.parse(JSON.parse(l)));

  await t.step("the alarm follows the detector over the records' own p-values", () => {
    const bank = new AlarmBank(3, summary.alarm_threshold, 3);
    for (const r of records) {
      const { alarm } = bank.step(r.key, {
        seq: r.seq,
        t: r.t ?? null,
        pValue: r.p_value,
        contrib: r.contrib,
        armed: r.seq > resolveHeadConfig({ dim: 3 }).warmup,
      });
      assert.equal(r.alarm, alarm, `seq ${r.seq}`);
    }
  });
  await t.step("the shifted segment raises an episode within a few observations", () => {
    const inSegment = episodes.filter((e) => e.start_seq >= 1001 && e.start_seq <= 1040);
    assert.equal(inSegment.length, 1, JSON.stringify(episodes));
    const e = inSegment[0];
    assert.ok(e.start_seq <= 1005, `opened at ${e.start_seq}`);
    // It may close before the segment ends: the head learns a lasting shift (change handling).
    assert.equal(e.start_t, 1000 + e.start_seq - 1);
    assert.equal(e.observations, e.end_seq - e.start_seq + 1);
    assert.equal(e.top_dims.length, 3);
    assert.ok(Math.abs(e.top_shares.reduce((a, b) => a + b, 0) - 1) < 1e-9);
    for (let s = e.start_seq; s <= e.end_seq; s++) assert.equal(records[s - 1].alarm, true);
    assert.equal(records[e.end_seq].alarm, false);
  });
  await t.step("the summary counts episodes and rates anomaly and alarm", () => {
    assert.equal(summary.alarm_episodes, episodes.length);
    assert.equal(summary.alarm_threshold, 5);
    const ep = summary.episode_metrics!;
    assert.equal(ep.alarm.segments, 1);
    assert.equal(ep.alarm.detected, 1);
    assert.equal(ep.anomaly.detected, 1);
    assert.equal(ep.alarm.observations, 1500);
    const m = summary.alarm_metrics!;
    assert.equal(m.tp + m.fn, 40);
    assert.equal(m.tp + m.fp, records.filter((r) => r.alarm).length);
    assert.ok(ep.alarm.mean_delay! <= 4);
  });
});

Deno.test("replay: --alarm-threshold is validated and a higher one opens no sooner", async () => {
  await using dir = await tempDir();
  const input = await dir.write("x.ndjson", recording(1200, 1000, 1040, 2, 12));
  const low = await run(input, { alarm_threshold: "3" });
  const high = await run(input, { alarm_threshold: "20" });
  const first = (rs: ScoreRecord[]) => rs.findIndex((r) => r.alarm);
  assert.ok(first(low.records) >= 0);
  assert.ok(first(high.records) < 0 || first(high.records) >= first(low.records));
  await assert.rejects(() => run(input, { alarm_threshold: "0" }), /--alarm-threshold/);
});

Deno.test("replay: a finite reading whose m² overflows is scored saturated, not skipped", async () => {
  await using dir = await tempDir();
  const lines = recording(600, 0, 0, 0, 13).split("\n");
  lines[500] = JSON.stringify({ t: 1500, a: 1e300, b: 0, c: -1e300, label: 1 });
  const input = await dir.write("x.ndjson", lines.join("\n"));
  const { summary, records } = await run(input);
  assert.equal(summary.skipped, 0);
  assert.equal(records.length, 600);
  const r = records[500];
  assert.equal(r.mahalanobis2, Number.MAX_VALUE);
  assert.equal(r.log_prob, -Number.MAX_VALUE);
  assert.equal(r.p_value, 0);
  assert.equal(r.anomaly, true);
  assert.equal(r.alarm, true);
  assert.ok(r.contrib.every((c) => c !== null && Number.isFinite(c)));
  // Not learned: the rows after it score as before (no wrecked head).
  assert.ok(records.slice(501).every((x) => x.mahalanobis2! < 60), "later rows stay ordinary");
});

Deno.test("replay: a sensor stuck at its last reading opens an episode on that sensor", async (t) => {
  // 1,500 N(0, I) rows; from row 1,000 to 1,060 sensor b repeats its row-999 value (|b| < 1.5 so
  // the frozen value stays well within range: invisible to the Gaussian p-value).
  const g = gaussian(rng(12));
  const rows: number[][] = [];
  for (let i = 0; i < 1500; i++) rows.push([g(), g(), g()]);
  rows[999][1] = 0.7;
  for (let i = 1000; i < 1060; i++) rows[i][1] = rows[999][1];
  let text = "";
  rows.forEach((v, i) => {
    const label = i >= 1000 && i < 1060 ? 1 : 0;
    text += JSON.stringify({ t: 1000 + i, a: v[0], b: v[1], c: v[2], label }) + "\n";
  });
  await using dir = await tempDir();
  const input = await dir.write("stuck.ndjson", text);
  const alarmsPath = `${dir.path}/alarms.ndjson`;
  const { records } = await run(input, { alarms: alarmsPath });
  const episodes = (await Deno.readTextFile(alarmsPath)).split("\n").filter((l) => l !== "")
    .map((l) => AlarmEpisode.parse(JSON.parse(l)));

  await t.step("the stuck rows have unremarkable p-values, yet the alarm opens within them", () => {
    const stuck = records.slice(1000, 1060);
    assert.ok(stuck.filter((r) => r.anomaly).length <= 2, "the Gaussian score barely sees it");
    // Sensor b: 999 non-repeat transitions, no run yet: a run of r repeats has evidence
    // log10 1001 + (r − 1)·log10 2 − log10 3 (P(N→R) = 1/1001, P(R→R) = 1/2, Bonferroni over 3);
    // e − 3 > 0 from r = 3 (0.125, 0.426, 0.727, 1.028, …), Σ ≥ 5 first at r = 8 (5.265), i.e. row
    // 1,007 (row 1,000 is the first repeat), unless the Gaussian evidence of a row adds to it.
    const first = records.findIndex((r, i) => i >= 1000 && r.alarm);
    assert.ok(first >= 1000 && first <= 1007, `first alarm at row ${first}`);
    assert.ok(records.slice(1007, 1060).every((r) => r.alarm));
    assert.ok(records.slice(1065, 1500).every((r) => !r.alarm));
  });

  await t.step("one episode, on sensor b (dimension 1)", () => {
    const onB = episodes.filter((e) => e.start_seq >= 1001 && e.start_seq <= 1060);
    assert.equal(onB.length, 1);
    assert.equal(onB[0].top_dims[0], 1);
    assert.ok(onB[0].end_seq >= 1060);
  });
});
