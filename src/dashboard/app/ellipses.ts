/// <reference lib="dom" />
/**
 * The selected key's pair plots: one canvas per pair of dimensions with the raw observations
 * (coloured by their −log₁₀ p under the current parameters) and the 1σ/2σ/3σ ellipses. Each
 * canvas carries `data-points` and `data-ellipses`.
 *
 * @module
 */
import { el, scoreColor } from "./dom.ts";
import { ellipse, mahalanobis2, nlpOfMahalanobis2 } from "./gaussian.ts";
import type { ParamsLike } from "./key_state.ts";

/** Replaces the contents of `box` with one empty canvas per pair of the `dim` dimensions. */
export function makeEllipseCanvases(box: HTMLElement, dim: number): void {
  box.replaceChildren();
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
      box.append(fig);
    }
  }
}

/** Draws `points` and the ellipses of `p` on every pair canvas in `box`. */
export function drawEllipses(
  box: HTMLElement,
  p: ParamsLike,
  points: readonly number[][],
  threshold: number,
): void {
  const scored = points.map((x) => ({
    x,
    nlp: nlpOfMahalanobis2(mahalanobis2(p, x), p.dim),
  }));
  // Strongest last, so red points are drawn on top.
  scored.sort((a, b) => a.nlp - b.nlp);
  for (const canvas of box.querySelectorAll("canvas")) {
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
      ctx.fillStyle = scoreColor(nlp, threshold);
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
