/**
 * Bare relay mode for the `live` benchmark: the worker's consumer, pull, parse, publish (one record
 * per observation, acknowledged) and ack path with no model: the live loop with the stand-in
 * engine's zero scores (`src/engine/stand_in.ts`) and this store that keeps no checkpoints, so
 * that the benchmark measures the I/O pipeline alone, with the same consumer settings.
 *
 * @module
 */
import type { Checkpoint } from "../../schemas/messages.ts";
import type { CheckpointStore } from "./ports.ts";

/** Keeps no checkpoints (relay mode). */
export class NullCheckpointStore implements CheckpointStore {
  loadAll(): Promise<number> {
    return Promise.resolve(0);
  }
  load(): Promise<Checkpoint[]> {
    return Promise.resolve([]);
  }
  save(): Promise<void> {
    return Promise.resolve();
  }
}
