/**
 * The slots of drafted heads (`HeadBank.draft`) until a batch commits: then those not adopted —
 * a refused batch's, a key's first draft when it was drafted again — are freed. Two lists, not a
 * map: with many keys a map that gains and loses an entry per new key rebuilds its table again
 * and again (issue 13).
 *
 * @module
 */

/** Drafted heads' keys and slots, in order. */
export class Drafts {
  readonly #keys: string[] = [];
  readonly #slots: number[] = [];

  add(key: string, slot: number): void {
    this.#keys.push(key);
    this.#slots.push(slot);
  }

  /** Forgets the latest draft (adopted at once: nothing to free). */
  dropLatest(): void {
    this.#keys.pop();
    this.#slots.pop();
  }

  /** Frees (`release`) every draft whose key does not hold its slot (`slotOf`), and forgets all. */
  sweep(slotOf: (key: string) => number | undefined, release: (slot: number) => void): void {
    const keys = this.#keys, slots = this.#slots;
    for (let i = 0; i < slots.length; i++) if (slotOf(keys[i]) !== slots[i]) release(slots[i]);
    keys.length = 0;
    slots.length = 0;
  }
}
