/**
 * A batch's heads: the head of every key that has rows, with a new key drafted from its first
 * batch, and the score-only check that every such key is already known (`unknown_key`); and the
 * check of a batch's shape that every engine makes first.
 *
 * @module
 */
import { EngineError } from "./errors.ts";
import type { Head } from "./head.ts";
import type { HeadBank } from "./head_bank.ts";
import { checkFinite, finiteHead } from "./overflow.ts";
import type { ObservationBatch } from "./types.ts";

/** Checks a batch's dimension and that its values and key indices have the lengths it states. */
export function checkBatchShape(batch: ObservationBatch, d: number): void {
  const { n, values, keyIndex } = batch;
  if (batch.dim !== d) throw new RangeError(`expected batch dimension ${d}, found ${batch.dim}`);
  if (values.length !== n * d || keyIndex.length !== n) {
    throw new RangeError(
      `expected ${
        n * d
      } values and ${n} key indices, found ${values.length} and ${keyIndex.length}`,
    );
  }
}

/** Throws `unknown_key` unless the bank holds every key that has rows. */
export function requireKnown(
  bank: HeadBank,
  keys: readonly string[],
  keyIndex: Uint32Array,
): void {
  const seen = new Uint8Array(keys.length);
  for (let i = 0; i < keyIndex.length; i++) {
    const k = keyIndex[i];
    if (k >= keys.length || seen[k] === 1) continue;
    seen[k] = 1;
    if (!bank.has(keys[k])) {
      throw new EngineError("unknown_key", `expected a known model key, found '${keys[k]}'`);
    }
  }
}

/**
 * Heads of the active keys; a new key is drafted from its first batch (the one batch not scored
 * prequentially; warm-up keeps it from flagging anomalies). Rows to learn from seed it, else all
 * rows. created[j]: 1 = new, seeded from rows it learns from; 2 = new, from score-only rows.
 * `gather`: the values of rows (a temporary, read at once); `heads` and `created` are the
 * caller's, reused batch after batch (entries from Ka on are stale).
 */
export function resolveHeads(
  bank: HeadBank,
  d: number,
  batch: ObservationBatch,
  active: Int32Array,
  Ka: number,
  rowsOf: (k: number) => Int32Array,
  learnedOf: (rows: Int32Array) => Int32Array,
  weightsOf: (rows: Int32Array) => Float64Array | undefined,
  gather: (rows: Int32Array) => Float64Array,
  heads: Head[],
  created: Uint8Array,
): void {
  created.fill(0, 0, Ka);
  const ids = batch.keyIds;
  for (let j = 0; j < Ka; j++) {
    const k = active[j];
    let h = bank.batchHead(batch.keys[k], ids === undefined ? -1 : ids[k], j);
    if (h === undefined) {
      const rows = rowsOf(k);
      const use = learnedOf(rows);
      const seed = use.length > 0 ? use : rows;
      checkFinite(batch.values, seed, d);
      const weighted = use.length > 0;
      h = bank.draft(
        batch.keys[k],
        gather(seed),
        seed.length,
        weighted ? weightsOf(seed) : undefined,
        j,
      );
      if (!finiteHead(h)) {
        // Finite readings so large that the first statistics overflow (a sensor sending 1e300):
        // draft from the rows that cannot overflow them; the others are then scored against that
        // draft like a known key's (saturated, weight 0 once their m² overflows).
        const small = tameRows(batch.values, seed, d);
        if (small.length > 0) {
          h = bank.draft(
            batch.keys[k],
            gather(small),
            small.length,
            weighted ? weightsOf(small) : undefined,
            j,
          );
        }
      }
      // None small enough (e.g. a first batch of one such reading): no head to score it against,
      // so the batch is refused (nothing was adopted).
      if (!finiteHead(h)) {
        throw new EngineError(
          "non_finite_input",
          `expected finite values whose statistics do not overflow in the first batch of key '${
            batch.keys[k]
          }'`,
        );
      }
      created[j] = use.length > 0 ? 1 : 2;
    }
    heads[j] = h;
  }
}

/**
 * The rows whose readings are all within B = √(MAX_VALUE / (4·n)) in magnitude (n = rows.length):
 * every deviation between two of them is within 2B, so n squared deviations sum to at most
 * MAX_VALUE and their moments cannot overflow.
 */
export function tameRows(values: Float64Array, rows: Int32Array, d: number): Int32Array {
  const bound = Math.sqrt(Number.MAX_VALUE / (4 * rows.length));
  return rows.filter((i) => {
    for (let a = 0; a < d; a++) if (!(Math.abs(values[i * d + a]) <= bound)) return false;
    return true;
  });
}
