// A small SVG line chart for a curve that grows point by point (the ROME optimisation's loss, live): one
// series on a log scale (left), one on 0..1 (right, dashed), the x axis spanning the planned steps.
import { formatNumber } from "../core";

const NS = "http://www.w3.org/2000/svg";

export function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}): SVGElementTagNameMap[K] {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** The range a log axis spans for these values: the finite positive ones, padded to at least ×10 so a flat
 * curve is not drawn as noise; null when there is none. */
export function logRange(values: number[]): [number, number] | null {
  const pos = values.filter((v) => Number.isFinite(v) && v > 0);
  if (!pos.length) return null;
  let lo = Math.min(...pos);
  let hi = Math.max(...pos);
  if (hi / lo < 10) {
    const mid = Math.sqrt(lo * hi);
    lo = mid / Math.sqrt(10);
    hi = mid * Math.sqrt(10);
  }
  return [lo, hi];
}

/** y in pixels (top = `top`, bottom = `bottom`) of `v` on a log axis over `range`; values at or below 0 sit
 * at the bottom, NaN gives NaN. */
export function logY(v: number, range: [number, number], top: number, bottom: number): number {
  if (Number.isNaN(v)) return NaN;
  const [lo, hi] = range;
  const t = v <= 0 ? 0 : (Math.log(v) - Math.log(lo)) / (Math.log(hi) - Math.log(lo));
  return bottom - Math.min(1, Math.max(0, t)) * (bottom - top);
}

export interface CurvePoint {
  x: number;
  y: number; // the log-scaled series (loss)
  y2?: number | null; // the 0..1 series (a probability)
}

export interface LineChartOptions {
  width?: number;
  height?: number;
  label: string;
  label2?: string;
  ariaLabel?: string;
}

export interface Pad { left: number; right: number; top: number; bottom: number }

/** An SVG chart's frame: the root, the plot rectangle, a text-label maker and the axis-end labels. */
export function chartFrame(W: number, H: number, pad: Pad, cls: string, ariaLabel: string) {
  const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: cls, role: "img", "aria-label": ariaLabel });
  const rect = svg("rect", { x: pad.left, y: pad.top, width: W - pad.left - pad.right, height: H - pad.top - pad.bottom,
    fill: "none", stroke: "var(--jp-border-color2, #ddd)" });
  root.appendChild(rect);
  const text = (x: number, y: number, anchor: string, cls = "") => {
    const t = svg("text", { x, y, "text-anchor": anchor, "font-size": 10, fill: "var(--jp-ui-font-color2, #777)", class: cls });
    root.appendChild(t);
    return t;
  };
  const axes = { yHi: text(pad.left - 4, pad.top + 4, "end", "fw-chart-hi"), yLo: text(pad.left - 4, H - pad.bottom, "end", "fw-chart-lo"),
    xLo: text(pad.left, H - 6, "start"), xHi: text(W - pad.right, H - 6, "end", "fw-chart-xhi") };
  return { root, text, ...axes };
}

export function lineChart(opts: LineChartOptions) {
  const W = opts.width ?? 320;
  const H = opts.height ?? 120;
  const pad = { left: 44, right: 38, top: 18, bottom: 20 };
  const { root, text, yHi, yLo, xLo, xHi } = chartFrame(W, H, pad, "fw-line-chart", opts.ariaLabel ?? opts.label);
  const line = svg("polyline", { fill: "none", stroke: "var(--jp-brand-color1, #1976d2)", "stroke-width": 2, class: "fw-chart-y" });
  const line2 = svg("polyline", { fill: "none", stroke: "var(--fw-pos, #d8734f)", "stroke-width": 1.5, "stroke-dasharray": "4 3", class: "fw-chart-y2" });
  const dots = svg("g", { fill: "var(--jp-brand-color1, #1976d2)" });
  root.append(line2, line, dots);
  const y2Hi = text(W - pad.right + 4, pad.top + 4, "start");
  const y2Lo = text(W - pad.right + 4, H - pad.bottom, "start");
  const key = text(pad.left, 11, "start");
  key.setAttribute("fill", "var(--jp-ui-font-color1, #444)");

  return {
    el: root as SVGSVGElement,
    /** Draw `points`; `steps` is the planned x extent (points past it widen the axis). */
    update(points: CurvePoint[], steps: number) {
      const n = Math.max(steps, ...points.map((p) => p.x + 1), 2);
      const x = (i: number) => pad.left + (i / (n - 1)) * (W - pad.left - pad.right);
      const range = logRange(points.map((p) => p.y)) ?? [0.1, 10];
      const y = (v: number) => logY(v, range, pad.top, H - pad.bottom);
      const y2 = (v: number) => H - pad.bottom - Math.min(1, Math.max(0, v)) * (H - pad.top - pad.bottom);
      const finite = points.filter((p) => Number.isFinite(p.y));
      line.setAttribute("points", finite.map((p) => `${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(" "));
      const second = points.filter((p) => typeof p.y2 === "number" && Number.isFinite(p.y2));
      line2.setAttribute("points", second.map((p) => `${x(p.x).toFixed(1)},${y2(p.y2 as number).toFixed(1)}`).join(" "));
      dots.replaceChildren(...finite.map((p) => svg("circle", { cx: x(p.x).toFixed(1), cy: y(p.y).toFixed(1), r: 2 })));
      yHi.textContent = formatNumber(range[1]);
      yLo.textContent = formatNumber(range[0]);
      y2Hi.textContent = opts.label2 && second.length ? "1" : "";
      y2Lo.textContent = opts.label2 && second.length ? "0" : "";
      xLo.textContent = "1";
      xHi.textContent = `step ${n}`;
      key.textContent = opts.label2 && second.length ? `${opts.label} (log, solid) · ${opts.label2} (dashed)` : `${opts.label} (log)`;
    },
  };
}
