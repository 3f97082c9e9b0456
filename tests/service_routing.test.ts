/**
 * The scoring service across partitioned workers: 2 workers on one server with the partition
 * mapping; a request lands on either worker (queue group) and still gets the answer of the key's
 * owner, for keys of every partition, equal to an independent computation from the parameters
 * that owner published; a partition nobody owns answers `no_owner` (503, retryable) until a worker
 * takes it.
 */
import assert from "node:assert/strict";
import { createInbox, type NatsConnection } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { ParamsMessage } from "../schemas/messages.ts";
import {
  ownerSubjectPrefix,
  ServiceErrorReply,
  type ServiceScoreRecord,
  ServiceScoreReply,
} from "../schemas/service.ts";
import { topologyFor } from "../src/config/live_config.ts";
import { startWorker } from "../src/live/worker.ts";
import { encodeKvKey } from "../src/nats/kv_key.ts";
import { partitionOf } from "../src/nats/partitions.ts";
import { publishAllAcked } from "../src/nats/publish_retry.ts";
import { openLeaseBucket } from "../src/nats/topology.ts";
import { MvnClient, ScoreServiceError } from "../src/client/client.ts";
import { jetstream } from "@nats-io/jetstream";
import { addInputStream, liveConfig } from "./helpers/live_worker.ts";
import { startNatsServer, waitFor } from "./helpers/nats_server.ts";

const P = 16;
/** Long enough that the stand-in's renewals (every 300 ms) never lapse, even on a busy box. */
const LEASE_MS = 10_000;
const PER_KEY = 12;
/** The partition a stand-in lease holder (no worker) keeps until the last step. */
const GHOST = 5;
const topo = topologyFor("telemetry");

/** Two keys per partition, found by the same hash as the server's mapping. */
function keysOverAllPartitions(): string[] {
  const byPart = new Map<number, string[]>();
  for (let i = 0; byPart.size < P || [...byPart.values()].some((k) => k.length < 2); i++) {
    // One token, two, and five (the mapping hashes the first four).
    const key = [`dev${i}`, `site${i}.pump-${i % 7}`, `r${i}.a.b.c.x${i % 5}`][i % 3];
    const list = byPart.get(partitionOf(key, P)) ?? [];
    if (list.length < 2) list.push(key);
    byPart.set(partitionOf(key, P), list);
  }
  return [...byPart.values()].flat();
}

function obs(i: number, k: number): number[] {
  return [Math.sin(i + k) * 2 + k / 10, Math.cos(i * 0.7) - 3, ((i * 37 + k) % 11) / 5];
}

/** Independent log N(x; loc, L Lᵀ): forward substitution of L z = x − loc. */
function mvnLogProb(x: number[], loc: number[], L: number[][]): number {
  let m2 = 0;
  let logDet = 0;
  const z: number[] = [];
  for (let a = 0; a < x.length; a++) {
    let s = x[a] - loc[a];
    for (let b = 0; b < a; b++) s -= L[a][b] * z[b];
    z.push(s / L[a][a]);
    m2 += z[a] * z[a];
    logDet += Math.log(L[a][a]);
  }
  return -0.5 * m2 - logDet - 0.5 * x.length * Math.log(2 * Math.PI);
}

type Answer = { ok: true; records: ServiceScoreRecord[] } | { ok: false; error: ServiceErrorReply };

async function ask(nc: NatsConnection, key: string, x: number[]): Promise<Answer> {
  const reply = await nc.request(`telemetry.svc.score.${key}`, JSON.stringify({ v: x }), {
    timeout: 20_000,
  });
  if (reply.headers?.get("Nats-Service-Error-Code")) {
    const error = ServiceErrorReply.parse(reply.json());
    assert.equal(reply.headers.get("Nats-Service-Error-Code"), String(error.error.code));
    return { ok: false, error };
  }
  return { ok: true, records: ServiceScoreReply.parse(reply.json()) };
}

/**
 * The key's record. A 503 (`no_owner`) is asked again only while `moved()` says partitions
 * changed hands: with ownership steady, every request must get its answer at once, wherever the
 * queue group sends it (asking again would hide a missing forward).
 */
async function scored(
  nc: NatsConnection,
  key: string,
  x: number[],
  moved: () => boolean,
): Promise<ServiceScoreRecord> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const answer = await ask(nc, key, x);
    if (answer.ok) {
      assert.equal(answer.records.length, 1);
      return answer.records[0];
    }
    if (answer.error.error.code !== 503 || !moved() || Date.now() > deadline) {
      throw new Error(`${key}: ${JSON.stringify(answer.error)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

Deno.test({
  name: "scoring service, 2 partitioned workers: every request gets the key owner's answer",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await using srv = await startNatsServer({ partitions: P });
    const nc = await connect({ servers: srv.url });
    const keys = keysOverAllPartitions();
    const ghostKeys = keys.filter((k) => partitionOf(k, P) === GHOST);
    const ownedKeys = keys.filter((k) => partitionOf(k, P) !== GHOST);
    // A lease held by no worker: the workers leave the partition alone while it is renewed.
    const leases = await openLeaseBucket(nc, topo, LEASE_MS);
    await leases.create(`p.${GHOST}`, JSON.stringify({ worker: "ghost", at: "" }));
    let ghostAlive = true;
    const ghost = (async () => {
      while (ghostAlive) {
        await leases.put(`p.${GHOST}`, JSON.stringify({ worker: "ghost", at: "" }));
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    const config = liveConfig(srv.url, [
      "--lease-ms",
      String(LEASE_MS),
      "--params-every-ms",
      "100",
    ]);
    const quiet = () => {};
    await addInputStream(nc);
    const a = await startWorker(config, { log: quiet, workerId: "a" });
    const b = await startWorker(config, { log: quiet, workerId: "b" });
    try {
      // Both hold partitions, 15 in all (the ghost holds the 16th), none twice.
      // Balanced (8 and 7: each at its target ceil(16 / 2), so no more handovers), none twice.
      await waitFor("the 15 free partitions shared by both workers, 8 and 7", () => {
        const pa = a.partitions!();
        const pb = b.partitions!();
        return [pa.length, pb.length].sort().join() === "7,8" &&
          new Set([...pa, ...pb]).size === P - 1 && !pa.includes(GHOST) && !pb.includes(GHOST);
      }, 90_000);
      await publishAllAcked(
        jetstream(nc),
        keys.flatMap((key, k) =>
          Array.from({ length: PER_KEY }, (_, i) => ({
            subject: `telemetry.obs.${key}`,
            data: JSON.stringify({ v: obs(i, k) }),
            msgID: `${key}-${i}`,
          }))
        ),
        quiet,
      );
      const params = await new Kvm(nc).open(topo.paramsBucket);
      const published = async (key: string): Promise<ParamsMessage | undefined> => {
        const e = await params.get(encodeKvKey(key));
        const p = e === null ? undefined : ParamsMessage.parse(e.json());
        return p?.observations === PER_KEY ? p : undefined;
      };
      const owners = () => JSON.stringify([a.partitions!(), b.partitions!()]);
      const matches = async (key: string, moved: () => boolean) => {
        const p = await published(key);
        assert.ok(p !== undefined, `parameters of ${key}`);
        const x = obs(100, 1);
        // Several requests: the queue group sends some to the worker that does not own the key.
        for (let r = 0; r < 3; r++) {
          const rec = await scored(nc, key, x, moved);
          assert.equal(rec.key, key);
          assert.equal(rec.seq, PER_KEY, `${key}: the owner's observation count`);
          const want = mvnLogProb(x, p.loc, p.scale_tril);
          assert.ok(
            Math.abs(rec.log_prob! - want) <= 1e-9 * Math.max(1, Math.abs(want)),
            `${key}: log_prob ${rec.log_prob}, expected ${want} from its owner's parameters`,
          );
        }
      };

      await t.step(
        "keys of every owned partition answer with their owner's parameters",
        async () => {
          for (const key of ownedKeys) {
            await waitFor(`parameters of ${key}`, async () => (await published(key)) !== undefined);
          }
          // Every partition's loop runs (its owner answers on the internal subject): from here
          // on ownership is steady unless a lease lapses, which `owners()` would show.
          await waitFor("every owned partition's internal endpoint answering", async () => {
            for (const key of ownedKeys) {
              const r = await nc.request(
                `${ownerSubjectPrefix("telemetry", partitionOf(key, P))}${key}`,
                JSON.stringify({ v: obs(0, 0) }),
                { timeout: 20_000 },
              );
              if (r.headers?.get("Nats-Service-Error-Code")) return false;
            }
            return true;
          }, 60_000);
          const steady = owners();
          for (const key of ownedKeys) await matches(key, () => owners() !== steady);
        },
      );

      await t.step("a partition nobody owns: no_owner, 503, on either worker", async () => {
        for (const key of ghostKeys) {
          for (let r = 0; r < 4; r++) {
            const answer = await ask(nc, key, obs(0, 0));
            assert.ok(!answer.ok, `${key}: an error while no worker owns partition ${GHOST}`);
            assert.equal(answer.error.error.code, 503);
            assert.equal(answer.error.error.reason, "no_owner");
            assert.match(answer.error.error.message, new RegExp(`partition ${GHOST}\\b`));
          }
          await assert.rejects(
            new MvnClient(nc, "telemetry").score(key, [obs(0, 0)]),
            (e) => e instanceof ScoreServiceError && e.reason === "no_owner" && e.retryable,
          );
        }
      });

      await t.step("both workers received requests (so requests were forwarded)", async () => {
        const stats = await allStats(nc, 2);
        for (const s of stats) {
          const ep = s.endpoints.find((e) => e.name === "score");
          assert.ok(ep !== undefined && ep.num_requests > 0, JSON.stringify(s));
        }
        const requests = stats.reduce(
          (n, s) => n + (s.endpoints.find((e) => e.name === "score")?.num_requests ?? 0),
          0,
        );
        // (More when a 503 during a handover was asked again.)
        assert.ok(requests >= 3 * ownedKeys.length + 4 * ghostKeys.length, `${requests} requests`);
      });

      await t.step("once a worker takes that partition, its keys answer too", async () => {
        ghostAlive = false;
        await ghost;
        await leases.delete(`p.${GHOST}`);
        for (const key of ghostKeys) {
          await waitFor(`parameters of ${key}`, async () => (await published(key)) !== undefined);
          await matches(key, () => true);
        }
        assert.ok([...a.partitions!(), ...b.partitions!()].includes(GHOST));
      });
    } finally {
      ghostAlive = false;
      await ghost;
      await Promise.all([a.stop(), b.stop()]);
      await nc.close();
    }
  },
});

interface Stats {
  readonly id: string;
  readonly endpoints: { name: string; num_requests: number; num_errors: number }[];
}

/** `$SRV.STATS.mvn` of every instance: waits until `n` answered. */
async function allStats(nc: NatsConnection, n: number): Promise<Stats[]> {
  const inbox = createInbox();
  const got: Stats[] = [];
  const sub = nc.subscribe(inbox, { callback: (_e, m) => void got.push(m.json<Stats>()) });
  try {
    await nc.flush();
    nc.publish("$SRV.STATS.mvn", "", { reply: inbox });
    await waitFor(`${n} instances' stats`, () => got.length >= n, 30_000);
  } finally {
    sub.unsubscribe();
  }
  assert.equal(new Set(got.map((s) => s.id)).size, got.length);
  return got;
}
