/**
 * One key's state in the conditional head (counters, whitening frame, network weights and their
 * Adam moments and average, feature standardiser, latest context, replay memory), how a key
 * starts (fresh, or preset from given parameters), and its JSON form in checkpoints.
 *
 * @module
 */
import type { HeadConfig } from "../../config/head_config.ts";
import { packLower, unpackLower } from "../../model/linalg.ts";
import type { ConditionalArchitecture, HeadParams, HeadState } from "../types.ts";
import { logDiag, type WhiteningFrame } from "./frame.ts";
import { initTheta, type NetLayout } from "./network.ts";
import {
  memoryToJson,
  newReplayMemory,
  type ReplayMemory,
  restoreMemory,
} from "./replay_memory.ts";
import { newStandardiser, type Standardiser } from "./standardiser.ts";

/** One key's state. */
export interface CondKey extends WhiteningFrame {
  readonly key: string;
  observations: number;
  steps: number;
  rejected: number;
  preset: boolean;
  theta: Float64Array;
  /** Moving average of θ (what scores and snapshots use); θ itself when averaging is off. */
  avg: Float64Array;
  adamM: Float64Array;
  adamV: Float64Array;
  /** Feature standardiser (Welford). */
  readonly std: Standardiser;
  /** Latest raw context seen. */
  context: Float64Array | null;
  /** Recent learned rows (ring buffer; raw values, raw context, robust weight), replayed in steps. */
  readonly memory: ReplayMemory;
}

/** What a key's state is shaped by: the head's configuration and network. */
export interface KeyShape {
  readonly config: HeadConfig;
  readonly layout: NetLayout;
  readonly architecture: ConditionalArchitecture;
  /** Context width F. */
  readonly F: number;
}

/** A new key: initialising, identity frame, network at its initial weights. */
export function newKeyState(key: string, shape: KeyShape): CondKey {
  const { config, layout, F } = shape;
  const d = config.dim;
  const frameTril = new Float64Array(d * d);
  for (let a = 0; a < d; a++) frameTril[a * d + a] = 1;
  return {
    key,
    observations: 0,
    steps: 0,
    rejected: 0,
    preset: false,
    init: { count: 0, mean: new Float64Array(d), scatter: new Float64Array(d * d) },
    frameLoc: new Float64Array(d),
    frameTril,
    frameLogDet: 0,
    theta: initTheta(layout, d, config.diag),
    avg: initTheta(layout, d, config.diag),
    adamM: new Float64Array(layout.size),
    adamV: new Float64Array(layout.size),
    std: newStandardiser(F),
    context: null,
    memory: newReplayMemory(config.memory, d, F),
  };
}

/**
 * A key started from given parameters: they become its frame and the network starts at them
 * (loc′ = 0, scale_tril′ = I at every context); anomalies are flagged without warm-up.
 */
export function presetKeyState(key: string, params: HeadParams, shape: KeyShape): CondKey {
  const d = shape.config.dim;
  const h = newKeyState(key, shape);
  h.init = null;
  h.preset = true;
  h.frameLoc.set(params.loc);
  for (let a = 0; a < d; a++) {
    for (let b = 0; b <= a; b++) h.frameTril[a * d + b] = params.scale_tril[a][b];
    for (let b = a + 1; b < d; b++) h.frameTril[a * d + b] = 0;
  }
  h.frameLogDet = logDiag(h.frameTril, d);
  return h;
}

/** A key's state as plain numbers. */
export function keyStateToJson(h: CondKey, shape: KeyShape): HeadState {
  const { config, architecture, F } = shape;
  const d = config.dim;
  return {
    key: h.key,
    dim: d,
    diag: config.diag,
    frame_loc: Array.from(h.frameLoc),
    frame_tril: packLower(h.frameTril, d),
    theta: Array.from(h.theta),
    adam_m: Array.from(h.adamM),
    adam_v: Array.from(h.adamV),
    steps: h.steps,
    observations: h.observations,
    rejected_updates: h.rejected,
    preset: h.preset,
    init: h.init === null ? null : {
      count: h.init.count,
      mean: Array.from(h.init.mean),
      scatter: packLower(h.init.scatter, d),
    },
    head: "conditional" as const,
    conditional: {
      architecture,
      standardiser: {
        count: h.std.count,
        mean: Array.from(h.std.mean),
        m2: Array.from(h.std.m2),
      },
      context: h.context === null ? null : Array.from(h.context),
      average: Array.from(h.avg),
      memory: memoryToJson(h.memory, d, F),
    },
  };
}

/**
 * A key's state from its JSON form; a RangeError when it is not a conditional head's or its
 * network differs from this head's.
 */
export function keyStateFromJson(s: HeadState, shape: KeyShape): CondKey {
  const { config, layout, F } = shape;
  const d = config.dim;
  const c = s.conditional;
  if (s.head !== "conditional" || c === undefined) {
    throw new RangeError(
      `key '${s.key}': expected a conditional head's state, found an unconditional one`,
    );
  }
  const a = c.architecture;
  const want = shape.architecture;
  if (
    s.dim !== d || a.inputs !== want.inputs || a.activation !== want.activation ||
    a.hidden.join(",") !== want.hidden.join(",") || s.diag !== config.diag ||
    s.theta.length !== layout.size
  ) {
    throw new RangeError(
      `key '${s.key}': expected a network ${JSON.stringify(want)} of dim ${d}, found ${
        JSON.stringify(a)
      } of dim ${s.dim}`,
    );
  }
  const h = newKeyState(s.key, shape);
  h.observations = s.observations;
  h.steps = s.steps;
  h.rejected = s.rejected_updates;
  h.preset = s.preset === true;
  h.frameLoc.set(s.frame_loc);
  unpackLower(s.frame_tril, d, h.frameTril);
  h.frameLogDet = logDiag(h.frameTril, d);
  h.theta = Float64Array.from(s.theta);
  h.avg = c.average !== undefined && c.average.length === s.theta.length
    ? Float64Array.from(c.average)
    : h.theta.slice();
  h.adamM = Float64Array.from(s.adam_m);
  h.adamV = Float64Array.from(s.adam_v);
  if (s.init === null) h.init = null;
  else {
    const scatter = new Float64Array(d * d);
    unpackLower(s.init.scatter, d, scatter);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < i; j++) scatter[j * d + i] = scatter[i * d + j];
    }
    h.init = { count: s.init.count, mean: Float64Array.from(s.init.mean), scatter };
  }
  h.std.count = c.standardiser.count;
  h.std.mean.set(c.standardiser.mean.slice(0, F));
  h.std.m2.set(c.standardiser.m2.slice(0, F));
  h.context = c.context === null ? null : Float64Array.from(c.context);
  restoreMemory(h.memory, c.memory, config.memory, d, F);
  return h;
}
