// A reusable canvas heatmap: row/column labels, optional text in cells, hover tooltip, click/keyboard
// selection, highlighted cell. Hover and click use data already in the browser (no kernel round trip).
import { css, h, isNarrow, perFrame, readTheme, Scale, showToken, textOn, Theme } from "../core";
import { placeTooltip } from "./tooltip";

export interface HeatmapData {
  rows: number;
  cols: number;
  values: Float32Array; // row-major [rows, cols]; NaN draws as empty
  rowLabels: string[];
  colLabels: string[]; // raw tokens: shown with showToken()
  scale: Scale;
  cellText?: (row: number, col: number) => string; // e.g. the logit lens' top token
  rowTitle?: string;
  colTitle?: string;
}

export interface HeatmapOptions {
  /** Draw data row 0 at the bottom (layers stacked upwards like the residual stream). */
  flipRows?: boolean;
  cellHeight?: number;
  minCellWidth?: number;
  /** Widest cell; by default cells share out the whole width, so the map fills its box. */
  maxCellWidth?: number;
  /** Columns are tokens: a map wider than its box starts scrolled to its right end, where the last token (the
   *  one whose prediction is read) is, and stays there while the user has not scrolled away. */
  keepLastColumn?: boolean;
  tooltip?: (row: number, col: number) => string[];
  onClick?: (row: number, col: number) => void;
  onHover?: (row: number, col: number) => void;
  ariaLabel?: string;
}

export class Heatmap {
  readonly el: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  private tip: HTMLElement;
  private data: HeatmapData | null = null;
  private selected: [number, number] | null = null;
  private hovered: [number, number] | null = null;
  private geom = { x0: 0, y0: 0, cw: 0, ch: 0, width: 0, height: 0, rotate: false };
  private theme: Theme | null = null;
  private resize?: ResizeObserver;
  private atEnd = true; // the last column is in view (keepLastColumn): redraws keep it there
  private onMove: ReturnType<typeof perFrame<[number, number, number, number]>>;

  constructor(private opts: HeatmapOptions = {}) {
    this.canvas = h("canvas", { class: "fw-heatmap-canvas", attrs: { tabindex: "0", role: "img", "aria-label": opts.ariaLabel ?? "heatmap" } });
    this.tip = h("div", { class: "fw-tooltip", style: { display: "none" } });
    this.el = h("div", { class: "fw-heatmap" }, [this.canvas, this.tip]);
    this.onMove = perFrame((x: number, y: number, px: number, py: number) => this.hover(x, y, px, py));
    const local = (e: MouseEvent): [number, number] => {
      const r = this.canvas.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };
    this.canvas.addEventListener("mousemove", (e) => this.onMove(...local(e), e.clientX, e.clientY));
    this.canvas.addEventListener("mouseleave", () => {
      this.onMove.cancel();
      this.hovered = null;
      this.tip.style.display = "none";
      this.draw();
    });
    this.canvas.addEventListener("click", (e) => {
      const cell = this.cellAt(...local(e));
      if (cell) this.choose(cell[0], cell[1]);
    });
    this.canvas.addEventListener("keydown", (e) => this.key(e));
    this.el.addEventListener("scroll", () => {
      this.atEnd = this.el.scrollLeft + this.el.clientWidth >= this.el.scrollWidth - 2;
    });
    if (typeof ResizeObserver === "function") {
      let lastWidth = -1;
      this.resize = new ResizeObserver(() => {
        const w = this.el.clientWidth;
        if (w !== lastWidth) {
          lastWidth = w;
          this.draw();
        }
      });
      this.resize.observe(this.el);
    }
  }

  /** Show `data`; a canvas that already shows the same picture in the same theme is left alone (a view
   *  redraws on every part of a streamed payload, and painting is what the browser then spends on). */
  setData(data: HeatmapData): void {
    const same = this.data !== null && samePicture(this.data, data) && sameTheme(this.theme, readTheme(this.el));
    if (this.data && !sameList(this.data.colLabels, data.colLabels)) this.atEnd = true; // a new prompt: its last token
    this.data = data;
    if (this.selected && (this.selected[0] >= data.rows || this.selected[1] >= data.cols)) this.selected = null;
    if (!same) this.draw();
  }

  select(cell: [number, number] | null): void {
    if (cell === this.selected || (cell && this.selected && cell[0] === this.selected[0] && cell[1] === this.selected[1])) return;
    this.selected = cell;
    this.draw();
  }

  get selection(): [number, number] | null {
    return this.selected;
  }

  destroy(): void {
    this.resize?.disconnect();
    this.onMove.cancel();
  }

  /** Centre of a data cell in CSS pixels relative to the canvas (used by tests and keyboard focus). */
  cellCenter(row: number, col: number): [number, number] {
    const g = this.geom;
    const r = this.displayRow(row);
    return [g.x0 + (col + 0.5) * g.cw, g.y0 + (r + 0.5) * g.ch];
  }

  private displayRow(row: number): number {
    return this.opts.flipRows && this.data ? this.data.rows - 1 - row : row;
  }

  private cellAt(x: number, y: number): [number, number] | null {
    const g = this.geom;
    if (!this.data || g.cw <= 0) return null;
    const c = Math.floor((x - g.x0) / g.cw);
    const r = Math.floor((y - g.y0) / g.ch);
    if (c < 0 || r < 0 || c >= this.data.cols || r >= this.data.rows) return null;
    return [this.displayRow(r), c];
  }

  private choose(row: number, col: number): void {
    this.selected = [row, col];
    this.draw();
    this.opts.onClick?.(row, col);
  }

  private key(e: KeyboardEvent): void {
    if (!this.data) return;
    const [r, c] = this.selected ?? [this.opts.flipRows ? this.data.rows - 1 : 0, 0];
    const up = this.opts.flipRows ? 1 : -1;
    const moves: Record<string, [number, number]> = { ArrowUp: [up, 0], ArrowDown: [-up, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const m = moves[e.key];
    if (!m && e.key !== "Enter") return;
    e.preventDefault();
    const nr = Math.min(this.data.rows - 1, Math.max(0, r + (m?.[0] ?? 0)));
    const nc = Math.min(this.data.cols - 1, Math.max(0, c + (m?.[1] ?? 0)));
    this.choose(nr, nc);
  }

  private hover(x: number, y: number, clientX: number, clientY: number): void {
    const cell = this.cellAt(x, y);
    const same = cell && this.hovered && cell[0] === this.hovered[0] && cell[1] === this.hovered[1];
    this.hovered = cell;
    if (!cell || !this.opts.tooltip) {
      this.tip.style.display = "none";
    } else {
      if (!same) {
        const lines = this.opts.tooltip(cell[0], cell[1]);
        this.tip.replaceChildren(...lines.map((line, i) => h("div", { class: i === 0 ? "fw-tooltip-head" : "", text: line })));
        this.opts.onHover?.(cell[0], cell[1]);
      }
      this.tip.style.display = "block";
      // Next to the pointer and inside the visible part of the heatmap box (which scrolls, and so clips):
      // left of the pointer near the right edge, above it near the bottom, clamped when neither fits.
      const box = this.el.getBoundingClientRect();
      const [sx, sy] = [this.el.scrollLeft || 0, this.el.scrollTop || 0];
      const view = { left: sx, top: sy, width: this.el.clientWidth || box.width, height: this.el.clientHeight || box.height };
      const [left, top] = placeTooltip(clientX - box.left + sx, clientY - box.top + sy,
        this.tip.offsetWidth || 160, this.tip.offsetHeight || 60, view);
      this.tip.style.left = `${left}px`;
      this.tip.style.top = `${top}px`;
    }
    if (!same) this.draw();
  }

  /** Redraw everything (cheap: a few thousand rectangles at most). Reads the theme each time. */
  draw(): void {
    const d = this.data;
    const ctx = this.canvas.getContext("2d");
    this.theme = readTheme(this.el);
    const t = this.theme;
    if (!d || !ctx) return;
    const font = `${t.fontSize - 2}px ${t.font}`;
    const mono = `${t.fontSize - 2}px ${t.mono}`;
    ctx.font = mono;
    const labels = d.colLabels.map(showToken);
    const widest = Math.max(10, ...labels.map((s) => ctx.measureText(s).width));
    ctx.font = font;
    const rowLabelW = Math.max(...d.rowLabels.map((s) => ctx.measureText(s).width), 10) + 8;
    const x0 = Math.ceil(rowLabelW + (d.rowTitle ? 16 : 0));
    const ch = this.opts.cellHeight ?? 14;
    // Cells share out the box's width (in 1/8 px steps, so the canvas never overflows it by rounding).
    // Numeric column labels (layers) that do not fit are thinned to every 2nd, 5th, 10th...; tokens rotate,
    // and a rotated last label needs room on the right.
    const numeric = labels.length > 0 && labels.every((s) => /^-?\d+$/.test(s));
    const cellWidth = (pad: number) =>
      cellWidthFor(this.el.clientWidth || 800, x0 + pad, d.cols, this.opts.minCellWidth ?? 14, this.opts.maxCellWidth);
    let cw = cellWidth(8);
    const rotate = !numeric && widest + 6 > cw;
    if (rotate) cw = cellWidth(40);
    const colEvery = numeric ? labelStep((widest + 6) / cw) : 1;
    const rowEvery = labelStep((t.fontSize - 2 + 1) / ch); // the row labels' font, plus a pixel between
    const labelH = rotate ? Math.min(110, widest * 0.72 + 14) : t.fontSize + 8;
    const width = Math.ceil(x0 + cw * d.cols + (rotate ? 40 : 8));
    const height = Math.ceil(4 + ch * d.rows + labelH + (d.colTitle ? 16 : 0));
    const dpr = (typeof window !== "undefined" && window.devicePixelRatio) || 1;
    if (this.canvas.width !== Math.round(width * dpr) || this.canvas.height !== Math.round(height * dpr)) {
      this.canvas.width = Math.round(width * dpr);
      this.canvas.height = Math.round(height * dpr);
      this.canvas.style.width = `${width}px`;
      this.canvas.style.height = `${height}px`;
    }
    const overflow = width - this.el.clientWidth;
    if (this.opts.keepLastColumn && this.atEnd && overflow > 0) this.el.scrollLeft = overflow;
    this.geom = { x0, y0: 4, cw, ch, width, height, rotate };
    const g = this.geom;
    this.canvas.dataset.rows = String(d.rows);
    this.canvas.dataset.cols = String(d.cols);
    this.canvas.dataset.geometry = JSON.stringify({ x0, y0: g.y0, cw, ch, flip: !!this.opts.flipRows });
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.textBaseline = "middle";
    // cells
    const gap = cw > 6 && ch > 6 ? 1 : 0;
    for (let r = 0; r < d.rows; r++) {
      const y = g.y0 + this.displayRow(r) * ch;
      for (let c = 0; c < d.cols; c++) {
        const v = d.values[r * d.cols + c];
        const x = x0 + c * cw;
        if (Number.isNaN(v)) continue;
        const rgb = d.scale.color(v);
        ctx.fillStyle = css(rgb);
        ctx.fillRect(x, y, cw - gap, ch - gap);
        const text = d.cellText?.(r, c);
        if (text && cw >= 22) {
          ctx.font = mono;
          ctx.fillStyle = textOn(rgb);
          ctx.textAlign = "center";
          ctx.fillText(clip(ctx, showToken(text), cw - 4), x + cw / 2, y + ch / 2 + 0.5);
        }
      }
    }
    // row labels: every label if they fit, else regularly every 2nd, 5th, 10th... (0, 2, 4, ...)
    ctx.font = font;
    ctx.fillStyle = t.muted;
    ctx.textAlign = "right";
    for (let r = 0; r < d.rows; r += rowEvery) {
      ctx.fillText(d.rowLabels[r], x0 - 5, g.y0 + (this.displayRow(r) + 0.5) * ch);
    }
    if (d.rowTitle) {
      ctx.save();
      ctx.translate(8, g.y0 + (d.rows * ch) / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "center";
      ctx.fillText(d.rowTitle, 0, 0);
      ctx.restore();
    }
    // column labels: tokens, rotated when they do not fit
    ctx.font = mono;
    ctx.fillStyle = t.text;
    const yl = g.y0 + d.rows * ch + 6;
    for (let c = 0; c < d.cols; c++) {
      const xc = x0 + (c + 0.5) * cw;
      const hot = this.selected?.[1] === c || this.hovered?.[1] === c;
      if (c % colEvery !== 0 && !hot) continue;
      ctx.fillStyle = hot ? t.accent : t.text;
      if (rotate) {
        ctx.save();
        ctx.translate(xc, yl);
        ctx.rotate(Math.PI / 4);
        ctx.textAlign = "left";
        ctx.fillText(clip(ctx, labels[c], 140), 0, 0);
        ctx.restore();
      } else {
        ctx.textAlign = "center";
        ctx.fillText(labels[c], xc, yl + t.fontSize / 2);
      }
    }
    if (d.colTitle) {
      ctx.font = font;
      ctx.fillStyle = t.muted;
      ctx.textAlign = "center";
      ctx.fillText(d.colTitle, x0 + (d.cols * cw) / 2, height - 8);
    }
    // hover and selection outlines
    const outline = (cell: [number, number] | null, color: string, lw: number) => {
      if (!cell) return;
      ctx.strokeStyle = color;
      ctx.lineWidth = lw;
      ctx.strokeRect(x0 + cell[1] * cw + lw / 2, g.y0 + this.displayRow(cell[0]) * ch + lw / 2, cw - gap - lw, ch - gap - lw);
    };
    outline(this.hovered, t.muted, 1);
    outline(this.selected, t.dark ? "#ffd54f" : "#ff6f00", 2);
  }
}

/** The narrowest column a narrow box (a side panel) allows: a cell, without its text. */
export const NARROW_MIN_CELL = 16;

/** A column's width in a box `box` px wide of which `used` px go to labels and margins: the columns share out
 * the rest (in 1/8 px steps, so rounding never overflows the box), between the view's `min` and `max`. In a
 * narrow box `min` gives way down to NARROW_MIN_CELL, so that a short prompt fits without scrolling. */
export function cellWidthFor(box: number, used: number, cols: number, min = 14, max = Infinity): number {
  const narrow = isNarrow(box);
  const avail = narrow ? box - used : Math.max(200, box - used);
  const share = Math.min(max, Math.floor((8 * avail) / Math.max(1, cols)) / 8);
  return Math.max(narrow ? Math.min(min, NARROW_MIN_CELL) : min, share);
}

/** The smallest of 1, 2, 5, 10, 20, 50... that is at least `needed` (cells per label). */
function labelStep(needed: number): number {
  for (let base = 1; ; base *= 10) for (const m of [1, 2, 5]) if (m * base >= needed) return m * base;
}

function clip(ctx: CanvasRenderingContext2D, s: string, width: number): string {
  if (ctx.measureText(s).width <= width) return s;
  let out = s;
  while (out.length > 1 && ctx.measureText(out + "…").width > width) out = out.slice(0, -1);
  return out + "…";
}

const labelCache = new Map<number, string[]>();
/** Axis labels "0", "1", ... "n-1" (layers), one shared array per n. */
export function layerLabels(n: number): string[] {
  let l = labelCache.get(n);
  if (!l) labelCache.set(n, (l = Array.from({ length: n }, (_, i) => String(i))));
  return l;
}

function sameList<T>(a: ArrayLike<T>, b: ArrayLike<T>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return false;
  return true;
}

/** Whether two payloads draw the same canvas: sizes, labels, values, colours and cell text. */
function samePicture(a: HeatmapData, b: HeatmapData): boolean {
  if (a.rows !== b.rows || a.cols !== b.cols || a.rowTitle !== b.rowTitle || a.colTitle !== b.colTitle) return false;
  if (!sameList(a.rowLabels, b.rowLabels) || !sameList(a.colLabels, b.colLabels) || !sameList(a.values, b.values)) return false;
  const ends = (s: Scale) => [s.kind, s.min, s.max, ...[s.min, (s.min + s.max) / 2, s.max].map((v) => css(s.color(v)))];
  if (!sameList(ends(a.scale), ends(b.scale)) || !a.cellText !== !b.cellText) return false;
  for (let r = 0; r < a.rows && a.cellText; r++)
    for (let c = 0; c < a.cols; c++) if (a.cellText(r, c) !== b.cellText!(r, c)) return false;
  return true;
}

function sameTheme(a: Theme | null, b: Theme): boolean {
  return a !== null && JSON.stringify(a) === JSON.stringify(b);
}
