// Views in a narrow box (the FFN side panel, 350–450 px): token maps compress their columns so a short prompt
// fits, a long one starts scrolled to its last token (where the prediction is read), and the frame marks a
// narrow root so the stylesheets reflow. Wide boxes keep their layout.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cellWidthFor, Heatmap, NARROW_MIN_CELL } from "../src/components/heatmap";
import { isNarrow, NARROW_WIDTH, watchNarrow } from "../src/core/narrow";
import { readTheme, sequential } from "../src/core/theme";
import { installRecordingCanvas } from "./fakes";

describe("column width", () => {
  it("a wide box keeps the view's minimum (a long prompt scrolls, as before)", () => {
    expect(cellWidthFor(1000, 100, 10, 40)).toBe(90);
    expect(cellWidthFor(1000, 100, 40, 40)).toBe(40);
  });

  it("a narrow box shares its width out below the minimum, down to a floor", () => {
    const cw = cellWidthFor(320, 75, 10, 40);
    expect(cw).toBeLessThan(40);
    expect(75 + 10 * cw).toBeLessThanOrEqual(320); // ten tokens fit a docked panel
    expect(cellWidthFor(320, 75, 60, 40)).toBe(NARROW_MIN_CELL); // sixty do not: the map scrolls
    expect(cellWidthFor(320, 90, 30, 8, 22)).toBe(8); // a minimum under the floor stays
  });

  it("narrow is a laid-out box under the threshold", () => {
    expect([isNarrow(0), isNarrow(380), isNarrow(NARROW_WIDTH - 1), isNarrow(NARROW_WIDTH), isNarrow(900)])
      .toEqual([false, true, true, false, false]);
  });
});

describe("a token map in a narrow box", () => {
  const clientWidth = Object.getOwnPropertyDescriptor(Element.prototype, "clientWidth")!;
  let box = 320;
  beforeEach(() => {
    document.body.innerHTML = "";
    installRecordingCanvas();
    Object.defineProperty(Element.prototype, "clientWidth", { configurable: true, get: () => box });
  });
  afterEach(() => Object.defineProperty(Element.prototype, "clientWidth", clientWidth));

  /** A map of `cols` tokens whose box records the scroll position it is given. */
  function tokenMap(cols: number, keepLastColumn = true) {
    const map = new Heatmap({ minCellWidth: 40, keepLastColumn });
    let scrolled = 0;
    Object.defineProperty(map.el, "scrollLeft", { configurable: true, get: () => scrolled, set: (v) => { scrolled = Math.max(0, Math.min(v, map.el.scrollWidth - box)); } });
    Object.defineProperty(map.el, "scrollWidth", { get: () => parseFloat(map.canvas.style.width) || 0 });
    document.body.appendChild(map.el);
    const data = (n: number) => ({ rows: 2, cols: n, values: new Float32Array(2 * n), rowLabels: ["0", "1"],
      colLabels: Array.from({ length: n }, (_, i) => ` tok${i}`), scale: sequential(readTheme(document.body), 0, 1) });
    map.setData(data(cols));
    const lastColumn = () => {
      const g = JSON.parse(map.canvas.dataset.geometry!);
      return g.x0 + (cols - 0.5) * g.cw - scrolled; // where the last column is drawn, in the box
    };
    return { map, data, lastColumn, width: () => parseFloat(map.canvas.style.width), scroll: () => scrolled };
  }

  it("ten tokens fit without scrolling", () => {
    const { width, lastColumn, scroll } = tokenMap(10);
    expect(width()).toBeLessThanOrEqual(box);
    expect(scroll()).toBe(0);
    expect(lastColumn()).toBeLessThan(box);
  });

  it("a long prompt starts scrolled to its last token", () => {
    const { width, lastColumn } = tokenMap(60);
    expect(width()).toBeGreaterThan(box);
    expect(lastColumn()).toBeGreaterThan(0);
    expect(lastColumn()).toBeLessThan(box);
  });

  it("a map whose columns are not tokens (the causal trace's layers) starts at the left", () => {
    expect(tokenMap(60, false).scroll()).toBe(0);
  });

  it("a user who scrolled away is left there; a new prompt goes back to its last token", () => {
    const { map, data, scroll } = tokenMap(60);
    map.el.scrollLeft = 0;
    map.el.dispatchEvent(new Event("scroll"));
    map.select([0, 3]);
    expect(scroll()).toBe(0);
    map.setData(data(61));
    expect(scroll()).toBeGreaterThan(0);
  });

  it("a wide box draws as before: the minimum width, scrolled to the end only when it overflows", () => {
    box = 1000;
    const { width, scroll } = tokenMap(10);
    expect(width()).toBeLessThanOrEqual(1000);
    expect(width()).toBeGreaterThan(998);
    expect(scroll()).toBe(0);
    box = 320;
  });
});

describe("the frame marks a narrow root", () => {
  const saved = (globalThis as any).ResizeObserver;
  afterEach(() => { (globalThis as any).ResizeObserver = saved; });

  it("from the root's own width, following resizes", () => {
    const observed: (() => void)[] = [];
    (globalThis as any).ResizeObserver = class { constructor(cb: () => void) { observed.push(cb); } observe() {} disconnect() {} };
    const el = document.createElement("div");
    let width = 380;
    Object.defineProperty(el, "clientWidth", { get: () => width });
    const stop = watchNarrow(el);
    observed.forEach((cb) => cb());
    expect(el.classList.contains("fw-narrow")).toBe(true);
    width = 900;
    observed.forEach((cb) => cb());
    expect(el.classList.contains("fw-narrow")).toBe(false);
    stop();
  });
});
