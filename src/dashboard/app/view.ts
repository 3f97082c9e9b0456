/// <reference lib="dom" />
/**
 * The page's DOM: a virtualised key table (only the visible rows exist), the selected key's
 * charts (uPlot) and ellipses (canvas), and the alarm episode log. `render()` runs once per
 * animation frame when the model is dirty.
 *
 * Every drawing element carries `data-points` (points drawn), so tests and scripts can tell what
 * is on screen.
 *
 * @module
 */
import { KeyCharts } from "./charts.ts";
import { el, fmtAgo, fmtNum, scoreColor } from "./dom.ts";
import { drawEllipses, makeEllipseCanvases } from "./ellipses.ts";
import { renderEpisodes } from "./episodes.ts";
import type { KeyState } from "./key_state.ts";
import { type ColumnId, COLUMNS, type DashboardModel } from "./model.ts";

export { scoreColor } from "./dom.ts";

const ROW_H = 26;
/** Rebuild the sorted view at most this often (values in visible rows refresh every frame). */
const RESORT_MS = 500;

/** The page. */
export class DashboardView {
  #model: DashboardModel;
  #threshold: number;
  #filter = "";
  #sortBy: ColumnId = "key";
  #desc = false;
  #rows: KeyState[] = [];
  #sortedAt = 0;
  #sortedGen = -1;
  #pool: HTMLDivElement[] = [];
  #body: HTMLDivElement;
  #spacer: HTMLDivElement;
  #countEl: HTMLElement;
  #alarmList: HTMLElement;
  #detail: HTMLElement;
  #charts: KeyCharts;
  #chartsFor?: string;
  #chartsDim = 0;
  #ellipseBox: HTMLElement;
  #frame = 0;
  /** Raw observations of the selected key (from `<prefix>.obs.<key>`). */
  points: number[][] = [];
  pointsDirty = false;
  onSelect: (key: string | undefined) => void = () => {};

  constructor(model: DashboardModel, threshold: number) {
    this.#model = model;
    this.#threshold = threshold;
    this.#charts = new KeyCharts(threshold);
    const head = document.getElementById("thead")!;
    for (const c of COLUMNS) {
      const h = el(
        "div",
        {
          class: `cell c-${c.id}`,
          "data-sort": c.id,
          role: "columnheader",
          title: "title" in c ? c.title : "model key",
        },
        c.label,
      );
      h.addEventListener("click", () => {
        if (this.#sortBy === c.id) this.#desc = !this.#desc;
        else {
          this.#sortBy = c.id;
          this.#desc = c.id !== "key";
        }
        this.#sortedGen = -1;
        this.#markHeader();
        this.schedule();
      });
      head.append(h);
    }
    this.#markHeader();
    this.#body = document.getElementById("tbody") as HTMLDivElement;
    this.#spacer = document.getElementById("spacer") as HTMLDivElement;
    this.#countEl = document.getElementById("count")!;
    this.#alarmList = document.getElementById("alarm-list")!;
    this.#detail = document.getElementById("detail")!;
    this.#ellipseBox = document.getElementById("ellipses")!;
    this.#body.addEventListener("scroll", () => this.schedule());
    this.#body.addEventListener("click", (ev) => {
      const row = (ev.target as HTMLElement).closest<HTMLElement>(".row[data-key]");
      if (row) this.select(row.dataset.key!);
    });
    const filter = document.getElementById("filter") as HTMLInputElement;
    filter.addEventListener("input", () => {
      this.#filter = filter.value;
      this.#sortedGen = -1;
      this.#body.scrollTop = 0;
      this.schedule();
    });
    addEventListener("resize", () => {
      this.#chartsFor = undefined;
      this.schedule();
    });
  }

  /** Requests a render on the next animation frame (coalesced). */
  schedule(): void {
    if (this.#frame !== 0) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      this.render();
    });
  }

  select(key: string | undefined): void {
    this.#model.select(key);
    this.points = [];
    this.pointsDirty = true;
    this.#chartsFor = undefined;
    this.onSelect(key);
    this.schedule();
  }

  #markHeader(): void {
    for (const h of document.querySelectorAll<HTMLElement>("#thead [data-sort]")) {
      const on = h.dataset.sort === this.#sortBy;
      h.classList.toggle("sorted", on);
      h.dataset.dir = on ? (this.#desc ? "desc" : "asc") : "";
    }
  }

  render(): void {
    const m = this.#model;
    const now = Date.now();
    m.dirty = false;
    if (
      this.#sortedGen !== m.generation || now - this.#sortedAt > RESORT_MS
    ) {
      this.#rows = m.view(this.#filter, this.#sortBy, this.#desc, now);
      this.#sortedGen = m.generation;
      this.#sortedAt = now;
    }
    this.#renderTable(now);
    this.#renderAlarms();
    this.#renderDetail();
  }

  #renderTable(now: number): void {
    const rows = this.#rows;
    this.#countEl.textContent = `${rows.length} of ${this.#model.keys.size} keys`;
    this.#spacer.style.height = `${rows.length * ROW_H}px`;
    // Up to 16 rows tall; shorter when there are fewer keys.
    const h = `${Math.min(16, Math.max(4, rows.length)) * ROW_H + 2}px`;
    if (this.#body.style.height !== h) this.#body.style.height = h;
    const first = Math.max(0, Math.floor(this.#body.scrollTop / ROW_H) - 2);
    const visible = Math.ceil((this.#body.clientHeight || 16 * ROW_H) / ROW_H) + 4;
    const last = Math.min(rows.length, first + visible);
    const needed = last - first;
    while (this.#pool.length < needed) {
      const r = el("div", { class: "row", role: "row" });
      for (const c of COLUMNS) r.append(el("div", { class: `cell c-${c.id}` }));
      this.#body.append(r);
      this.#pool.push(r);
    }
    for (let p = 0; p < this.#pool.length; p++) {
      const r = this.#pool[p];
      if (p >= needed) {
        r.style.display = "none";
        r.removeAttribute("data-key");
        continue;
      }
      const s = rows[first + p];
      const mm = this.#model.lastMinute(s, now);
      r.style.display = "";
      r.style.transform = `translateY(${(first + p) * ROW_H}px)`;
      r.dataset.key = s.key;
      r.dataset.anomalies = String(s.anomalies);
      r.dataset.observations = String(s.observations);
      r.dataset.scores = String(s.scores);
      r.classList.toggle("selected", s.key === this.#model.selected);
      r.classList.toggle("alarm", s.openAlarm !== undefined);
      const cells = r.children;
      const text = [
        s.key,
        fmtNum(s.lastNlp),
        String(s.anomalies),
        String(mm.anomalies),
        String(mm.alarms),
        s.openAlarm ? `open #${s.openAlarm.start_seq}` : "",
        String(s.observations),
        fmtAgo(s.updatedAt, now),
      ];
      for (let c = 0; c < text.length; c++) {
        if (cells[c].textContent !== text[c]) cells[c].textContent = text[c];
      }
      (cells[1] as HTMLElement).style.color = Number.isNaN(s.lastNlp)
        ? ""
        : scoreColor(s.lastNlp, this.#threshold);
    }
  }

  #renderAlarms(): void {
    renderEpisodes(this.#alarmList, this.#model.episodes.items, (key) => this.select(key));
  }

  #renderDetail(): void {
    const key = this.#model.selected;
    const s = key === undefined ? undefined : this.#model.keys.get(key);
    this.#detail.hidden = s === undefined;
    if (s === undefined) return;
    document.getElementById("detail-key")!.textContent = s.key;
    const dim = s.params?.dim ?? 0;
    if (this.#chartsFor !== s.key || this.#chartsDim !== dim) this.#makeCharts(s, dim);
    this.#charts.updateSeries(s);
    this.#charts.updateParams(s);
    this.#drawEllipses(s);
  }

  #makeCharts(s: KeyState, dim: number): void {
    this.#chartsFor = s.key;
    this.#chartsDim = dim;
    this.#charts.make(dim);
    makeEllipseCanvases(this.#ellipseBox, dim);
    this.pointsDirty = true;
  }

  #ellipseSig = "";

  #drawEllipses(s: KeyState): void {
    const p = s.params;
    const sig = `${s.key}:${p?.steps}:${p?.updated_at}:${this.points.length}`;
    if (!this.pointsDirty && sig === this.#ellipseSig) return;
    this.#ellipseSig = sig;
    this.pointsDirty = false;
    if (p === undefined) return;
    drawEllipses(this.#ellipseBox, p, this.points, this.#threshold);
  }
}
