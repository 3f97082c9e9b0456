/**
 * Key partitions: the server's account subject mapping (`deploy/nats/partitions.conf`) rewrites
 * `<prefix>.obs.<key>` to `<prefix>.obs.<N>.<key>` with N = fnv32a(first ≤ 4 key tokens,
 * concatenated) mod P, so publishers keep publishing on the key's subject and each partition is
 * one subject filter (`<prefix>.obs.<N>.>`). {@link partitionMapping} writes the mapping,
 * {@link probePartitions} checks at start-up that the connected server applies it with the same P.
 *
 * @module
 */
import { headers, type NatsConnection } from "@nats-io/nats-core";

/**
 * A request named a key of a partition that this worker does not own (now): the scoring service
 * answers `no_owner` (503, retryable) rather than 404, as the key may well exist elsewhere.
 */
export class PartitionNotOwnedError extends Error {
  readonly code = "no_owner";
  readonly partition: number;

  constructor(partition: number, message: string) {
    super(message);
    this.name = "PartitionNotOwnedError";
    this.partition = partition;
  }
}

/** Key tokens the mapping hashes (keys with more tokens hash their first four). */
export const HASHED_TOKENS = 4;

/** nats-server's `partition(P, …)`: fnv32a of the hashed tokens, concatenated, modulo P. */
export function partitionOf(key: string, partitions: number): number {
  const hashed = key.split(".").slice(0, HASHED_TOKENS).join("");
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(hashed)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitions;
}

/**
 * The `mappings` block for `prefix` and `partitions` (nats-server ≥ 2.8 configuration syntax):
 * one line per key length 1–4 (every token hashed) and one for longer keys (the first four).
 */
export function partitionMapping(prefix: string, partitions: number): string {
  const lines: string[] = [];
  for (let n = 1; n <= HASHED_TOKENS + 1; n++) {
    const tokens = Math.min(n, HASHED_TOKENS);
    const idx = Array.from({ length: tokens }, (_, i) => i + 1);
    const more = n > HASHED_TOKENS;
    const src = `${prefix}.obs.${Array(tokens).fill("*").join(".")}${more ? ".>" : ""}`;
    const dest = `${prefix}.obs.{{partition(${partitions},${idx.join(",")})}}.` +
      idx.map((i) => `{{wildcard(${i})}}`).join(".") + (more ? ".>" : "");
    lines.push(`  "${src}": "${dest}"`);
  }
  return `mappings = {\n${lines.join("\n")}\n}\n`;
}

/** What {@link probePartitions} found. */
export type PartitionProbe =
  | { readonly mode: "partitioned"; readonly partitions: number }
  | { readonly mode: "none" }
  /** A mapping is in force but with another partition count (or another shape). */
  | { readonly mode: "mismatch"; readonly detail: string };

/** Key prefix of the probes; never stored (the input stream refuses them). */
export const PROBE_KEY_PREFIX = "_mvn_probe_";

/**
 * Publishes a few probe observations on `<prefix>.obs.<probe key>` with a
 * `Nats-Expected-Stream` header no stream has (so the input stream refuses them: nothing is
 * stored) and looks at the subjects they arrive on: `<prefix>.obs.<N>.<probe key>` with N =
 * {@link partitionOf} means the mapping is in force with `partitions`.
 */
export async function probePartitions(
  nc: NatsConnection,
  prefix: string,
  partitions: number,
  timeoutMs = 3000,
): Promise<PartitionProbe> {
  const nonce = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
  const keys = Array.from({ length: 8 }, (_, i) => `${PROBE_KEY_PREFIX}${nonce}${i}`);
  const seen = new Map<string, string>();
  let done: () => void = () => {};
  const all = new Promise<void>((r) => (done = r));
  const onMsg = (subject: string) => {
    const key = subject.split(".").at(-1)!;
    seen.set(key, subject);
    if (seen.size === keys.length) done();
  };
  const subs = [];
  for (const k of keys) {
    subs.push(nc.subscribe(`${prefix}.obs.${k}`, { callback: (_e, m) => onMsg(m.subject) }));
    subs.push(nc.subscribe(`${prefix}.obs.*.${k}`, { callback: (_e, m) => onMsg(m.subject) }));
  }
  try {
    await nc.flush();
    const h = headers();
    h.set("Nats-Expected-Stream", "_MVN_PROBE_NO_SUCH_STREAM_");
    for (const k of keys) nc.publish(`${prefix}.obs.${k}`, "{}", { headers: h });
    await nc.flush();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([all, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  } finally {
    for (const s of subs) s.unsubscribe();
  }
  if (seen.size === 0) {
    return { mode: "mismatch", detail: "no probe came back within the deadline" };
  }
  const base = prefix.split(".").length + 1;
  let mapped = 0;
  for (const [k, subject] of seen) {
    const tokens = subject.split(".");
    if (tokens.length === base + 1) continue;
    mapped++;
    const got = tokens[base];
    const want = String(partitionOf(k, partitions));
    if (got !== want) {
      return {
        mode: "mismatch",
        detail: `probe key ${k} went to partition ${got}, expected ${want} of ${partitions} ` +
          `(is the mapping's partition count other than --partitions ${partitions}?)`,
      };
    }
  }
  if (mapped === 0) return { mode: "none" };
  if (mapped < seen.size) {
    return { mode: "mismatch", detail: "some probes were mapped to partitions and others not" };
  }
  return { mode: "partitioned", partitions };
}
