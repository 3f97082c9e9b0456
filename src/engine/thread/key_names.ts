/**
 * Key names across the thread boundary for batches with dense key ids (`ObservationBatch.keyIds`):
 * each key's name crosses once, with the first batch that has it, and the compute thread keeps it
 * by id. With many keys a batch names thousands of them, and cloning every name with every batch
 * cost both threads time and left a fresh copy per key and batch behind (issue 13).
 *
 * @module
 */
import type { ObservationBatch } from "../types.ts";

/** The names a batch carries that the thread has not seen: their ids and names. */
export interface FreshKeys {
  readonly ids: Uint32Array;
  readonly names: readonly string[];
}

/** Caller's side: which key ids the thread knows the names of. */
export class SentKeys {
  #sent = new Uint8Array(1024);

  /** The batch's keys the thread does not know yet (marked known from now on). */
  fresh(batch: ObservationBatch & { readonly keyIds: Uint32Array }): FreshKeys {
    const ids: number[] = [], names: string[] = [];
    const keyIds = batch.keyIds;
    for (let k = 0; k < keyIds.length; k++) {
      const id = keyIds[k];
      if (id >= this.#sent.length) {
        const grown = new Uint8Array(Math.max(id + 1, 2 * this.#sent.length));
        grown.set(this.#sent);
        this.#sent = grown;
      }
      if (this.#sent[id] === 1) continue;
      this.#sent[id] = 1;
      ids.push(id);
      names.push(batch.keys[k]);
    }
    return { ids: Uint32Array.from(ids), names };
  }
}

/** Thread's side: key names by id. */
export class KeyNames {
  readonly #names: string[] = [];

  /** The batch's `keys` rebuilt from its ids, after learning the fresh names it carries. */
  keysOf(keyIds: Uint32Array, fresh: FreshKeys): string[] {
    for (let i = 0; i < fresh.ids.length; i++) this.#names[fresh.ids[i]] = fresh.names[i];
    const keys = new Array<string>(keyIds.length);
    for (let k = 0; k < keyIds.length; k++) {
      const name = this.#names[keyIds[k]];
      if (name === undefined) {
        throw new RangeError(
          `expected the name of key id ${keyIds[k]} to have been sent, found none`,
        );
      }
      keys[k] = name;
    }
    return keys;
  }
}
