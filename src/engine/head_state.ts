/**
 * The forms of a {@link Head} of `head.ts`: a blank one, validation of given parameters, the
 * snapshot, and the checkpoint state (`HeadState`) — export, validation and restore.
 *
 * @module
 */
import { covarianceOf, packLower, toArray, toRows, unpackLower } from "../model/linalg.ts";
import type { Head } from "./head.ts";
import type { HeadStore } from "./head_slab.ts";
import type { DiagTransform, HeadParams, HeadSnapshot, HeadState } from "./types.ts";

/**
 * A blank head in a fresh slot of `store`: identity frame, zero θ and counters, nothing cached.
 * The caller sets θ and derives the effective parameters. `j`: see {@link HeadStore.load};
 * default: a standalone copy, which the caller saves (`HeadStore.save`).
 */
export function blankHead(store: HeadStore, key: string, j = -1): Head {
  const d = store.d;
  // j ≥ 0: batch position j's working copy (`HeadStore.load`), no new head or views per new key.
  const h = j >= 0 ? store.load(j, key, store.alloc()) : store.head(key, store.alloc());
  for (let a = 0; a < d; a++) h.frameTril[a * d + a] = 1;
  h.init = null;
  h.thrN = NaN;
  h.thr = Infinity;
  h.cutN = NaN;
  h.cut = Infinity;
  return h;
}

/** Throws unless `params` are d finite loc values and a d×d lower-triangular, positive-diagonal tril. */
export function checkHeadParams(key: string, params: HeadParams, d: number): void {
  if (params.loc.length !== d || params.scale_tril.length !== d) {
    throw new RangeError(
      `expected loc of ${d} numbers and scale_tril of ${d} rows for key '${key}', found ${params.loc.length} and ${params.scale_tril.length}`,
    );
  }
  for (let a = 0; a < d; a++) {
    const row = params.scale_tril[a];
    if (row.length !== d) {
      throw new RangeError(`expected scale_tril row ${a} of ${d} numbers, found ${row.length}`);
    }
    if (!Number.isFinite(params.loc[a])) {
      throw new RangeError(`expected finite loc[${a}], found ${params.loc[a]}`);
    }
    for (let b = 0; b < d; b++) {
      const v = row[b];
      if (!Number.isFinite(v)) {
        throw new RangeError(`expected finite scale_tril[${a}][${b}], found ${v}`);
      }
      if (b > a && v !== 0) {
        throw new RangeError(`expected lower-triangular scale_tril, found ${v} at [${a}][${b}]`);
      }
      if (b === a && !(v > 0)) {
        throw new RangeError(`expected a positive diagonal, found scale_tril[${a}][${a}] = ${v}`);
      }
    }
  }
}

/** The head's public parameters and counters. */
export function headSnapshot(h: Head, d: number): HeadSnapshot {
  const loc = new Float64Array(d);
  for (let a = 0; a < d; a++) loc[a] = h.frameLoc[a] + h.locC[a];
  return {
    key: h.key,
    dim: d,
    loc: toArray(loc),
    scale_tril: toRows(h.tril, d),
    covariance: covarianceOf(h.tril, d),
    observations: h.observations,
    steps: h.steps,
    rejected_updates: h.rejected,
  };
}

/** The head's checkpoint state; `natural`: with the memory and the initialisation's Σw². */
export function headToState(h: Head, d: number, diag: DiagTransform, natural: boolean): HeadState {
  return {
    key: h.key,
    dim: d,
    diag,
    frame_loc: toArray(h.frameLoc),
    frame_tril: packLower(h.frameTril, d),
    theta: toArray(h.theta),
    adam_m: toArray(h.m),
    adam_v: toArray(h.v),
    steps: h.steps,
    observations: h.observations,
    rejected_updates: h.rejected,
    preset: h.preset,
    ...(natural
      ? { memory: { w: h.wSum, w2: h.w2Sum, cusum: h.cusum, restarts: h.restarts } }
      : {}),
    init: h.init === null ? null : {
      count: h.init.count,
      ...(natural ? { w2: h.init.w2 } : {}),
      mean: toArray(h.init.mean),
      scatter: packLower(h.init.scatter, d),
    },
  };
}

/** Throws unless `s` is a state of dimension d, diagonal transform `diag` and θ length P. */
export function checkHeadState(s: HeadState, d: number, P: number, diag: DiagTransform): void {
  if (s.dim !== d) {
    throw new RangeError(`expected state of dimension ${d} for '${s.key}', found ${s.dim}`);
  }
  if (s.diag !== diag) {
    throw new RangeError(
      `expected state with diag transform '${diag}' for '${s.key}', found '${s.diag}'`,
    );
  }
  const lens: [string, number, number][] = [
    ["frame_loc", s.frame_loc.length, d],
    ["frame_tril", s.frame_tril.length, (d * (d + 1)) / 2],
    ["theta", s.theta.length, P],
    ["adam_m", s.adam_m.length, P],
    ["adam_v", s.adam_v.length, P],
  ];
  for (const [name, got, want] of lens) {
    if (got !== want) {
      throw new RangeError(`expected ${want} numbers in ${name} of '${s.key}', found ${got}`);
    }
  }
}

/**
 * Writes a (checked) state into a blank head: frame, θ, Adam moments, counters, memory and
 * initialisation statistics. The effective parameters are the caller's to refresh. Checkpoints from
 * before the natural step have no memory: every observation counts once, up to a full memory
 * under forgetting factor `lambda`.
 */
export function restoreHead(h: Head, s: HeadState, d: number, lambda: number): void {
  h.frameLoc.set(s.frame_loc);
  unpackLower(s.frame_tril, d, h.frameTril);
  h.theta.set(s.theta);
  h.m.set(s.adam_m);
  h.v.set(s.adam_v);
  h.steps = s.steps;
  h.observations = s.observations;
  h.rejected = s.rejected_updates;
  h.preset = s.preset ?? false;
  const lam = lambda;
  const full = lam < 1 ? 1 / (1 - lam) : Infinity;
  const mem = s.memory;
  h.wSum = mem?.w ?? Math.min(s.observations, full);
  h.w2Sum = mem?.w2 ??
    (lam < 1 && s.observations > full ? 1 / (1 - lam * lam) : Math.min(s.observations, full));
  h.cusum = mem?.cusum ?? 0;
  h.restarts = mem?.restarts ?? 0;
  h.init = s.init === null ? null : {
    count: s.init.count,
    w2: s.init.w2 ?? s.init.count,
    mean: Float64Array.from(s.init.mean),
    scatter: unpackLower(s.init.scatter, d),
  };
}
