/**
 * Decoding input messages (`src/wire/decode.ts`): model key from the subject, the accepted JSON
 * and float32 forms, and the dead-letter reason of every bad kind.
 */
import assert from "node:assert/strict";
import { decodeMessage, encodeF32 } from "../src/wire/decode.ts";

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
