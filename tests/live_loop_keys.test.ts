import assert from "node:assert/strict";
import { AlarmBank, type AlarmInput } from "../src/model/alarm.ts";
import { LoopKeys } from "../src/live/loop_keys.ts";

type T = number | string | null;

Deno.test("loop keys: a forgotten key's slot goes to a new key with nothing of the old one", () => {
  const keys = new LoopKeys(2, 5, 3);
  const obs = (seq: number, p: number): AlarmInput<T> => ({
    seq,
    t: "2026-12-06T00:00:00Z",
    pValue: p,
    contrib: [1, 1],
    values: [1, 2],
  });
  keys.setApplied("a", 10);
  keys.setParamsAt("a", 123);
  keys.step("a", obs(1, 1e-12));
  assert.equal(keys.isOpen("a"), true);
  keys.forget("a");
  assert.equal(keys.has("a"), false);
  assert.equal(keys.lastApplied("a"), undefined);
  assert.equal(keys.export("a"), undefined);
  keys.setApplied("b", 3);
  assert.equal(keys.lastApplied("b"), 3);
  assert.equal(keys.paramsAt("b"), -Infinity);
  assert.equal(keys.isOpen("b"), false);
  assert.equal(keys.export("b"), undefined);
  const fresh = new AlarmBank<T>(2, 5, 3);
  assert.deepEqual(keys.step("b", obs(1, 0.5)), fresh.step("b", obs(1, 0.5)));
  assert.deepEqual(keys.export("b"), fresh.export("b"));
  assert.deepEqual([...keys.appliedMap()], [["b", 3]]);
});

Deno.test("loop keys: a key's checkpoint revision outlives its eviction, and one read before its slot is kept", () => {
  const keys = new LoopKeys(2, 5, 3);
  const r = keys.revisions;
  // Read at start-up (loadAll) before the key has a slot.
  r.set("a", 7);
  assert.equal(r.get("a"), 7);
  keys.setApplied("a", 1);
  assert.equal(r.get("a"), 7);
  r.set("a", 9);
  keys.setApplied("b", 1);
  assert.equal(r.get("b"), undefined);
  keys.forget("a");
  assert.equal(r.get("a"), 9);
  // "c" takes a's slot: it knows no revision; a's comes back with a.
  keys.setApplied("c", 1);
  assert.equal(r.get("c"), undefined);
  keys.setApplied("a", 2);
  assert.equal(r.get("a"), 9);
});
