/** The live worker's configuration: flags and environment, defaults and errors. */
import assert from "node:assert/strict";
import { ConfigError, parseLiveFlags, resolveLiveConfig } from "../src/config/live_config.ts";
import { loopSettingsOf } from "../src/live/context.ts";
import { LiveMetrics } from "../src/live/metrics.ts";

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
    assert.equal(c.evictIdleS, 0);
  });
  await t.step("--evict-idle-s: seconds to the loop's evictIdleMs; 0 (default) is off", () => {
    const run = {
      obsPrefix: "telemetry.obs.",
      inputStream: "TELEMETRY",
      metrics: new LiveMetrics(),
      log: () => {},
    };
    const on = resolveLiveConfig(parseLiveFlags([]), { MVN_EVICT_IDLE_S: "3600" });
    assert.equal(loopSettingsOf(on, run).evictIdleMs, 3_600_000);
    const off = resolveLiveConfig(parseLiveFlags(["--evict-idle-s", "0"]), {});
    assert.equal(loopSettingsOf(off, run).evictIdleMs, undefined);
    assert.throws(
      () => resolveLiveConfig(parseLiveFlags(["--evict-idle-s=-1"]), {}),
      (e: unknown) => e instanceof ConfigError && /--evict-idle-s="-1"/.test(e.message),
    );
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
