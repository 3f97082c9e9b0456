/// <reference lib="dom" />
/**
 * The alarm episode log: the newest 100 episodes, open ones marked, each selecting its key on
 * click. Rebuilt only when the log changes.
 *
 * @module
 */
import { el, fmtNum, fmtT } from "./dom.ts";
import type { AlarmEpisode } from "./key_state.ts";

/** Renders the episode log into `list` (no-op when unchanged since the last call). */
export function renderEpisodes(
  list: HTMLElement,
  items: readonly (AlarmEpisode & { received: number })[],
  select: (key: string) => void,
): void {
  const sig = `${items.length}:${items.at(-1)?.received ?? 0}:${
    items.filter((e) => e.end_seq == null && e.end_t == null).length
  }`;
  if (list.dataset.sig === sig) return;
  list.dataset.sig = sig;
  list.dataset.count = String(items.length);
  list.replaceChildren();
  if (items.length === 0) {
    list.append(
      el("div", { class: "empty" }, `no alarm episodes yet (subject <prefix>.alarms.>)`),
    );
    return;
  }
  for (const e of items.slice().reverse().slice(0, 100)) {
    const open = e.end_seq == null && e.end_t == null;
    const row = el("div", { class: `episode ${open ? "open" : "closed"}`, "data-key": e.key });
    row.append(
      el("span", { class: "k" }, e.key),
      el("span", {}, open ? "OPEN" : "closed"),
      el("span", {}, `#${e.start_seq}–${open ? "" : `#${e.end_seq ?? "?"}`}`),
      el("span", {}, `${fmtT(e.start_t)} → ${open ? "…" : fmtT(e.end_t)}`),
      el("span", {}, `${e.observations ?? "?"} obs`),
      el("span", {}, `peak log p ${fmtNum(e.peak_log_p ?? NaN)}`),
      el("span", {}, `top dims ${(e.top_dims ?? []).join(", ")}`),
    );
    row.addEventListener("click", () => select(e.key));
    list.append(row);
  }
}
