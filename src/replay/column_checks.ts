/**
 * Replay's once-per-key check of its first training rows for constant and collinear columns
 * (`degenerate_columns.ts`): each key's column moments until it has `init_rows` training rows (or
 * the input ends), then one warning per degenerate column and an entry in the summary.
 *
 * @module
 */
import type { DegenerateEntry } from "../../schemas/replay.ts";
import { CsvParser, type FieldSpec, type RowParser } from "../io/row_parser.ts";
import {
  ColumnMoments,
  ColumnMomentsSlab,
  degenerateColumns,
  describeDegenerate,
} from "./degenerate_columns.ts";
import type { KeyTable } from "./key_table.ts";

/** The column checks of one replay, keyed by the key table's ids. */
export class ColumnChecks {
  /** The degenerate columns found so far, in the order their keys were checked. */
  readonly degenerate: DegenerateEntry[] = [];
  readonly #dim: number;
  readonly #initRows: number;
  readonly #keys: KeyTable;
  readonly #fields: FieldSpec;
  readonly #warn: (text: string) => void;
  readonly #moments: ColumnMomentsSlab;
  /** What a key's moments are read into for its check (it keeps nothing of them but the count). */
  readonly #checked: ColumnMoments;
  /**
   * Rows queued for their keys' moments (slot, key id, readings), added by {@link flush} in one
   * tight loop: with many keys each row's moments are a cache miss, and misses taken together
   * overlap where one between two rows' parsing each stalls alone (issue 13).
   */
  #slots = new Int32Array(256);
  #ids = new Int32Array(256);
  #values: Float64Array;
  #queued = 0;

  /** `warn`: one warning line per degenerate column. */
  constructor(
    dim: number,
    initRows: number,
    keys: KeyTable,
    fields: FieldSpec,
    warn: (text: string) => void,
  ) {
    this.#dim = dim;
    this.#initRows = initRows;
    this.#keys = keys;
    this.#fields = fields;
    this.#warn = warn;
    this.#moments = new ColumnMomentsSlab(dim);
    this.#checked = new ColumnMoments(dim);
    this.#values = new Float64Array(256 * dim);
  }

  /** Moments for a new key (the slot the key table keeps for it). */
  alloc(): number {
    return this.#moments.alloc();
  }

  /**
   * Takes a key's training row (its `seen`-th row, 0-based: training rows are a key's first
   * ones) for its moments, unless the key has its `init_rows` already; `parser` read it.
   */
  add(id: number, seen: number, values: ArrayLike<number>, parser: RowParser): void {
    if (seen >= this.#initRows) return;
    const slot = this.#keys.moments(id);
    if (slot < 0) return;
    this.#keys.setParser(id, parser);
    const q = this.#queued++, d = this.#dim;
    if (q === this.#slots.length) this.#grow();
    this.#slots[q] = slot;
    this.#ids[q] = id;
    for (let a = 0; a < d; a++) this.#values[q * d + a] = values[a];
  }

  /** Adds the queued rows to their keys' moments; checks each key that reaches `init_rows`. */
  flush(): void {
    const n = this.#queued, d = this.#dim, moments = this.#moments;
    this.#queued = 0;
    for (let q = 0; q < n; q++) {
      if (moments.add(this.#slots[q], this.#values, q * d) >= this.#initRows) {
        this.#check(this.#ids[q]);
      }
    }
  }

  /** At the end of the input: checks every key not checked yet, on the rows it had. */
  finish(): void {
    this.flush();
    for (let id = 0; id < this.#keys.size; id++) this.#check(id);
  }

  #grow(): void {
    const n = 2 * this.#slots.length;
    const slots = new Int32Array(n), ids = new Int32Array(n);
    slots.set(this.#slots);
    ids.set(this.#ids);
    const values = new Float64Array(n * this.#dim);
    values.set(this.#values);
    this.#slots = slots;
    this.#ids = ids;
    this.#values = values;
  }

  /** Checks a key's training rows so far (once per key: its moments are freed). */
  #check(id: number): void {
    const keys = this.#keys;
    const slot = keys.moments(id);
    if (slot < 0) return;
    const m = this.#moments.take(slot, this.#checked);
    keys.setMoments(id, -1);
    const parser = keys.parser(id);
    const names = parser?.valueNames ?? [];
    const raw = parser instanceof CsvParser ? parser.valueColumns : this.#fields.columns;
    const found = degenerateColumns(m);
    if (found.length === 0) return;
    const key = keys.name(id);
    for (const c of found) {
      this.degenerate.push({
        key,
        index: c.index,
        column: raw?.[c.index] ?? null,
        kind: c.kind,
        with: [...c.with],
        rows: m.count,
      });
      this.#warn(describeDegenerate(key, c, names, m.count));
    }
  }
}
