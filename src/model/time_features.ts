/**
 * Time as context for the conditional head: sin/cos of the time of day and of the week (UTC)
 * derived from an observation's time, so that a daily or weekly cycle is "normal given the clock".
 *
 * Times are epoch numbers or ISO-8601 strings. A number is read as milliseconds since the epoch,
 * except that one below 1e11 in magnitude (before 1973-03-03 as milliseconds) is read as seconds
 * (1e11 s is the year 5138), so both common epoch units work unchanged.
 *
 * @module
 */

/** The periods `--time-features` accepts. */
export type TimePeriod = "daily" | "weekly";
/** Every period, in the order their features are laid out. */
export const TIME_PERIODS: readonly TimePeriod[] = ["daily", "weekly"];

const DAY_MS = 86_400_000;
const PERIOD_MS: Readonly<Record<TimePeriod, number>> = { daily: DAY_MS, weekly: 7 * DAY_MS };
/** Epoch numbers below this magnitude are seconds, above it milliseconds. */
export const SECONDS_BELOW = 1e11;

/** Features each period adds (sin and cos). */
export const FEATURES_PER_PERIOD = 2;

/** Milliseconds since the epoch of a time value; NaN when it is absent or unreadable. */
export function timeMs(t: number | string | undefined | null): number {
  if (t === undefined || t === null) return NaN;
  if (typeof t === "number") {
    if (!Number.isFinite(t)) return NaN;
    return Math.abs(t) < SECONDS_BELOW ? t * 1000 : t;
  }
  const s = t.trim();
  if (s === "") return NaN;
  // A numeric string (CSV cells arrive as strings when not numeric; be lenient anyway).
  if (/^[+-]?\d+(\.\d+)?$/.test(s)) return timeMs(Number(s));
  return Date.parse(s);
}

/**
 * Writes the 2·periods.length time features of time `ms` at out[at..]: for each period (in the
 * given order) sin(2π·phase), cos(2π·phase), phase = (ms mod period) / period (UTC).
 */
export function timeFeaturesInto(
  ms: number,
  periods: readonly TimePeriod[],
  out: Float64Array,
  at: number,
): void {
  for (let p = 0; p < periods.length; p++) {
    const period = PERIOD_MS[periods[p]];
    let r = ms % period;
    if (r < 0) r += period;
    const angle = (2 * Math.PI * r) / period;
    out[at + 2 * p] = Math.sin(angle);
    out[at + 2 * p + 1] = Math.cos(angle);
  }
}

/** The time features of one time value (throws a RangeError naming the value when unreadable). */
export function timeFeatures(
  t: number | string | undefined,
  periods: readonly TimePeriod[],
): Float64Array {
  const ms = timeMs(t);
  if (!Number.isFinite(ms)) {
    throw new RangeError(
      `expected a time (epoch number or ISO-8601 string), found ${
        t === undefined ? "none" : JSON.stringify(t)
      }`,
    );
  }
  const out = new Float64Array(FEATURES_PER_PERIOD * periods.length);
  timeFeaturesInto(ms, periods, out, 0);
  return out;
}
