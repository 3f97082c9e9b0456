import assert from "node:assert/strict";
import { AlarmBank, type AlarmInput, type AlarmState } from "../src/model/alarm.ts";
import { AlarmSlots } from "../src/model/alarm_slots.ts";
import { mulberry32 } from "../src/model/prng.ts";
import { AlarmStateSchema } from "../schemas/alarm.ts";

type T = number | string | null;

/**
 * Seeded observations of `keys` keys: mostly quiet p-values with bursts (tiny, 0, null), contribs
 * with null and infinite parts, readings that freeze for a while (flatline evidence), times that
 * are numbers, strings or null, and warm-up rows.
 */
function* observations(seed: number, n: number, keys: number, d: number) {
  const rnd = mulberry32(seed);
  const frozen: number[][] = Array.from({ length: keys }, () => new Array(d).fill(NaN));
  const seqs = new Array(keys).fill(0);
  for (let i = 0; i < n; i++) {
    const k = Math.floor(rnd() * keys);
    const burst = rnd() < 0.08;
    const u = rnd();
    const pValue = burst ? (u < 0.1 ? 0 : u < 0.2 ? null : 10 ** -(3 + 10 * rnd())) : rnd();
    const contrib: (number | null)[] = [];
    for (let j = 0; j < d; j++) {
      const c = rnd();
      contrib.push(c < 0.03 ? null : c < 0.05 ? Infinity : c * 4);
    }
    const values: number[] = [];
    for (let j = 0; j < d; j++) {
      if (rnd() < 0.02) frozen[k][j] = Number.isNaN(frozen[k][j]) ? rnd() : NaN;
      values.push(Number.isNaN(frozen[k][j]) ? Math.round(rnd() * 50) / 10 : frozen[k][j]);
    }
    const tt = rnd();
    const t: T = tt < 0.1
      ? null
      : tt < 0.2
      ? `2026-12-06T00:00:${String(i % 60).padStart(2, "0")}Z`
      : i;
    const obs: AlarmInput<T> = {
      seq: ++seqs[k],
      t,
      pValue,
      contrib,
      armed: seqs[k] > 5 && rnd() > 0.05,
      ...(rnd() < 0.02 ? {} : { values }),
    };
    yield { key: `k${k}`, obs };
  }
}

Deno.test("alarm slots step, export and import exactly like a full alarm bank", async (t) => {
  for (const seed of [1, 2, 3]) {
    await t.step(`seed ${seed}`, () => {
      const d = 3;
      const full = new AlarmBank<T>(d, 5, 3);
      const slots = new AlarmSlots<T>(d, 5, 3);
      const slotOf = new Map<string, number>();
      let episodes = 0;
      for (const { key, obs } of observations(seed, 20_000, 40, d)) {
        if (!slotOf.has(key)) slotOf.set(key, slotOf.size);
        const s = slotOf.get(key)!;
        const a = full.step(key, obs);
        const b = slots.step(s, key, obs);
        assert.deepEqual(b, a);
        if (a.closed !== null) episodes++;
        assert.equal(slots.isOpen(s), full.isOpen(key));
        // The checkpointed form, byte for byte.
        assert.equal(JSON.stringify(slots.export(s)), JSON.stringify(full.export(key)));
      }
      assert.ok(episodes > 10, `expected episodes, found ${episodes}`);
    });
  }
});

Deno.test("alarm slots: a state imported (from a checkpoint) continues as a full bank's", () => {
  const d = 3;
  const full = new AlarmBank<T>(d, 5, 3);
  const slots = new AlarmSlots<T>(d, 5, 3);
  const other = new AlarmSlots<T>(d, 5, 3);
  const steps = [...observations(7, 6_000, 5, d)];
  for (const [i, { key, obs }] of steps.entries()) {
    const s = Number(key.slice(1));
    const a = full.step(key, obs);
    assert.deepEqual(slots.step(s, key, obs), a);
    if (i % 500 === 499) {
      // Through JSON and the checkpoint schema, into another slot of another bank.
      for (let k = 0; k < 5; k++) {
        const json = JSON.stringify(slots.export(k));
        if (json === undefined) continue;
        const parsed = AlarmStateSchema.parse(JSON.parse(json)) as AlarmState<T>;
        other.import(9 - k, parsed);
        assert.equal(JSON.stringify(other.export(9 - k)), json);
      }
    }
  }
  // Keys continue in the other bank exactly as in the full one.
  for (const { key, obs } of observations(8, 3_000, 5, d)) {
    const k = Number(key.slice(1));
    if (!other.has(9 - k)) continue;
    assert.deepEqual(other.step(9 - k, key, obs), full.step(key, obs));
    assert.equal(JSON.stringify(other.export(9 - k)), JSON.stringify(full.export(key)));
  }
});

Deno.test("alarm slots refuse a state of another dimension", () => {
  const slots = new AlarmSlots(3, 5, 3);
  const s: AlarmState = {
    cusum: 0,
    open: false,
    start_seq: 0,
    start_t: null,
    end_seq: 0,
    end_t: null,
    observations: 0,
    peak: 0,
    shares: [0, 0],
  };
  assert.throws(() => slots.import(0, s), /dimension 3/);
});
