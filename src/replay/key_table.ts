/**
 * Replay's key table: every key read gets a dense id (0, 1, 2, … in order of first appearance),
 * assigned by the one string lookup a row costs. Everything else replay keeps per key — the batch
 * builder's positions, the engine's head slots, the alarms' repeat statistics — is an array
 * indexed by that id (issue 13: with 100,000 keys each extra string lookup per row, and each
 * object per key, cost measurable time and memory).
 *
 * @module
 */
import type { RowParser } from "../io/row_parser.ts";

/** Dense ids of keys, with what the pipeline tracks of each. */
export class KeyTable {
  /**
   * Open addressing, linear probing, cells at most half full: cell c is the pair at 2c, 2c + 1 of
   * (key, id), or (0, 0) when empty. A row's lookup hashes the key's characters, then reads one
   * cell, where the key to compare with sits beside its id: no second, dependent cache miss on an
   * array of names (issue 13: with 100,000 keys each lookup's cache misses are much of a row's
   * extra cost; 4–11 % of the run against an Int32Array of ids). A map of 100,000 keys held ≈ 40 B
   * of JS heap per key, which V8's heap growth multiplied; this is 32–64 B of one array.
   */
  #cells = _emptyCells(2048);
  readonly #names: string[] = [];
  /** JSON text of the keys that need escapes (most keys are plain: their text is `"key"`). */
  readonly #escaped = new Map<number, string>();
  /**
   * One bit per id: set for a key in {@link #escaped}. Score records read it per row, where a
   * map lookup (or a JSON string per key and batch) would cost more than one bit a key.
   */
  #escapedBits = new Uint8Array(1024 / 8);
  /** Parsers that named some key's value columns (one per input file, at most). */
  readonly #parsers: RowParser[] = [];
  /**
   * Per id, side by side (one cache line serves a row's reads, issue 13): rows read so far; slot
   * of its first training rows' column moments until they are checked, else −1; index in
   * {@link #parsers} of the parser of its latest row, −1 for none; its position among the keys of
   * the batch being built, valid while the stamp after it is that batch's (see {@link batchPos}).
   */
  #info = new Int32Array(_STRIDE * 1024);

  get size(): number {
    return this.#names.length;
  }

  /** The key's id, or −1 for a key not in the table. */
  id(key: string): number {
    const cells = this.#cells, mask = (cells.length >> 1) - 1;
    for (let c = _hash(key) & mask;; c = (c + 1) & mask) {
      const k = cells[2 * c];
      if (k === key) return cells[2 * c + 1] as number;
      if (k === 0) return -1;
    }
  }

  /** Puts the key and its id into the first empty cell of the key's probe sequence. */
  #place(cells: (string | number)[], key: string, id: number): void {
    const mask = (cells.length >> 1) - 1;
    let c = _hash(key) & mask;
    while (cells[2 * c] !== 0) c = (c + 1) & mask;
    cells[2 * c] = key;
    cells[2 * c + 1] = id;
  }

  /** Adds a key (not in the table yet) with its column-moments slot; returns its id. */
  add(key: string, moments: number): number {
    const id = this.#names.length;
    if (id * _STRIDE === this.#info.length) {
      const grown = new Int32Array(this.#info.length * 2);
      grown.set(this.#info);
      this.#info = grown;
      const bits = new Uint8Array(this.#escapedBits.length * 2);
      bits.set(this.#escapedBits);
      this.#escapedBits = bits;
    }
    this.#names.push(key);
    if (4 * (id + 1) > this.#cells.length) {
      const grown = _emptyCells(this.#cells.length);
      for (let k = 0; k < id; k++) this.#place(grown, this.#names[k], k);
      this.#cells = grown;
    }
    this.#place(this.#cells, key, id);
    if (!_plainJson(key)) {
      this.#escaped.set(id, JSON.stringify(key));
      this.#escapedBits[id >> 3] |= 1 << (id & 7);
    }
    this.#info[id * _STRIDE + _MOMENTS] = moments;
    this.#info[id * _STRIDE + _PARSER] = -1;
    return id;
  }

  name(id: number): string {
    return this.#names[id];
  }

  /** Every key, in order of first appearance (the id order): the table's own array, which grows. */
  names(): readonly string[] {
    return this.#names;
  }

  /** The key's JSON text when it needs escapes; null for a plain key, whose text is `"key"`. */
  json(id: number): string | null {
    return (this.#escapedBits[id >> 3] & (1 << (id & 7))) === 0 ? null : this.#escaped.get(id)!;
  }

  /**
   * The key's position among the keys of the batch stamped `stamp` (stamps ≥ 1, one batch builder
   * per table); a key not in that batch yet gets `next`, and is in it from now on.
   */
  batchPos(id: number, stamp: number, next: number): number {
    const o = id * _STRIDE, info = this.#info;
    if (info[o + _STAMP] === stamp) return info[o + _POS];
    info[o + _STAMP] = stamp;
    info[o + _POS] = next;
    return next;
  }

  /** Counts one more row of the key; returns the count before it. */
  countRow(id: number): number {
    return this.#info[id * _STRIDE + _ROWS]++;
  }

  moments(id: number): number {
    return this.#info[id * _STRIDE + _MOMENTS];
  }

  setMoments(id: number, slot: number): void {
    this.#info[id * _STRIDE + _MOMENTS] = slot;
  }

  parser(id: number): RowParser | null {
    const p = this.#info[id * _STRIDE + _PARSER];
    return p < 0 ? null : this.#parsers[p];
  }

  setParser(id: number, parser: RowParser): void {
    const cur = this.#info[id * _STRIDE + _PARSER];
    if (cur >= 0 && this.#parsers[cur] === parser) return;
    let p = this.#parsers.lastIndexOf(parser);
    if (p < 0) p = this.#parsers.push(parser) - 1;
    this.#info[id * _STRIDE + _PARSER] = p;
  }
}

const _ROWS = 0, _MOMENTS = 1, _PARSER = 2, _POS = 3, _STAMP = 4, _STRIDE = 5;

/** `n` empty cells (2n numbers), allocated at once: no garbage of intermediate sizes. */
function _emptyCells(n: number): (string | number)[] {
  return new Array<string | number>(2 * n).fill(0);
}

/** FNV-1a over the key's UTF-16 code units. */
function _hash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Whether JSON.stringify(key) is `"key"`: no quote, backslash, control or lone surrogate. */
function _plainJson(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return false;
  }
  return true;
}
