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
import uPlot from "uplot";
import {
  type ColumnId,
  COLUMNS,
  type DashboardModel,
  ellipse,
  type KeyState,
  mahalanobis2,
  nlpOfMahalanobis2,
} from "./model.ts";

const ROW_H = 26;
/** Rebuild the sorted view at most this often (values in visible rows refresh every frame). */
const RESORT_MS = 500;
const SERIES_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmtNum(v: number, digits = 2): string {
  if (!Number.isFinite(v)) return "–";
  return Math.abs(v) >= 1e5 ? v.toExponential(2) : v.toFixed(digits);
}

function fmtAgo(ms: number, now: number): string {
  if (ms === 0) return "–";
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 1) return "now";
  if (s < 60) return `${s.toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

function fmtT(t: number | string | null | undefined): string {
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
  #series?: uPlot;
  #locChart?: uPlot;
  #sdChart?: uPlot;
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
    const items = this.#model.episodes.items;
    const sig = `${items.length}:${items.at(-1)?.received ?? 0}:${
      items.filter((e) => e.end_seq == null && e.end_t == null).length
    }`;
    if (this.#alarmList.dataset.sig === sig) return;
    this.#alarmList.dataset.sig = sig;
    this.#alarmList.dataset.count = String(items.length);
    this.#alarmList.replaceChildren();
    if (items.length === 0) {
      this.#alarmList.append(
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
      row.addEventListener("click", () => this.select(e.key));
      this.#alarmList.append(row);
    }
  }

  #renderDetail(): void {
    const key = this.#model.selected;
    const s = key === undefined ? undefined : this.#model.keys.get(key);
    this.#detail.hidden = s === undefined;
    if (s === undefined) return;
    document.getElementById("detail-key")!.textContent = s.key;
    const dim = s.params?.dim ?? 0;
    if (this.#chartsFor !== s.key || this.#chartsDim !== dim) this.#makeCharts(s, dim);
    this.#updateSeries(s);
    this.#updateParamsCharts(s);
    this.#drawEllipses(s);
  }

  #makeCharts(s: KeyState, dim: number): void {
    for (const c of [this.#series, this.#locChart, this.#sdChart]) c?.destroy();
    this.#chartsFor = s.key;
    this.#chartsDim = dim;
    const seriesBox = document.getElementById("series")!;
    const width = Math.max(300, seriesBox.clientWidth || 800);
    const thr = this.#threshold;
    const dot = (fill: string, size: number): uPlot.Series => ({
      stroke: fill,
      fill,
      paths: () => null,
      points: { show: true, size, fill, stroke: fill },
    });
    this.#series = new uPlot(
      {
        width,
        height: 240,
        title: "−log₁₀ p per observation",
        scales: { x: { time: false } },
        axes: [{ label: "observation #" }, { label: "−log₁₀ p" }],
        series: [
          { label: "seq" },
          { label: "−log₁₀ p", stroke: "#1f77b4", width: 1, points: { show: false } },
          {
            label: `threshold (α=${(10 ** -thr).toExponential(0)})`,
            stroke: "#d62728",
            dash: [6, 4],
          },
          { label: "anomaly", ...dot("#d62728", 7) },
          { label: "alarm", ...dot("#ff7f0e", 11) },
        ],
      },
      [[], [], [], [], []],
      seriesBox,
    );
    const mk = (id: string, title: string, prefix: string) =>
      new uPlot(
        {
          width: Math.max(300, Math.floor(width / 2) - 10),
          height: 200,
          title,
          series: [
            { label: "time" },
            ...Array.from({ length: dim }, (_, i) => ({
              label: `${prefix}${i}`,
              stroke: SERIES_COLORS[i % SERIES_COLORS.length],
              width: 1.5,
            })),
          ],
        },
        [[], ...Array.from({ length: dim }, () => [])],
        document.getElementById(id)!,
      );
    document.getElementById("loc-chart")!.replaceChildren();
    document.getElementById("sd-chart")!.replaceChildren();
    this.#locChart = mk("loc-chart", "loc (mean) per dimension", "loc ");
    this.#sdChart = mk("sd-chart", "standard deviation per dimension", "σ ");
    this.#ellipseBox.replaceChildren();
    for (let i = 0; i < dim; i++) {
      for (let j = i + 1; j < dim; j++) {
        const fig = el("figure", { class: "pair" });
        const canvas = el("canvas", {
          width: "260",
          height: "260",
          "data-pair": `${i},${j}`,
          "data-points": "0",
          "data-ellipses": "0",
        });
        fig.append(canvas, el("figcaption", {}, `dim ${i} × dim ${j}`));
        this.#ellipseBox.append(fig);
      }
    }
    this.pointsDirty = true;
    this.#lastSeriesLen = -1;
    this.#lastParamsLen = -1;
  }

  #lastSeriesLen = -1;
  #lastSeriesSeq = -1;

  #updateSeries(s: KeyState): void {
    const ring = s.ring;
    let lastSeq = -1;
    ring.forEach((q) => (lastSeq = q));
    if (ring.length === this.#lastSeriesLen && lastSeq === this.#lastSeriesSeq) return;
    this.#lastSeriesLen = ring.length;
    this.#lastSeriesSeq = lastSeq;
    const xs: number[] = [];
    const ys: (number | null)[] = [];
    const th: number[] = [];
    const an: (number | null)[] = [];
    const al: (number | null)[] = [];
    let drawn = 0;
    ring.forEach((seq, nlp, flags) => {
      xs.push(seq);
      const y = Number.isNaN(nlp) ? null : nlp;
      if (y !== null) drawn++;
      ys.push(y);
      th.push(this.#threshold);
      an.push(flags & 1 ? y : null);
      al.push(flags & 2 ? y : null);
    });
    this.#series!.setData([xs, ys, th, an, al] as uPlot.AlignedData);
    const box = document.getElementById("series")!;
    box.dataset.points = String(drawn);
    box.dataset.anomalies = String(an.filter((v) => v !== null).length);
    box.dataset.alarms = String(al.filter((v) => v !== null).length);
  }

  #lastParamsLen = -1;
  #lastParamsT = -1;

  #updateParamsCharts(s: KeyState): void {
    const h = s.paramsHistory.items;
    const lastT = h.at(-1)?.t ?? -1;
    if (h.length === this.#lastParamsLen && lastT === this.#lastParamsT) return;
    this.#lastParamsLen = h.length;
    this.#lastParamsT = lastT;
    const dim = this.#chartsDim;
    const ts = h.map((p) => p.t);
    const locs = Array.from({ length: dim }, (_, i) => h.map((p) => p.loc[i]));
    const sds = Array.from({ length: dim }, (_, i) => h.map((p) => p.sd[i]));
    this.#locChart?.setData([ts, ...locs] as uPlot.AlignedData);
    this.#sdChart?.setData([ts, ...sds] as uPlot.AlignedData);
    document.getElementById("loc-chart")!.dataset.points = String(h.length);
    document.getElementById("sd-chart")!.dataset.points = String(h.length);
  }

  #ellipseSig = "";

  #drawEllipses(s: KeyState): void {
    const p = s.params;
    const sig = `${s.key}:${p?.steps}:${p?.updated_at}:${this.points.length}`;
    if (!this.pointsDirty && sig === this.#ellipseSig) return;
    this.#ellipseSig = sig;
    this.pointsDirty = false;
    if (p === undefined) return;
    const scored = this.points.map((x) => ({
      x,
      nlp: nlpOfMahalanobis2(mahalanobis2(p, x), p.dim),
    }));
    // Strongest last, so red points are drawn on top.
    scored.sort((a, b) => a.nlp - b.nlp);
    for (const canvas of this.#ellipseBox.querySelectorAll("canvas")) {
      const [i, j] = canvas.dataset.pair!.split(",").map(Number);
      const ctx = canvas.getContext("2d")!;
      const W = canvas.width;
      const H = canvas.height;
      ctx.clearRect(0, 0, W, H);
      const sx = Math.sqrt(Math.max(p.covariance[i][i], 1e-300));
      const sy = Math.sqrt(Math.max(p.covariance[j][j], 1e-300));
      // Bounds: ±3.5σ, widened for points up to ±8σ.
      let [x0, x1, y0, y1] = [
        p.loc[i] - 3.5 * sx,
        p.loc[i] + 3.5 * sx,
        p.loc[j] - 3.5 * sy,
        p.loc[j] + 3.5 * sy,
      ];
      for (const { x } of scored) {
        if (Math.abs(x[i] - p.loc[i]) <= 8 * sx) {
          [x0, x1] = [Math.min(x0, x[i]), Math.max(x1, x[i])];
        }
        if (Math.abs(x[j] - p.loc[j]) <= 8 * sy) {
          [y0, y1] = [Math.min(y0, x[j]), Math.max(y1, x[j])];
        }
      }
      const pad = 8;
      const px = (v: number) => pad + ((v - x0) / (x1 - x0)) * (W - 2 * pad);
      const py = (v: number) => H - pad - ((v - y0) / (y1 - y0)) * (H - 2 * pad);
      ctx.strokeStyle = "#ddd";
      ctx.strokeRect(0.5, 0.5, W - 1, H - 1);
      let drawn = 0;
      for (const { x, nlp } of scored) {
        const X = px(x[i]);
        const Y = py(x[j]);
        if (!Number.isFinite(X) || !Number.isFinite(Y)) continue;
        ctx.fillStyle = scoreColor(nlp, this.#threshold);
        ctx.beginPath();
        ctx.arc(
          Math.min(W - 2, Math.max(2, X)),
          Math.min(H - 2, Math.max(2, Y)),
          2.5,
          0,
          2 * Math.PI,
        );
        ctx.fill();
        drawn++;
      }
      let ellipses = 0;
      for (const k of [1, 2, 3]) {
        const pts = ellipse(p.loc, p.covariance, i, j, k);
        ctx.strokeStyle = ["#08519c", "#3182bd", "#9ecae1"][k - 1];
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        pts.forEach(([a, b], n) => (n === 0 ? ctx.moveTo(px(a), py(b)) : ctx.lineTo(px(a), py(b))));
        ctx.stroke();
        ctx.fillStyle = ctx.strokeStyle;
        ctx.font = "10px sans-serif";
        ctx.fillText(`${k}σ`, px(pts[0][0]) + 2, py(pts[0][1]) - 2);
        ellipses++;
      }
      ctx.fillStyle = "#000";
      ctx.beginPath();
      ctx.arc(px(p.loc[i]), py(p.loc[j]), 3, 0, 2 * Math.PI);
      ctx.fill();
      canvas.dataset.points = String(drawn);
      canvas.dataset.ellipses = String(ellipses);
    }
  }
}
