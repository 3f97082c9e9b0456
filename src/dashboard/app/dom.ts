/// <reference lib="dom" />
/**
 * Small DOM and formatting helpers shared by the dashboard's view modules.
 *
 * @module
 */

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

export function fmtNum(v: number, digits = 2): string {
  if (!Number.isFinite(v)) return "–";
  return Math.abs(v) >= 1e5 ? v.toExponential(2) : v.toFixed(digits);
}

export function fmtAgo(ms: number, now: number): string {
  if (ms === 0) return "–";
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 1) return "now";
  if (s < 60) return `${s.toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

export function fmtT(t: number | string | null | undefined): string {
  if (t === null || t === undefined) return "–";
  if (typeof t === "number" && t > 1e11) return new Date(t).toISOString().slice(11, 23);
  return String(t);
}

/** Green below half the threshold, through yellow, to red at or above it. */
export function scoreColor(nlp: number, threshold: number): string {
  const r = Math.max(0, Math.min(1, nlp / threshold));
  const hue = 120 * (1 - r);
  return `hsl(${hue.toFixed(0)}, 80%, ${r >= 1 ? 40 : 45}%)`;
}
