/**
 * Positive transforms of the raw diagonal of `scale_tril`. Each maps every finite raw value to a
 * finite positive number (softplus adds 1e-5 so it is never 0; elu1p and exp are clamped to a raw
 * range where they stay normal doubles and float32s).
 *
 * @module
 */
import type { DiagTransform } from "../engine/types.ts";

/** Offset added to softplus so that the diagonal stays away from 0. */
export const SOFTPLUS_EPS = 1e-5;
/** elu1p and exp take raw values clamped to [−RAW_LIMIT, RAW_LIMIT]: e^−60 ≈ 1e−26 stays a normal float32. */
export const RAW_LIMIT = 60;

function clamp(r: number): number {
  return r < -RAW_LIMIT ? -RAW_LIMIT : r > RAW_LIMIT ? RAW_LIMIT : r;
}

/** diag = f(raw). */
export function diagForward(kind: DiagTransform, raw: number): number {
  switch (kind) {
    case "softplus":
      // Stable softplus: max(r, 0) + log1p(exp(−|r|)).
      return Math.max(raw, 0) + Math.log1p(Math.exp(-Math.abs(raw))) + SOFTPLUS_EPS;
    case "elu1p": {
      const r = clamp(raw);
      return r > 0 ? 1 + r : Math.exp(r);
    }
    case "exp":
      return Math.exp(clamp(raw));
  }
}

/** d diag / d raw (0 where the clamp is active). */
export function diagDerivative(kind: DiagTransform, raw: number): number {
  switch (kind) {
    case "softplus":
      return 1 / (1 + Math.exp(-raw));
    case "elu1p":
      if (raw > RAW_LIMIT || raw < -RAW_LIMIT) return 0;
      return raw > 0 ? 1 : Math.exp(raw);
    case "exp":
      if (raw > RAW_LIMIT || raw < -RAW_LIMIT) return 0;
      return Math.exp(raw);
  }
}

/** raw with f(raw) = diag, for diag in the transform's range (diag > 1e-5 for softplus). */
export function diagInverse(kind: DiagTransform, diag: number): number {
  if (!(diag > 0) || !Number.isFinite(diag)) {
    throw new RangeError(`expected a finite positive diagonal, found ${diag}`);
  }
  switch (kind) {
    case "softplus": {
      const y = diag - SOFTPLUS_EPS;
      if (!(y > 0)) {
        throw new RangeError(
          `expected a diagonal above ${SOFTPLUS_EPS} for softplus, found ${diag}`,
        );
      }
      // softplus⁻¹(y) = y + log(−expm1(−y)), stable for small and large y.
      return y + Math.log(-Math.expm1(-y));
    }
    case "elu1p":
      return diag > 1 ? diag - 1 : Math.log(diag);
    case "exp":
      return Math.log(diag);
  }
}
