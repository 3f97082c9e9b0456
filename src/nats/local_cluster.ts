/**
 * A local nats-server cluster on loopback (JetStream, stores in a temp directory, free ports,
 * cluster routes between all nodes, optionally the partition mapping on every node): used by
 * `deno task cluster` and the scale-out tests. `await using cluster = await startNatsCluster()`;
 * `stopNode(i)` / `restartNode(i)` for one node.
 *
 * @module
 */
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { NatsServerProcess } from "./server_process.ts";
import { partitionMapping } from "./partitions.ts";

/** A running local cluster. */
export interface TestNatsCluster extends AsyncDisposable {
  /** Client URLs of the nodes, in order. */
  readonly urls: readonly string[];
  /** The URLs, comma-separated (a `NATS_URL`). */
  readonly url: string;
  readonly dir: string;
  stopNode(i: number): Promise<void>;
  restartNode(i: number): Promise<void>;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (closed again: there is a small window for a race). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * Starts `nodes` (default 3) servers with cluster routes to each other and waits, with a
 * deadline, until JetStream answers through every node (a meta leader was elected).
 */
export async function startNatsCluster(
  opts: {
    nodes?: number;
    partitions?: number;
    prefix?: string;
    readyTimeoutMs?: number;
    /** Servers in their own sessions (see `NatsServerOptions.detached`). */
    detached?: boolean;
  } = {},
): Promise<TestNatsCluster> {
  const nodes = opts.nodes ?? 3;
  const dir = await Deno.makeTempDir({ prefix: "mvn-cluster-" });
  const clusterPorts = Array.from({ length: nodes }, () => freePort());
  const clientPorts = Array.from({ length: nodes }, () => freePort());
  const routes = clusterPorts.map((p) => `nats://127.0.0.1:${p}`);
  const servers: (NatsServerProcess | undefined)[] = [];
  const stopAll = async () => {
    await Promise.all(servers.map((s) => s?.stop()));
  };
  try {
    await Promise.all(Array.from({ length: nodes }, async (_, i) => {
      servers[i] = await NatsServerProcess.start({
        storeDir: join(dir, `n${i}`, "store"),
        workDir: join(dir, `n${i}`, "run"),
        port: clientPorts[i],
        serverName: `n${i}`,
        detached: opts.detached,
        readyTimeoutMs: opts.readyTimeoutMs ?? 30_000,
        extraConfig: `cluster {\n  name: "mvn-test"\n  listen: "127.0.0.1:${clusterPorts[i]}"\n` +
          `  routes: [${routes.map((r) => JSON.stringify(r)).join(", ")}]\n}\n` +
          (opts.partitions === undefined
            ? ""
            : partitionMapping(opts.prefix ?? "telemetry", opts.partitions)),
      });
    }));
    const urls = servers.map((s) => s!.url);
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
    for (const url of urls) await waitJetStream(url, deadline);
    return {
      urls,
      url: urls.join(","),
      dir,
      stopNode: (i) => servers[i]!.stop(),
      restartNode: async (i) => {
        await servers[i]!.restart();
        await waitJetStream(urls[i], Date.now() + (opts.readyTimeoutMs ?? 30_000));
      },
      stop: stopAll,
      async [Symbol.asyncDispose]() {
        await stopAll();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      },
    };
  } catch (e) {
    await stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}

/** Waits until the JetStream API answers on `url` (the cluster has a meta leader). */
async function waitJetStream(url: string, deadline: number): Promise<void> {
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const nc = await connect({ servers: url, timeout: 2000 });
      try {
        await (await jetstreamManager(nc, { timeout: 2000 })).getAccountInfo();
        return;
      } finally {
        await nc.close();
      }
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`timed out waiting for JetStream on ${url}: ${last}`);
}
