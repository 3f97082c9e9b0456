/** KV key encoding: model keys as KV-legal single tokens, and back. */
import assert from "node:assert/strict";
import { decodeKvKey, encodeKvKey } from "../src/nats/kv_key.ts";

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
