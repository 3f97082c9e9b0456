/**
 * The Deno TCP transport (src/nats/deno_transport.ts) that `connectNats` uses for `nats://` URLs,
 * against a real nats-server: payloads larger than one socket read, order under load, errors on
 * connecting, and reconnection after the server restarts.
 */
import assert from "node:assert/strict";
import type { Msg } from "@nats-io/nats-core";
import { connectNats } from "../src/nats/connect.ts";
import { startNatsServer } from "./helpers/nats_server.ts";

const once = { waitOnFirstConnect: false, maxReconnectAttempts: 0 } as const;

Deno.test("connectNats over the Deno TCP transport", async (t) => {
  await using server = await startNatsServer();

  await t.step("echoes a payload larger than one socket read byte for byte", async () => {
    const nc = await connectNats({ url: server.url }, once);
    try {
      // 900 kB: several 256 KiB reads on the way in, one frame on the way out.
      const payload = new Uint8Array(900_000);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) % 251;
      const got = new Promise<Msg>((resolve) => {
        nc.subscribe("big", { max: 1, callback: (_e, m) => resolve(m) });
      });
      await nc.flush();
      nc.publish("big", payload);
      const m = await got;
      assert.equal(m.data.length, payload.length);
      assert.deepEqual(m.data, payload);
    } finally {
      await nc.close();
    }
  });

  await t.step("delivers 20,000 messages published in one burst, in order", async () => {
    const nc = await connectNats({ url: server.url }, once);
    try {
      const n = 20_000;
      const seen: number[] = [];
      const done = new Promise<void>((resolve) => {
        nc.subscribe("burst", {
          callback: (_e, m) => {
            seen.push(Number(m.string()));
            if (seen.length === n) resolve();
          },
        });
      });
      await nc.flush();
      for (let i = 0; i < n; i++) nc.publish("burst", String(i));
      await done;
      assert.deepEqual(seen, Array.from({ length: n }, (_, i) => i));
    } finally {
      await nc.close();
    }
  });

  await t.step("rejects with a connection error when nothing listens", async () => {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    await assert.rejects(
      () => connectNats({ url: `nats://127.0.0.1:${port}` }, once),
      (e: unknown) => e instanceof Error && /refused/i.test(e.message),
    );
  });

  await t.step("reconnects after the server restarts and serves requests again", async () => {
    const nc = await connectNats({ url: server.url }, { maxReconnectAttempts: -1 });
    try {
      const events: string[] = [];
      (async () => {
        for await (const s of nc.status()) events.push(s.type);
      })();
      assert.ok((await nc.rtt()) >= 0);
      await server.restart();
      const deadline = Date.now() + 120_000;
      while (!events.includes("reconnect")) {
        assert.ok(Date.now() < deadline, `expected a reconnect, found events ${events}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(events.includes("disconnect"));
      assert.ok((await nc.rtt()) >= 0);
    } finally {
      await nc.close();
    }
  });
});
