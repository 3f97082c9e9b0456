/**
 * Test helper: a 3-node nats-server cluster on loopback (see `src/nats/local_cluster.ts`).
 *
 * @module
 */
export { startNatsCluster, type TestNatsCluster } from "../../src/nats/local_cluster.ts";
