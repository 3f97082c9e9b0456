/**
 * The learning loop's per-key state (`loop.ts`), in numbered slots: one map from each key in
 * memory to its slot, and per slot the highest applied input sequence (`lastApplied`), the time
 * of the key's last parameter publication (`params.ts`), the revision of its checkpoint
 * (`src/nats/checkpoint_store.ts`) and its alarm state (`src/model/alarm_slots.ts`), in chunks of
 * typed arrays. A map of its own per kind of state,
 * and an object per alarm state, cost ≈ 1 KB of JS heap per key (issue 13: 100,000 keys), which V8
 * let grow several times before collecting. A forgotten key's slot (idle-key eviction) goes to
 * the next new key, its fields reset; only its checkpoint revision is kept (the store must know it
 * when the key comes back, as when it kept every revision in a map of its own).
 *
 * @module
 */
import type { AlarmEpisode, AlarmInput, AlarmState } from "../model/alarm.ts";
import { AlarmSlots } from "../model/alarm_slots.ts";
import type { CheckpointRevisions } from "./ports.ts";

/** Slots per chunk of a column. */
const CHUNK = 4096;

/** One number per slot, in chunks (a new slot holds `initial`). */
class Column {
  readonly #chunks: Float64Array[] = [];
  readonly #initial: number;
  constructor(initial: number) {
    this.#initial = initial;
  }
  get(slot: number): number {
    return this.#chunks[Math.floor(slot / CHUNK)][slot % CHUNK];
  }
  set(slot: number, v: number): void {
    this.#chunks[Math.floor(slot / CHUNK)][slot % CHUNK] = v;
  }
  /** Makes room for `slot` and sets it to the initial value. */
  reset(slot: number): void {
    const i = Math.floor(slot / CHUNK);
    while (this.#chunks.length <= i) {
      this.#chunks.push(new Float64Array(CHUNK).fill(this.#initial));
    }
    this.#chunks[i][slot % CHUNK] = this.#initial;
  }
}

/** The alarm states of the loop's keys, by key (what records and barriers need of them). */
export interface KeyAlarms {
  /** Advances key's state by one observation (see `stepAlarm`); the key must be in memory. */
  step(key: string, obs: AlarmInput<number | string | null>): {
    alarm: boolean;
    closed: AlarmEpisode | null;
  };
  /** Whether key's alarm is on now. */
  isOpen(key: string): boolean;
  /** A copy of key's state (undefined if it holds none). */
  export(key: string): AlarmState | undefined;
}

/** Per-key state of one learning loop; see the module's note. */
export class LoopKeys implements KeyAlarms {
  readonly #slots = new Map<string, number>();
  /** Slots of forgotten keys, to reuse. */
  readonly #free: number[] = [];
  #next = 0;
  readonly #applied = new Column(0);
  readonly #paramsAt = new Column(-Infinity);
  /** Checkpoint revisions (NaN: none known). */
  readonly #revision = new Column(NaN);
  /** Checkpoint revisions of keys not in memory (evicted, or read before the key's slot). */
  readonly #revisionsOut = new Map<string, number>();
  readonly #alarms: AlarmSlots;
  /** Checkpoint revisions by key, for the checkpoint store (`CheckpointStore.keepRevisionsIn`). */
  readonly revisions: CheckpointRevisions = {
    get: (key) => {
      const s = this.#slots.get(key);
      if (s === undefined) return this.#revisionsOut.get(key);
      const r = this.#revision.get(s);
      return Number.isNaN(r) ? undefined : r;
    },
    set: (key, revision) => {
      const s = this.#slots.get(key);
      if (s === undefined) this.#revisionsOut.set(key, revision);
      else this.#revision.set(s, revision);
    },
  };

  constructor(dim: number, alarmThreshold: number, alarmReference: number) {
    this.#alarms = new AlarmSlots(dim, alarmThreshold, alarmReference);
  }

  /** Keys in memory. */
  get size(): number {
    return this.#slots.size;
  }

  has(key: string): boolean {
    return this.#slots.has(key);
  }

  /** Key's highest applied input sequence, undefined for a key not in memory. */
  lastApplied(key: string): number | undefined {
    const s = this.#slots.get(key);
    return s === undefined ? undefined : this.#applied.get(s);
  }

  /** Sets key's highest applied input sequence (taking the key into memory if new). */
  setApplied(key: string, seq: number): void {
    this.#applied.set(this.#slot(key), seq);
  }

  /** Every key in memory → its highest applied input sequence (a copy). */
  appliedMap(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [key, s] of this.#slots) out.set(key, this.#applied.get(s));
    return out;
  }

  /** When key's parameters were last published (−∞: never, or the key is not in memory). */
  paramsAt(key: string): number {
    const s = this.#slots.get(key);
    return s === undefined ? -Infinity : this.#paramsAt.get(s);
  }

  /** Records a publication of key's parameters (nothing for a key not in memory). */
  setParamsAt(key: string, at: number): void {
    const s = this.#slots.get(key);
    if (s !== undefined) this.#paramsAt.set(s, at);
  }

  step(key: string, obs: AlarmInput<number | string | null>): {
    alarm: boolean;
    closed: AlarmEpisode | null;
  } {
    return this.#alarms.step(this.#slot(key), key, obs);
  }

  isOpen(key: string): boolean {
    const s = this.#slots.get(key);
    return s !== undefined && this.#alarms.isOpen(s);
  }

  export(key: string): AlarmState | undefined {
    const s = this.#slots.get(key);
    return s === undefined ? undefined : this.#alarms.export(s);
  }

  /** Restores key's alarm state (a copy of `state`), taking the key into memory if new. */
  importAlarm(key: string, state: AlarmState): void {
    this.#alarms.import(this.#slot(key), state);
  }

  /** Drops everything kept of key but its checkpoint revision (idle-key eviction: its checkpoint holds it). */
  forget(key: string): void {
    const s = this.#slots.get(key);
    if (s === undefined) return;
    this.#slots.delete(key);
    this.#alarms.clear(s);
    const r = this.#revision.get(s);
    if (!Number.isNaN(r)) this.#revisionsOut.set(key, r);
    this.#free.push(s);
  }

  /** Key's slot, a new one (its fields reset) for a key not in memory. */
  #slot(key: string): number {
    const known = this.#slots.get(key);
    if (known !== undefined) return known;
    const s = this.#free.pop() ?? this.#next++;
    this.#applied.reset(s);
    this.#paramsAt.reset(s);
    this.#revision.reset(s);
    const r = this.#revisionsOut.get(key);
    if (r !== undefined) {
      this.#revision.set(s, r);
      this.#revisionsOut.delete(key);
    }
    this.#alarms.clear(s);
    this.#slots.set(key, s);
    return s;
  }
}
