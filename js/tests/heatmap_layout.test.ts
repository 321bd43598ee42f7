// Heatmap layout as a user sees it: the explorer's 30 layer labels all drawn when they fit and thinned
// regularly when they do not, the map filling its panel's width, and hover tooltips kept inside the
// visible box (flipped above the pointer near the bottom, left of it near the right edge).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Heatmap } from "../src/components/heatmap";
import { placeTooltip } from "../src/components/tooltip";
import { render } from "../src/host";
import { sequential, readTheme } from "../src/core/theme";
import { Call, FakeModel, installRecordingCanvas, packed } from "./fakes";

const L = 30; // the default model's layers
const tokens = ["The", " E", "iffel", " Tower", " is", " located", " in", " the", " city", " of"];
const T = tokens.length;
const WIDTH = 1000;

const fill = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));
const drawnOn = (calls: Call[], canvas: HTMLCanvasElement, op = "fillText") =>
  calls.filter((c) => (c as any).canvas === canvas && c.op === op);

function explorer() {
  const model = new FakeModel({
    view: "explorer", prompt: tokens.join(""), target: "", stat: "max_act", rank_by: "contribution", lens_stage: "post",
    lens_value: "prob", cell: {}, neuron: {}, slot: [], slot_title: "", values: {},
    data: { prompt: tokens.join(""), tokens, n_layers: L, d_mlp: 8, target: { id: 1, text: " Paris" }, predictions: [],
      grids: { max_act: packed("float32", [L, T], fill(L * T, (i) => i % 7)), contrib: packed("float32", [L, T], fill(L * T, () => 0)) } },
  });
  const el = document.createElement("div");
  document.body.appendChild(el);
  render({ model, el });
  return el.querySelector<HTMLCanvasElement>(".fw-activation-panel canvas.fw-heatmap-canvas")!;
}

describe("heatmap layout", () => {
  let calls: Call[];
  const clientWidth = Object.getOwnPropertyDescriptor(Element.prototype, "clientWidth")!;
  beforeEach(() => {
    document.body.innerHTML = "";
    calls = installRecordingCanvas();
    Object.defineProperty(Element.prototype, "clientWidth", { configurable: true, get: () => WIDTH });
  });
  afterEach(() => Object.defineProperty(Element.prototype, "clientWidth", clientWidth));

  it("the explorer labels every one of 30 layers and fills its width", () => {
    const canvas = explorer();
    const layers = drawnOn(calls, canvas).map((c) => String(c.args[0])).filter((s) => /^\d+$/.test(s)).map(Number);
    expect([...new Set(layers)].sort((a, b) => a - b)).toEqual(fill(L, (i) => i)); // (drawn once per redraw)
    const width = parseFloat(canvas.style.width);
    expect(width).toBeLessThanOrEqual(WIDTH); // never wider than its box (no scroll bar)...
    expect(width).toBeGreaterThan(WIDTH - 2); // ...and no empty strip on the right
    const g = JSON.parse(canvas.dataset.geometry!);
    expect(g.x0 + T * g.cw).toBeGreaterThan(WIDTH - 10);
  });

  it("labels that do not fit are thinned regularly, the top one included only on the step", () => {
    const hm = new Heatmap({ flipRows: true, cellHeight: 8 });
    document.body.appendChild(hm.el);
    const rowLabels = fill(L, String);
    hm.setData({ rows: L, cols: 3, values: new Float32Array(L * 3), rowLabels, colLabels: ["a", "b", "c"],
      scale: sequential(readTheme(document.body), 0, 1) });
    const drawn = drawnOn(calls, hm.canvas).map((c) => String(c.args[0])).filter((s) => rowLabels.includes(s)).map(Number);
    expect([...new Set(drawn)].sort((a, b) => a - b)).toEqual(fill(15, (i) => 2 * i)); // 0, 2, ..., 28: no crowded 28/29 pair
  });

  it("rotated token labels keep the canvas inside its box", () => {
    const hm = new Heatmap({ minCellWidth: 10 });
    document.body.appendChild(hm.el);
    const cols = 40;
    hm.setData({ rows: 2, cols, values: new Float32Array(2 * cols), rowLabels: ["0", "1"],
      colLabels: fill(cols, (i) => ` token${i}`), scale: sequential(readTheme(document.body), 0, 1) });
    expect(drawnOn(calls, hm.canvas, "rotate").length).toBeGreaterThan(0);
    expect(parseFloat(hm.canvas.style.width)).toBeLessThanOrEqual(WIDTH);
  });

  it("the same picture again is not repainted; a changed value, cell text, theme or selection is", () => {
    const map = new Heatmap();
    document.body.appendChild(map.el);
    const data = (values: number[], text = "a") => ({
      rows: 2, cols: 3, values: Float32Array.from(values), rowLabels: ["0", "1"], colLabels: ["x", "y", "z"],
      scale: sequential(readTheme(map.el), 0, 5), cellText: () => text,
    });
    const paints = () => drawnOn(calls, map.canvas, "clearRect").length;
    map.setData(data([0, 1, 2, 3, 4, NaN]));
    expect(paints()).toBe(1);
    map.setData(data([0, 1, 2, 3, 4, NaN])); // a streamed payload's next part: the same grid, decoded anew
    map.select(null);
    expect(paints()).toBe(1);
    map.setData(data([0, 1, 2, 3, 4, 5]));
    expect(paints()).toBe(2);
    map.setData(data([0, 1, 2, 3, 4, 5], "b"));
    expect(paints()).toBe(3);
    map.select([1, 2]);
    map.select([1, 2]);
    expect(paints()).toBe(4);
    document.body.setAttribute("data-jp-theme-light", "false");
    map.setData(data([0, 1, 2, 3, 4, 5], "b"));
    document.body.removeAttribute("data-jp-theme-light");
    expect(paints()).toBe(5);
  });
});

describe("tooltips stay inside the visible box", () => {
  beforeEach(() => {
    document.body.innerHTML = "";
    installRecordingCanvas();
  });

  it("placement: right/below by default, flipped near the edges, clamped when nothing fits", () => {
    const view = { left: 0, top: 0, width: 400, height: 200 };
    expect(placeTooltip(10, 10, 100, 50, view)).toEqual([24, 24]);
    expect(placeTooltip(390, 190, 100, 50, view)).toEqual([390 - 14 - 100, 190 - 14 - 50]);
    expect(placeTooltip(10, 100, 100, 190, view)).toEqual([24, 10]); // taller than either side: clamped
    // a scrolled box: the visible part starts at the scroll offset
    expect(placeTooltip(410, 20, 100, 50, { left: 200, top: 0, width: 400, height: 200 })).toEqual([410 + 14, 34]);
    expect(placeTooltip(250, 20, 100, 50, { left: 200, top: 0, width: 120, height: 200 })).toEqual([220, 34]);
  });

  it("the causal trace's tooltip on the bottom row flips above the pointer", async () => {
    const kinds = ["mlp"];
    const toks = ["The", " E", "iffel", " of"];
    const layers = 6;
    const scores = packed("float32", [toks.length, layers], fill(toks.length * layers, (i) => i / 24));
    const model = new FakeModel({
      view: "causal_trace", neurons: {}, selected: {},
      grid: { tokens: toks, subject: [1, 3], kinds, n_layers: layers, window: 2, target: " Paris", p_clean: 0.5,
        p_corrupted: 0.1, samples: 10, corrupted_prompt: null, status: "done", finished: toks.length,
        scores: { mlp: scores }, spread: { mlp: scores } },
    });
    const el = document.createElement("div");
    document.body.appendChild(el);
    render({ model, el });
    const canvas = el.querySelector<HTMLCanvasElement>(".fw-trace-map canvas")!;
    const box = canvas.parentElement!;
    const tip = box.querySelector<HTMLElement>(".fw-tooltip")!;
    const g = JSON.parse(canvas.dataset.geometry!);
    const [w, h] = [parseFloat(canvas.style.width), parseFloat(canvas.style.height)];
    const rect = { left: 0, top: 0, right: w, bottom: h, width: w, height: h, x: 0, y: 0, toJSON() {} };
    canvas.getBoundingClientRect = () => rect;
    box.getBoundingClientRect = () => rect;
    Object.defineProperty(box, "clientHeight", { value: h });
    Object.defineProperty(tip, "offsetWidth", { value: 220 });
    Object.defineProperty(tip, "offsetHeight", { value: 90 });
    // the bottom-right cell
    const [x, y] = [g.x0 + (layers - 0.5) * g.cw, g.y0 + (toks.length - 0.5) * g.ch];
    canvas.dispatchEvent(new MouseEvent("mousemove", { clientX: x, clientY: y }));
    await new Promise((r) => setTimeout(r, 60)); // hover is handled once per animation frame
    expect(tip.style.display).toBe("block");
    expect(tip.textContent).toContain(`layer ${layers - 1} · token ${toks.length - 1}`);
    const [left, top] = [parseFloat(tip.style.left), parseFloat(tip.style.top)];
    expect(top + 90).toBeLessThanOrEqual(h); // not cut off at the bottom of the map
    expect(top).toBeLessThan(y); // above the pointer
    expect(top).toBeGreaterThanOrEqual(0);
    expect(left).toBeGreaterThanOrEqual(0);
    expect(left + 220).toBeLessThanOrEqual(Math.max(w, 220));
  });
});
