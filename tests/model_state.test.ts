/**
 * Natural-step state in checkpoints: export → import round-trips exactly (memory, CUSUM,
 * weighted initialisation), the zod schema accepts it, and checkpoints without the new fields
 * (older engines, Adam) still load.
 */
import assert from "node:assert/strict";
import { HeadStateSchema } from "../schemas/messages.ts";
import { cpuEngine, feed } from "./helpers/learning.ts";
import { gaussian, mvnRows, rng } from "./helpers/synthetic.ts";

const TRIL = [[1, 0, 0], [0.5, 2, 0], [0, -1, 3]];

Deno.test("natural-step state round-trips", async (t) => {
  const rows = mvnRows(3_000, [1, 2, 3], TRIL, gaussian(rng(601)));
  for (const upTo of [40, 3_000]) {
    await t.step(`${upTo < 64 ? "initialising" : "stepping"} key: exact continuation`, async () => {
      await using a = await cpuEngine({ dim: 3 });
      await feed(a, rows.subarray(0, upTo * 3), 3, 7);
      const states = await a.exportState();
      const parsed = states.map((s) => HeadStateSchema.parse(JSON.parse(JSON.stringify(s))));
      assert.ok(parsed[0].memory !== undefined);
      if (upTo < 64) assert.ok(parsed[0].init?.w2 !== undefined);
      await using b = await cpuEngine({ dim: 3 });
      await b.importState(parsed);
      assert.deepEqual(await b.exportState(), states);
      const more = mvnRows(500, [1, 2, 3], TRIL, gaussian(rng(602)));
      await feed(a, more, 3, 7);
      await feed(b, more, 3, 7);
      assert.deepEqual(await b.exportState(), await a.exportState());
    });
  }

  await t.step("a checkpoint without memory fields (Adam, older engines) loads", async () => {
    await using adam = await cpuEngine({ dim: 3, optimizer: "adam" });
    await feed(adam, rows, 3, 64);
    const [s] = await adam.exportState();
    assert.equal(s.memory, undefined);
    await using nat = await cpuEngine({ dim: 3 });
    await nat.importState([HeadStateSchema.parse(s)]);
    const h = nat.bank.head("k")!;
    assert.equal(h.wSum, 3_000);
    assert.ok(nat.bank.nEff(h) === 3_000);
    await feed(nat, rows.subarray(0, 300), 3, 64);
    const [snap] = await nat.snapshot();
    assert.ok(snap.loc.every(Number.isFinite));
  });
});
