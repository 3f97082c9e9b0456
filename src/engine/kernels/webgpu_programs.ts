/**
 * WGSL programs of the fused MVN op for tfjs-backend-webgpu's program interface
 * (`WebGPUProgram` + `backend.runWebGPUProgram`). The dimension d is a compiled constant, so the
 * forward substitution runs over a private array and each d gets its own cached pipeline
 * (tfjs caches pipelines by `shaderKey`).
 *
 * Stages (all float32):
 *   rows:     one thread per row → [m2, w, z_0..z_{d−1}]                (n × (d+2))
 *   m2/contrib: unpack of the rows output                              (n, n × d)
 *   chunks:   one thread per (chunk, statistic), chunks from `row_segments.ts` (C × S)
 *   keys:     one thread per (key, statistic), summing that key's chunks (K × S)
 *
 * @module
 */
import type { WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { statsWidth } from "./fused_kernel.ts";

const WORKGROUP = 64;

/** 1-D flat dispatch, as tfjs' own element-wise programs do; tfjs re-shapes it past 65,535 groups. */
function flatDispatch(threads: number): [number, number, number] {
  return [Math.max(1, Math.ceil(threads / WORKGROUP)), 1, 1];
}

abstract class _FlatProgram implements WebGPUProgram {
  readonly dispatchLayout = { x: [0] };
  readonly workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  dispatch: [number, number, number];
  shaderKey: string;
  abstract readonly variableNames: string[];
  abstract readonly uniforms: string;
  constructor(readonly outputShape: number[], threads: number, key: string) {
    this.dispatch = flatDispatch(threads);
    this.shaderKey = key;
  }
  abstract getUserCode(): string;
}

/** Per-row forward substitution, robust weight, and the rows output [m2, w, z…]. */
export class MvnRowsProgram extends _FlatProgram {
  readonly variableNames = ["xs", "keyIdx", "rowWeight", "locs", "trils"];
  readonly uniforms = "numRows : i32, robustC : f32, robustFloor : f32,";
  constructor(readonly n: number, readonly d: number) {
    super([n, d + 2], n, `mvnFusedRows_${d}`);
  }
  getUserCode(): string {
    const d = this.d;
    return `
      const D : i32 = ${d};
      const W : i32 = ${d + 2};
      fn main(index : i32) {
        if (index >= uniforms.numRows) { return; }
        let k = keyIdx[index];
        let xo = index * D;
        let lo = k * D;
        let to = k * D * D;
        var z : array<f32, ${d}>;
        var m2 = 0.0;
        for (var a = 0; a < D; a++) {
          var s = xs[xo + a] - locs[lo + a];
          let row = to + a * D;
          for (var b = 0; b < a; b++) { s = s - trils[row + b] * z[b]; }
          let za = s / trils[row + a];
          z[a] = za;
          m2 = m2 + za * za;
        }
        var rho = 1.0;
        if (!(m2 <= uniforms.robustC)) {
          rho = max(uniforms.robustFloor * uniforms.robustC / m2, exp(-0.5 * (m2 - uniforms.robustC)));
        }
        let o = index * W;
        result[o] = m2;
        result[o + 1] = rowWeight[index] * rho;
        for (var a = 0; a < D; a++) { result[o + 2 + a] = z[a]; }
      }
    `;
  }
}

/** m2 column of the rows output. */
export class MvnM2Program extends _FlatProgram {
  readonly variableNames = ["rows"];
  readonly uniforms = "numRows : i32,";
  constructor(readonly n: number, readonly d: number) {
    super([n], n, `mvnFusedM2_${d}`);
  }
  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index >= uniforms.numRows) { return; }
        result[index] = rows[index * ${this.d + 2}];
      }
    `;
  }
}

/** contrib = z² from the rows output. */
export class MvnContribProgram extends _FlatProgram {
  readonly variableNames = ["rows"];
  readonly uniforms = "numRows : i32,";
  constructor(readonly n: number, readonly d: number) {
    super([n, d], n * d, `mvnFusedContrib_${d}`);
  }
  getUserCode(): string {
    const d = this.d;
    return `
      fn main(index : i32) {
        if (index >= uniforms.numRows * ${d}) { return; }
        let i = index / ${d};
        let z = rows[i * ${d + 2} + 2 + index - i * ${d}];
        result[index] = z * z;
      }
    `;
  }
}

/** WGSL that sets the statistic `s` of one row r into `v`, for layout of `fused_kernel.ts`. */
function _statOfRow(d: number): string {
  return `
      fn statOfRow(s : i32, r : i32, ab : vec2<i32>) -> f32 {
        let o = r * ${d + 2};
        if (s == 0) { return rowWeight[r]; }
        let w = rows[o + 1];
        if (s == 1) { return w; }
        if (s < ${2 + d}) { return w * rows[o + s]; }
        return w * rows[o + 2 + ab.x] * rows[o + 2 + ab.y];
      }
      // Packed lower index p → (a, b) with p = a(a+1)/2 + b, b ≤ a.
      fn pairOf(s : i32) -> vec2<i32> {
        let p = s - ${2 + d};
        if (p < 0) { return vec2<i32>(0, 0); }
        var a = 0;
        loop {
          if ((a + 1) * (a + 2) / 2 > p) { break; }
          a = a + 1;
        }
        return vec2<i32>(a, p - a * (a + 1) / 2);
      }
  `;
}

/** Per (chunk, statistic) partial sums over the chunk's rows. */
export class MvnChunkStatsProgram extends _FlatProgram {
  readonly variableNames = ["rows", "rowWeight", "order", "chunks"];
  readonly uniforms = "numChunks : i32,";
  constructor(readonly numChunks: number, readonly d: number) {
    super([numChunks, statsWidth(d)], numChunks * statsWidth(d), `mvnFusedChunks_${d}`);
  }
  getUserCode(): string {
    const S = statsWidth(this.d);
    return `
      ${_statOfRow(this.d)}
      fn main(index : i32) {
        if (index >= uniforms.numChunks * ${S}) { return; }
        let c = index / ${S};
        let s = index - c * ${S};
        let ab = pairOf(s);
        let end = chunks[2 * c + 1];
        var acc = 0.0;
        for (var t = chunks[2 * c]; t < end; t++) {
          acc = acc + statOfRow(s, order[t], ab);
        }
        result[index] = acc;
      }
    `;
  }
}

/** Per (key, statistic) sums of the key's chunk partials. */
export class MvnKeyStatsProgram extends _FlatProgram {
  readonly variableNames = ["partials", "keyChunks"];
  readonly uniforms = "numKeys : i32,";
  constructor(readonly K: number, readonly d: number) {
    super([K, statsWidth(d)], K * statsWidth(d), `mvnFusedKeys_${d}`);
  }
  getUserCode(): string {
    const S = statsWidth(this.d);
    return `
      fn main(index : i32) {
        if (index >= uniforms.numKeys * ${S}) { return; }
        let k = index / ${S};
        let s = index - k * ${S};
        let end = keyChunks[k + 1];
        var acc = 0.0;
        for (var c = keyChunks[k]; c < end; c++) { acc = acc + partials[c * ${S} + s]; }
        result[index] = acc;
      }
    `;
  }
}
