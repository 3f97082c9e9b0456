/// <reference lib="dom" />
/**
 * The selected key's series charts (uPlot): −log₁₀ p per observation with the threshold,
 * anomalies and alarms, and the loc / σ history per dimension. Each chart's box carries
 * `data-points`.
 *
 * @module
 */
import uPlot from "uplot";
import type { KeyState } from "./key_state.ts";

const SERIES_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

/** The three charts of one selected key, updated only when their data change. */
export class KeyCharts {
  #threshold: number;
  #series?: uPlot;
  #locChart?: uPlot;
  #sdChart?: uPlot;
  #dim = 0;
  #lastSeriesLen = -1;
  #lastSeriesSeq = -1;
  #lastParamsLen = -1;
  #lastParamsT = -1;

  constructor(threshold: number) {
    this.#threshold = threshold;
  }

  /** Destroys the current charts and makes empty ones for `dim` dimensions. */
  make(dim: number): void {
    for (const c of [this.#series, this.#locChart, this.#sdChart]) c?.destroy();
    this.#dim = dim;
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
    this.#lastSeriesLen = -1;
    this.#lastParamsLen = -1;
  }

  /** Shows the key's score ring (no-op when unchanged). */
  updateSeries(s: KeyState): void {
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

  /** Shows the key's loc / σ history (no-op when unchanged). */
  updateParams(s: KeyState): void {
    const h = s.paramsHistory.items;
    const lastT = h.at(-1)?.t ?? -1;
    if (h.length === this.#lastParamsLen && lastT === this.#lastParamsT) return;
    this.#lastParamsLen = h.length;
    this.#lastParamsT = lastT;
    const dim = this.#dim;
    const ts = h.map((p) => p.t);
    const locs = Array.from({ length: dim }, (_, i) => h.map((p) => p.loc[i]));
    const sds = Array.from({ length: dim }, (_, i) => h.map((p) => p.sd[i]));
    this.#locChart?.setData([ts, ...locs] as uPlot.AlignedData);
    this.#sdChart?.setData([ts, ...sds] as uPlot.AlignedData);
    document.getElementById("loc-chart")!.dataset.points = String(h.length);
    document.getElementById("sd-chart")!.dataset.points = String(h.length);
  }
}
