import assert from "node:assert/strict";
import { segmentRowsByKey } from "../src/engine/kernels/row_segments.ts";

Deno.test("segmentRowsByKey groups rows by key into bounded chunks", async (t) => {
  await t.step("rows of each key are contiguous, in row order, cut every chunkRows", () => {
    const keyIdx = Int32Array.from([2, 0, 2, 2, 0, 2, 2]);
    const seg = segmentRowsByKey(keyIdx, 7, 4, 2);
    assert.deepEqual([...seg.order], [1, 4, 0, 2, 3, 5, 6]);
    // key 0: rows 1,4 → one chunk; key 1: none; key 2: five rows → chunks of 2, 2, 1; key 3: none.
    assert.equal(seg.numChunks, 4);
    assert.deepEqual([...seg.chunks], [0, 2, 2, 4, 4, 6, 6, 7]);
    assert.deepEqual([...seg.keyChunks], [0, 1, 1, 4, 4]);
  });
  await t.step("refuses a key index outside [0, K)", () => {
    assert.throws(() => segmentRowsByKey(Int32Array.from([0, 5]), 2, 3), RangeError);
  });
});
