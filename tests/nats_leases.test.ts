/**
 * Partition leases against a real nats-server, with hooks that only record ownership: workers
 * balance to ceil(P / live), a graceful stop hands everything over, a worker whose connection dies
 * abandons its partitions before they expire and the others take them; sampled all along, no
 * partition is ever active in two workers at once.
 */
import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { topologyFor } from "../src/config/live_config.ts";
import { LeaseManager } from "../src/nats/leases.ts";
import { openLeaseBucket } from "../src/nats/topology.ts";
import { startNatsServer, waitFor } from "./helpers/nats_server.ts";

const P = 8;
const LEASE_MS = 2000;

/** A lease manager whose partitions are "active" between acquired and release. */
async function worker(nc: NatsConnection, id: string, active: Map<number, string>) {
  const kv = await openLeaseBucket(nc, topologyFor("telemetry"), LEASE_MS);
  const mine = new Set<number>();
  const overlaps: string[] = [];
  const m = new LeaseManager({
    kv,
    workerId: id,
    partitions: P,
    leaseMs: LEASE_MS,
    log: () => {},
    hooks: {
      acquired: (n) => {
        const other = active.get(n);
        if (other !== undefined) overlaps.push(`${id} acquired ${n} active in ${other}`);
        active.set(n, id);
        mine.add(n);
        return Promise.resolve();
      },
      release: (n) => {
        if (active.get(n) === id) active.delete(n);
        mine.delete(n);
        return Promise.resolve();
      },
    },
  });
  await m.start();
  return { m, mine, overlaps };
}

Deno.test({
  name: "leases: balance, graceful hand-over, a dead connection's partitions move, never shared",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using srv = await startNatsServer();
    const conns = await Promise.all([0, 1, 2].map(() => connect({ servers: srv.url })));
    const active = new Map<number, string>();
    try {
      const a = await worker(conns[0], "a", active);
      const b = await worker(conns[1], "b", active);
      await waitFor("a and b at 4 each", () => a.mine.size === 4 && b.mine.size === 4, 30_000);
      const c = await worker(conns[2], "c", active);
      // ceil(8 / 3) = 3: every worker ends with 2 or 3.
      await waitFor(
        "three workers balanced",
        () => [a, b, c].every((w) => w.mine.size >= 2 && w.mine.size <= 3),
        30_000,
      );
      // Graceful: b's partitions are free at once and the others take them.
      await b.m.stop();
      assert.equal(b.mine.size, 0);
      await waitFor("a and c at 4 each", () => a.mine.size === 4 && c.mine.size === 4, 30_000);
      // c's connection dies: it abandons its partitions (renewals fail), they expire, a takes them.
      await conns[2].close();
      await waitFor("a holds all 8", () => a.mine.size === P, 30_000);
      assert.equal(c.mine.size, 0, "c abandoned everything");
      assert.ok(c.m.owned.length === 0);
      for (const w of [a, b, c]) assert.deepEqual(w.overlaps, []);
      await a.m.stop();
      assert.equal(active.size, 0);
      // c's manager: stopping after its connection died must not hang.
      await c.m.stop().catch(() => {});
    } finally {
      for (const nc of conns) if (!nc.isClosed()) await nc.close();
    }
  },
});
