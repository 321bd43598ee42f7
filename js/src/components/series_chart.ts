// A chart of several series that grow point by point against one x axis (the edit-stability curves):
// a 0..1 axis for scores or a log axis for ratios and divergences, an optional dashed threshold line and a
// vertical marker (where a run collapsed), and a legend. Values are drawn as given; NaN/null leave a gap.
import { formatNumber } from "../core";
import { chartFrame, logRange, logY, svg } from "./line_chart";

export interface Series {
  name: string;
  colour: string;
  values: (number | null)[]; // one per x
  dashed?: boolean;
}

export interface SeriesChartOptions {
  width?: number;
  height?: number;
  title: string;
  scale: "unit" | "log"; // unit: 0..1 as percentages; log: positive values
  ariaLabel?: string;
}

export function seriesChart(opts: SeriesChartOptions) {
  const W = opts.width ?? 360;
  const H = opts.height ?? 130;
  const pad = { left: 44, right: 10, top: 30, bottom: 20 };
  const { root, text, yHi, yLo, xLo, xHi } = chartFrame(W, H, pad, "fw-series-chart", opts.ariaLabel ?? opts.title);
  const guides = svg("g");
  const lines = svg("g");
  root.append(guides, lines);
  const title = text(pad.left, 11, "start", "fw-chart-title");
  title.setAttribute("fill", "var(--jp-ui-font-color1, #444)");
  title.textContent = opts.title;
  const legend = svg("g", { class: "fw-chart-legend" });
  root.appendChild(legend);

  return {
    el: root as SVGSVGElement,
    /** Draw the series over `xs` (x values, increasing), the x axis spanning at least `xMax`; `threshold` a
     * dashed guide at that y, `marker` a vertical line at that x. */
    update(xs: number[], series: Series[], xMax: number, threshold: number | null = null, marker: number | null = null) {
      const hi = Math.max(xMax, ...xs, 1);
      const x = (v: number) => pad.left + (v / hi) * (W - pad.left - pad.right);
      const all = series.flatMap((s) => s.values).filter((v): v is number => typeof v === "number" && Number.isFinite(v));
      const range = opts.scale === "log" ? logRange(threshold === null ? all : [...all, threshold]) ?? [0.1, 10] : null;
      const y = (v: number) => range ? logY(v, range, pad.top, H - pad.bottom)
        : H - pad.bottom - Math.min(1, Math.max(0, v)) * (H - pad.top - pad.bottom);
      lines.replaceChildren(...series.map((s) => {
        const segments: string[][] = [[]];
        s.values.forEach((v, i) => {
          if (typeof v === "number" && Number.isFinite(v)) segments[segments.length - 1].push(`${x(xs[i]).toFixed(1)},${y(v).toFixed(1)}`);
          else if (segments[segments.length - 1].length) segments.push([]);
        });
        const g = svg("g", { class: "fw-series", "data-name": s.name });
        for (const seg of segments.filter((p) => p.length)) {
          g.appendChild(svg("polyline", { points: seg.join(" "), fill: "none", stroke: s.colour, "stroke-width": 1.8,
            ...(s.dashed ? { "stroke-dasharray": "4 3" } : {}) }));
          if (seg.length === 1) {
            const [cx, cy] = seg[0].split(",");
            g.appendChild(svg("circle", { cx, cy, r: 2, fill: s.colour }));
          }
        }
        return g;
      }));
      const marks: SVGElement[] = [];
      if (threshold !== null && (!range || (threshold >= range[0] && threshold <= range[1]))) {
        marks.push(svg("line", { x1: pad.left, x2: W - pad.right, y1: y(threshold), y2: y(threshold), stroke: "var(--jp-error-color1, #d32f2f)",
          "stroke-dasharray": "2 3", "stroke-width": 1, class: "fw-chart-threshold" }));
      }
      if (marker !== null) {
        marks.push(svg("line", { x1: x(marker), x2: x(marker), y1: pad.top, y2: H - pad.bottom, stroke: "var(--jp-error-color1, #d32f2f)",
          "stroke-dasharray": "5 3", "stroke-width": 1.5, class: "fw-chart-marker" }));
      }
      guides.replaceChildren(...marks);
      let lx = W - pad.right;
      legend.replaceChildren(...[...series].reverse().map((s) => {
        const t = svg("text", { x: lx, y: 24, "text-anchor": "end", "font-size": 10, fill: s.colour });
        t.textContent = s.name;
        lx -= 8 + 6 * s.name.length;
        return t;
      }));
      yHi.textContent = range ? formatNumber(range[1]) : "100%";
      yLo.textContent = range ? formatNumber(range[0]) : "0";
      xLo.textContent = "0";
      xHi.textContent = `${Math.round(hi)} edits`;
    },
  };
}
