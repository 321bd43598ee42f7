// The prompt views with a fake model: payload decoding, the canvas is drawn, hover/click stay in the
// browser, gestures send the right messages, model text is never parsed as HTML.
import { beforeEach, describe, expect, it } from "vitest";
import { render, initialize } from "../src/host";
import { FakeModel, installRecordingCanvas, packed } from "./fakes";

const L = 3; // layers
const T = 4; // tokens
const K = 2; // neurons per cell
const tokens = ["<b>x</b>", " Eiffel", " in", " of"];

function grid(f: (l: number, t: number) => number) {
  const out: number[] = [];
  for (let l = 0; l < L; l++) for (let t = 0; t < T; t++) out.push(f(l, t));
  return out;
}

function topTable(base: number) {
  const ids: number[] = [], act: number[] = [], contrib: number[] = [];
  for (let l = 0; l < L; l++)
    for (let t = 0; t < T; t++)
      for (let i = 0; i < K; i++) {
        ids.push(base + 100 * l + 10 * t + i);
        act.push(l + t / 4 + i / 8);
        contrib.push(-(l + i) / 2);
      }
  return { ids: packed("int32", [L, T, K], ids), act: packed("float16", [L, T, K], act), contrib: packed("float16", [L, T, K], contrib) };
}

function lensStage() {
  return {
    prob: packed("float16", [L, T], grid((l, t) => (l * T + t) / (L * T))),
    rank: packed("int32", [L, T], grid((l, t) => 100 - l * T - t)),
    top: packed("int32", [L, T], grid((l) => 500 + l)),
    top_prob: packed("float16", [L, T], grid(() => 0.5)),
  };
}

function state(extra: Record<string, unknown> = {}) {
  return {
    view: "explorer",
    prompt: "The Eiffel in of",
    target: "",
    stat: "max_act",
    rank_by: "contribution",
    lens_stage: "post",
    lens_value: "prob",
    cell: {},
    neuron: {},
    slot: [],
    slot_title: "",
    data: {
      prompt: "The Eiffel in of",
      tokens,
      n_layers: L,
      d_mlp: 1000,
      target: { id: 7, text: " Paris" },
      predictions: [{ id: 7, text: " Paris", prob: 0.4 }, { id: 8, text: " <i>Rome</i>", prob: 0.1 }],
      grids: { max_act: packed("float16", [L, T], grid((l, t) => l + t)), contrib: packed("float16", [L, T], grid((l, t) => l - t)) },
      top: { activation: topTable(0), contribution: topTable(5) },
      lens: { post: lensStage(), mid: lensStage() },
      vocab: { ids: packed("int32", [4], [7, 500, 501, 502]), text: [" Paris", "<script>", " the", " city"] },
    },
    values: {
      neurons: packed("int32", [1, 2], [1, 115]),
      top: packed("int32", [1, 2], [7, 501]),
      vocab: { ids: packed("int32", [2], [7, 501]), text: [" Paris", " the"] },
    },
    ...extra,
  };
}

function mount(extra: Record<string, unknown> = {}) {
  const model = new FakeModel(state(extra));
  const el = document.createElement("div");
  document.body.appendChild(el);
  initialize({ model });
  const cleanup = render({ model, el });
  return { model, el, cleanup };
}

function click(canvas: HTMLCanvasElement, x: number, y: number) {
  canvas.getBoundingClientRect = () => ({ left: 0, top: 0, right: 2000, bottom: 2000, width: 2000, height: 2000, x: 0, y: 0, toJSON() {} });
  canvas.dispatchEvent(new MouseEvent("click", { clientX: x, clientY: y, bubbles: true }));
}

function cellCenter(canvas: HTMLCanvasElement, layer: number, token: number): [number, number] {
  const g = JSON.parse(canvas.dataset.geometry!);
  const row = g.flip ? L - 1 - layer : layer;
  return [g.x0 + (token + 0.5) * g.cw, g.y0 + (row + 0.5) * g.ch];
}

describe("explorer view", () => {
  let calls: ReturnType<typeof installRecordingCanvas>;
  beforeEach(() => {
    document.body.innerHTML = "";
    calls = installRecordingCanvas();
  });

  it("draws both heatmaps with one coloured cell per layer × token", () => {
    const { el } = mount();
    const canvases = el.querySelectorAll<HTMLCanvasElement>("canvas.fw-heatmap-canvas");
    expect(canvases.length).toBe(2);
    for (const c of canvases) {
      expect(c.dataset.rows).toBe(String(L));
      expect(c.dataset.cols).toBe(String(T));
      const cells = calls.filter((k) => (k as any).canvas === c && k.op === "fillRect");
      expect(cells.length).toBeGreaterThanOrEqual(L * T);
      expect(new Set(cells.map((k) => k.fillStyle)).size).toBeGreaterThan(3); // a real colour scale, not one colour
    }
    // lens cell text is the top token from the vocab table, drawn as canvas text
    const texts = calls.filter((k) => k.op === "fillText").map((k) => String(k.args[0]));
    expect(texts).toContain("<script>");
  });

  it("a click lists the cell's top neurons from browser data, without a kernel message", () => {
    const { el, model } = mount();
    const heat = el.querySelector<HTMLCanvasElement>(".fw-activation-panel canvas.fw-heatmap-canvas")!;
    click(heat, ...cellCenter(heat, 1, 1));
    expect(model.get("cell")).toEqual({ layer: 1, token: 1 });
    expect(model.sent.length).toBe(0); // no round trip: the rows are already here
    const rows = [...el.querySelectorAll<HTMLTableRowElement>(".fw-neuron-table tbody tr")];
    // ranked by contribution: table "contribution" starts its ids at 5
    expect(rows.map((r) => r.dataset.neuron)).toEqual(["115", "116"]);
    expect(rows[0].textContent).toContain("L1.N115");
    expect(rows[0].textContent).toContain("␣Paris"); // value-vector tokens arrived in `values`
    expect(rows[1].textContent).toContain("…"); // not (yet) sent for this neuron
    // switching the ranking is browser-only too
    (el.querySelector('.fw-neurons-panel button[data-value="activation"]') as HTMLButtonElement).click();
    const ids = [...el.querySelectorAll<HTMLTableRowElement>(".fw-neuron-table tbody tr")].map((r) => r.dataset.neuron);
    expect(ids).toEqual(["110", "111"]);
    expect(model.sent.length).toBe(0);
  });

  it("picking a neuron, a target and a prompt send the right messages", () => {
    const { el, model } = mount({ cell: { layer: 2, token: 3 } });
    el.querySelector<HTMLTableRowElement>(".fw-neuron-table tbody tr")!.click();
    expect(model.sent.at(-1)).toEqual({ type: "select_neuron", layer: 2, neuron: 235 });
    const select = el.querySelector<HTMLSelectElement>('select[aria-label="target token"]')!;
    select.value = " <i>Rome</i>";
    select.dispatchEvent(new Event("change"));
    expect(model.sent.at(-1)).toEqual({ type: "set_target", target: " <i>Rome</i>" });
    const input = el.querySelector<HTMLInputElement>('input[aria-label="prompt"]')!;
    input.value = "The Colosseum is in";
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    const last = model.sent.at(-1);
    expect(last.type).toBe("set_prompt");
    expect(last.prompt).toBe("The Colosseum is in");
    expect(typeof last._ack).toBe("number"); // coalesced: acknowledged by the kernel
  });

  it("model text is inserted as text, never parsed as HTML", () => {
    const { el } = mount({ cell: { layer: 0, token: 0 } });
    expect(el.querySelector("b, i, script")).toBeNull();
    expect(el.textContent).toContain("<b>x</b>");
    expect(el.textContent).toContain("<i>Rome</i>");
  });

  it("the selected neuron becomes the heatmap statistic and a new payload redraws", () => {
    const { el, model } = mount();
    const heat = el.querySelector<HTMLCanvasElement>(".fw-activation-panel canvas.fw-heatmap-canvas")!;
    model.set("neuron", { layer: 1, neuron: 42, acts: packed("float32", [T], [1, -2, 3, 0.5]) });
    model.set("stat", "neuron");
    expect(heat.parentElement!.dataset.stat).toBe("neuron");
    expect(el.textContent).toContain("L1.N42");
    const before = calls.length;
    const s = state();
    (s.data as any).tokens = ["a", "b"];
    (s.data as any).grids = { max_act: packed("float16", [L, 2], [1, 2, 3, 4, 5, 6]), contrib: packed("float16", [L, 2], [0, 0, 0, 0, 0, 1]) };
    delete (s.data as any).top;
    delete (s.data as any).lens;
    model.set("stat", "max_act");
    model.set("data", s.data);
    expect(heat.dataset.cols).toBe("2");
    expect(calls.length).toBeGreaterThan(before);
  });

  it("a new prompt moves the selection to its last token; a new target keeps it", () => {
    const { el, model } = mount({ cell: { layer: 2, token: 0 } });
    const heat = el.querySelector<HTMLCanvasElement>(".fw-activation-panel canvas.fw-heatmap-canvas")!;
    const title = () => el.querySelector(".fw-neurons-panel .fw-title")!.textContent;
    expect(title()).toContain("token 0");
    // same tokens, another target: the selection stays
    model.set("data", { ...state().data, target: { id: 8, text: " <i>Rome</i>" } });
    expect(model.get("cell")).toEqual({ layer: 2, token: 0 });
    // the kernel answers a new prompt with new tokens (its own cell message may come later or not at all)
    const s = state();
    const data = { ...(s.data as any), prompt: "a b c", tokens: ["a", " b", " c"] };
    data.grids = { max_act: packed("float16", [L, 3], Array(3 * L).fill(1)), contrib: packed("float16", [L, 3], Array(3 * L).fill(0)) };
    delete data.top;
    delete data.lens;
    model.set("data", data);
    expect(model.get("cell")).toEqual({ layer: 2, token: 2 }); // where the next-token prediction is read
    expect(model.saved).toBeGreaterThan(0); // ...and the kernel hears it
    expect(title()).toContain("token 2 ␣c");
    const g = JSON.parse(heat.dataset.geometry!);
    const outline = calls.filter((k) => (k as any).canvas === heat && k.op === "strokeRect").at(-1)!;
    expect(Math.floor(((outline.args[0] as number) - g.x0) / g.cw)).toBe(2);
    // a cleared selection clears the outline too
    calls.length = 0;
    model.set("cell", {});
    expect(calls.some((k) => (k as any).canvas === heat && k.op === "strokeRect")).toBe(false);
  });

  it("draws the heatmap from the first part and shows the parts still coming", () => {
    const full = state().data as any;
    const first = { ...full, target: { id: 8, text: " <i>Rome</i>" }, pending: ["top", "lens"] };
    delete first.top;
    delete first.lens;
    const { el, model } = mount({ data: first, values: {}, cell: { layer: 1, token: 1 } });
    const [heat, lens] = el.querySelectorAll<HTMLCanvasElement>("canvas.fw-heatmap-canvas");
    const cells = (c: HTMLCanvasElement) => calls.filter((k) => (k as any).canvas === c && k.op === "fillRect").length;
    const content = el.querySelector<HTMLElement>(".fw-content")!;
    const lensWait = el.querySelector<HTMLElement>(".fw-lens-panel .fw-waiting")!;
    const tableWait = el.querySelector<HTMLElement>(".fw-neurons-panel .fw-waiting")!;
    expect(cells(heat)).toBeGreaterThanOrEqual(L * T); // the heatmap at once
    expect(cells(lens)).toBe(0); // the lens: its empty grid with the new tokens...
    expect(lens.dataset.cols).toBe(String(T));
    expect(lensWait.style.display).toBe(""); // ...and a note that it is coming
    expect(lensWait.textContent).toContain("computing the logit lens");
    expect(el.querySelector(".fw-lens-panel .fw-legend")!.textContent).toContain("p(␣<i>Rome</i>)"); // this prompt's target
    expect(tableWait.style.display).toBe("");
    expect(el.querySelector<HTMLElement>(".fw-neuron-table")!.style.display).toBe("none");
    expect(content.dataset.missing).toBe("top lens values");
    expect(content.dataset.prompt).toBe("The Eiffel in of");
    // the tables arrive: rows at once, value tokens still "…"
    model.set("data", { ...full, lens: undefined, pending: ["lens"] });
    expect(tableWait.style.display).toBe("none");
    const rows = [...el.querySelectorAll<HTMLTableRowElement>(".fw-neuron-table tbody tr")];
    expect(rows.map((r) => r.dataset.neuron)).toEqual(["115", "116"]);
    expect(rows.every((r) => r.textContent!.includes("…"))).toBe(true);
    expect(content.dataset.missing).toBe("lens values");
    // the lens stage shown arrives (the other stage is not sent until asked for)
    model.set("data", { ...full, lens: { post: full.lens.post }, pending: [] });
    expect(cells(lens)).toBeGreaterThanOrEqual(L * T);
    expect(lensWait.style.display).toBe("none");
    expect(calls.some((k) => k.op === "fillText" && k.args[0] === "<script>")).toBe(true);
    // switching to the stage not computed yet: the kernel hears it, the lens waits again
    const saved = model.saved;
    (el.querySelector('.fw-lens-panel button[data-value="mid"]') as HTMLButtonElement).click();
    expect(model.get("lens_stage")).toBe("mid");
    expect(model.saved).toBe(saved + 1);
    expect(lensWait.style.display).toBe("");
    expect(el.querySelector<HTMLElement>(".fw-lens-panel")!.dataset.pending).toBe("true");
    model.set("data", { ...full, pending: [] });
    expect(lensWait.style.display).toBe("none");
    // every listed neuron's value tokens: nothing is missing any more
    const ids: number[] = [];
    const tops: number[] = [];
    for (const base of [0, 5]) for (let l = 0; l < L; l++) for (let t = 0; t < T; t++) for (let i = 0; i < K; i++) {
      ids.push(l, base + 100 * l + 10 * t + i);
      tops.push(7, 501);
    }
    model.set("values", { neurons: packed("int32", [ids.length / 2, 2], ids), top: packed("int32", [ids.length / 2, 2], tops),
      vocab: { ids: packed("int32", [2], [7, 501]), text: [" Paris", " the"] } });
    expect(content.dataset.missing).toBe("");
    expect(el.querySelector(".fw-neuron-table tbody tr")!.textContent).toContain("␣Paris");
  });

  it("waiting states leave the CPU to the kernel: looping animations move by transform, in steps", () => {
    const first = { ...(state().data as any), pending: ["top", "lens"] };
    delete first.lens;
    const { el } = mount({ data: first, progress: { message: "Logit lens", fraction: null } });
    expect(el.querySelector(".fw-progress .fw-indeterminate")).not.toBeNull(); // the frame's bar moves
    expect(el.querySelector(".fw-lens-panel .fw-waiting .fw-progress-fill")).toBeNull(); // the panel's note is still
    const css = [...document.querySelectorAll("style")].map((s) => s.textContent ?? "").join("\n");
    const looping = [...css.matchAll(/animation:\s*([\w-]+)[^;}]*infinite[^;}]*/g)];
    expect(looping.length).toBeGreaterThan(0);
    for (const [decl, name] of looping) {
      expect(decl).toMatch(/steps\(\d+\)/); // a few repaints a second, not one per frame
      const frames = css.match(new RegExp(`@keyframes ${name} \\{(.*?\\})\\s*\\}`, "s"))![1];
      expect([...frames.matchAll(/([\w-]+)\s*:/g)].map((m) => m[1])).toEqual(["transform", "transform"]); // no layout
    }
  });

  it("a part that failed is not shown as coming", () => {
    const first = { ...(state().data as any), pending: [] };
    delete first.lens;
    const { el } = mount({ data: first, error: "RuntimeError: out of memory" });
    expect(el.querySelector<HTMLElement>(".fw-lens-panel .fw-waiting")!.style.display).toBe("none");
  });

  it("cleans up its listeners", () => {
    const { model, cleanup } = mount();
    expect(model.listenerCount("change:data")).toBe(1);
    cleanup();
    expect(model.listenerCount("change:data")).toBe(0);
    expect(model.listenerCount("change:slot")).toBe(0);
  });
});
