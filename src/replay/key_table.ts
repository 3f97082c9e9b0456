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
   * Open addressing, linear probing, cells at most half full: cell c is the four numbers at 4c …
   * 4c + 3: id + 1 (0: empty), the key's hash, and where its characters are in {@link #chars}
   * (offset, length). A row's lookup hashes the key, reads one cell (the hash rules out other keys
   * almost always) and compares the characters: two cache misses with many keys, as a lookup
   * through a cell holding the key's string costs. But the keys stay out of the JS heap, which V8
   * lets grow to a multiple of what it holds between collections (issue 13: 100,000 keys held
   * ≈ 8 MB there as strings, cells and an array of names).
   */
  #cells = new Int32Array(4 * 2048);
  /** Every key's UTF-16 code units, back to back in order of ids; {@link #used} of them so far. */
  #chars = new Uint16Array(1 << 14);
  #used = 0;
  /** Per id: offset and length of its characters in {@link #chars} (for {@link name}). */
  #spans = new Int32Array(2 * 1024);
  #size = 0;
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
    return this.#size;
  }

  /** The key's id, or −1 for a key not in the table. */
  id(key: string): number {
    const cells = this.#cells, mask = (cells.length >> 2) - 1, chars = this.#chars;
    const h = _hash(key), n = key.length;
    for (let c = h & mask;; c = (c + 1) & mask) {
      const v = cells[4 * c];
      if (v === 0) return -1;
      if (cells[4 * c + 1] !== h || cells[4 * c + 3] !== n) continue;
      const at = cells[4 * c + 2];
      let i = 0;
      while (i < n && chars[at + i] === key.charCodeAt(i)) i++;
      if (i === n) return v - 1;
    }
  }

  /** Puts a cell into the first empty cell of its hash's probe sequence. */
  #place(cells: Int32Array, id: number, h: number, at: number, n: number): void {
    const mask = (cells.length >> 2) - 1;
    let c = h & mask;
    while (cells[4 * c] !== 0) c = (c + 1) & mask;
    cells[4 * c] = id + 1;
    cells[4 * c + 1] = h;
    cells[4 * c + 2] = at;
    cells[4 * c + 3] = n;
  }

  /** Adds a key (not in the table yet) with its column-moments slot; returns its id. */
  add(key: string, moments: number): number {
    const id = this.#size++;
    if (id * _STRIDE === this.#info.length) {
      this.#info = _grown(this.#info, 2 * this.#info.length);
      this.#spans = _grown(this.#spans, 2 * this.#spans.length);
      const bits = new Uint8Array(this.#escapedBits.length * 2);
      bits.set(this.#escapedBits);
      this.#escapedBits = bits;
    }
    const n = key.length, at = this.#used;
    if (at + n > this.#chars.length) {
      const grown = new Uint16Array(Math.max(2 * this.#chars.length, at + n));
      grown.set(this.#chars.subarray(0, at));
      this.#chars = grown;
    }
    for (let i = 0; i < n; i++) this.#chars[at + i] = key.charCodeAt(i);
    this.#used = at + n;
    this.#spans[2 * id] = at;
    this.#spans[2 * id + 1] = n;
    if (4 * (id + 1) > this.#cells.length >> 1) {
      const old = this.#cells, grown = new Int32Array(2 * old.length);
      for (let c = 0; c < old.length; c += 4) {
        if (old[c] !== 0) this.#place(grown, old[c] - 1, old[c + 1], old[c + 2], old[c + 3]);
      }
      this.#cells = grown;
    }
    this.#place(this.#cells, id, _hash(key), at, n);
    if (!_plainJson(key)) {
      this.#escaped.set(id, JSON.stringify(key));
      this.#escapedBits[id >> 3] |= 1 << (id & 7);
    }
    this.#info[id * _STRIDE + _MOMENTS] = moments;
    this.#info[id * _STRIDE + _PARSER] = -1;
    return id;
  }

  /** The key of an id (a new string each time: for messages and the like, not per row). */
  name(id: number): string {
    const at = this.#spans[2 * id], n = this.#spans[2 * id + 1];
    let out = "";
    for (let i = 0; i < n; i += 4096) {
      out += String.fromCharCode(...this.#chars.subarray(at + i, at + Math.min(n, i + 4096)));
    }
    return out;
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

/** `a`'s numbers in a new array of `length`. */
function _grown(a: Int32Array, length: number): Int32Array<ArrayBuffer> {
  const out = new Int32Array(length);
  out.set(a);
  return out;
}

/** FNV-1a over the key's UTF-16 code units. */
function _hash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h & 0x7fffffff;
}

/** Whether JSON.stringify(key) is `"key"`: no quote, backslash, control or lone surrogate. */
function _plainJson(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return false;
  }
  return true;
}
