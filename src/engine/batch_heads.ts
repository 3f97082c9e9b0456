/**
 * A batch's heads: the head of every key that has rows, with a new key drafted from its first
 * batch, and the score-only check that every such key is already known (`unknown_key`); and the
 * check of a batch's shape that every engine makes first.
 *
 * @module
 */
import { EngineError } from "./errors.ts";
import type { Head, HeadBank } from "./head_bank.ts";
import { checkFinite, finiteHead } from "./overflow.ts";
import { gatherRows } from "./row_groups.ts";
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
): { heads: Head[]; created: Uint8Array } {
  const heads: Head[] = new Array(Ka);
  const created = new Uint8Array(Ka);
  for (let j = 0; j < Ka; j++) {
    const k = active[j];
    let h = bank.head(batch.keys[k]);
    if (h === undefined) {
      const rows = rowsOf(k);
      const use = learnedOf(rows);
      const seed = use.length > 0 ? use : rows;
      checkFinite(batch.values, seed, d);
      h = bank.draft(
        batch.keys[k],
        gatherRows(batch.values, seed, d),
        seed.length,
        use.length > 0 ? weightsOf(seed) : undefined,
      );
      // Finite readings so large that a new key's first statistics overflow: no head to score
      // them against yet, so the batch is refused as before (nothing was adopted).
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
  return { heads, created };
}
