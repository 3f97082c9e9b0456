/**
 * A key's replay memory: a ring buffer of its most recent learned rows (raw values, raw context,
 * robust weight) that training steps replay alongside the batch's rows, drawn with a generator
 * seeded by the key and its step count (so a resumed key draws the same rows), and its JSON form.
 *
 * @module
 */
import { mulberry32 } from "../../model/prng.ts";
import type { HeadState } from "../types.ts";

/** Recent learned rows (ring buffer; raw values, raw context, robust weight). */
export interface ReplayMemory {
  readonly values: Float64Array;
  readonly ctx: Float64Array;
  readonly w: Float64Array;
  size: number;
  next: number;
}

/** The replay memory's JSON form in a checkpoint. */
export type ReplayMemoryJson = NonNullable<NonNullable<HeadState["conditional"]>["memory"]>;

/** An empty memory of `capacity` rows of d values and F context columns. */
export function newReplayMemory(capacity: number, d: number, F: number): ReplayMemory {
  return {
    values: new Float64Array(capacity * d),
    ctx: new Float64Array(capacity * F),
    w: new Float64Array(capacity),
    size: 0,
    next: 0,
  };
}

/** FNV-1a hash of a key (seeds its replay draws). */
function hashKey(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The generator of a key's replay draws at a step count. */
export function replayDraws(key: string, steps: number): () => number {
  return mulberry32((steps * 2654435761) ^ hashKey(key));
}

/** A memory row index drawn uniformly with `rand` (the memory is not empty). */
export function drawRow(mem: ReplayMemory, rand: () => number): number {
  return Math.min(mem.size - 1, Math.floor(rand() * mem.size));
}

/**
 * Row i of the batch (values[i·d..], ctx[i·F..]) joins the memory with weight w, overwriting the
 * oldest row once `capacity` are held.
 */
export function remember(
  mem: ReplayMemory,
  values: Float64Array,
  ctx: Float64Array,
  i: number,
  w: number,
  d: number,
  F: number,
  capacity: number,
): void {
  const j = mem.next;
  mem.values.set(values.subarray(i * d, i * d + d), j * d);
  mem.ctx.set(ctx.subarray(i * F, i * F + F), j * F);
  mem.w[j] = w;
  mem.next = (j + 1) % capacity;
  mem.size = Math.min(capacity, mem.size + 1);
}

/** The memory's held rows as plain numbers. */
export function memoryToJson(mem: ReplayMemory, d: number, F: number): ReplayMemoryJson {
  return {
    size: mem.size,
    next: mem.next,
    values: Array.from(mem.values.subarray(0, mem.size * d)),
    context: Array.from(mem.ctx.subarray(0, mem.size * F)),
    weights: Array.from(mem.w.subarray(0, mem.size)),
  };
}

/**
 * Restores a memory from its JSON form; one absent (older checkpoints) or holding more rows than
 * `capacity` leaves it empty.
 */
export function restoreMemory(
  mem: ReplayMemory,
  json: ReplayMemoryJson | undefined,
  capacity: number,
  d: number,
  F: number,
): void {
  if (json === undefined || json.size > capacity) return;
  mem.size = json.size;
  mem.next = json.next % Math.max(1, capacity);
  mem.values.set(json.values.slice(0, json.size * d));
  mem.ctx.set(json.context.slice(0, json.size * F));
  mem.w.set(json.weights.slice(0, json.size));
}
