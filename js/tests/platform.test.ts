import { beforeEach, describe, expect, it } from "vitest";
import { decode, decodeFloat, halfToFloat } from "../src/core/arrays";
import { render, initialize } from "../src/host";
import * as bundle from "../src/widget";
import { sendLatest, onMessage } from "../src/core/messages";
import { views } from "../src/views/index";
import { diverging, sequential, readTheme, parseColor } from "../src/core/theme";
import { Heatmap } from "../src/components/heatmap";
import { showToken } from "../src/core/format";
import { FakeModel, installRecordingCanvas, packed, toHalf } from "./fakes";

describe("arrays", () => {
  it("decodes every dtype from a DataView with a byte offset", () => {
    const f = decode(packed("float32", [2, 2], [1.5, -2, 3, 4]) as any);
    expect(Array.from(f.data)).toEqual([1.5, -2, 3, 4]);
    expect(f.shape).toEqual([2, 2]);
    expect(Array.from(decode(packed("int32", [3], [7, -1, 49151]) as any).data)).toEqual([7, -1, 49151]);
    expect(Array.from(decode(packed("uint8", [2], [0, 255]) as any).data)).toEqual([0, 255]);
  });
  it("widens float16 like numpy does", () => {
    // bit patterns numpy produces for these values
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x3555)).toBeCloseTo(0.33325195, 7);
    expect(halfToFloat(0x0001)).toBeCloseTo(5.96e-8, 9);
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    const a = decodeFloat(packed("float16", [3], [0.1, 100.5, -7]) as any);
    expect(a.data[0]).toBeCloseTo(0.1, 3);
    expect(a.data[1]).toBe(100.5);
    expect(a.data[2]).toBe(-7);
  });
  it("copies when the offset is misaligned", () => {
    const big = new Uint8Array(13);
    new DataView(big.buffer).setFloat32(1, 2.25, true);
    const a = decode({ dtype: "float32", shape: [1], data: new DataView(big.buffer, 1, 4) });
    expect(a.data[0]).toBe(2.25);
  });
  it("rejects a shape that does not match the data", () => {
    expect(() => decode(packed("float32", [3], [1, 2]) as any)).toThrow(/shape/);
  });
  it("toHalf helper agrees with the decoder", () => {
    expect(halfToFloat(toHalf(0.5))).toBe(0.5);
  });
});

describe("frame and registry", () => {
  beforeEach(() => {
    document.body.innerHTML = "";
  });
  it("shows an unknown view clearly instead of crashing", () => {
    const model = new FakeModel({ view: "nope" });
    const el = document.createElement("div");
    render({ model, el });
    expect(el.textContent).toContain('Unknown view "nope"');
  });
  it("shows kernel errors as text and lets the user dismiss them", () => {
    views["_probe"] = ({ el }) => {
      el.appendChild(document.createElement("p"));
    };
    const model = new FakeModel({ view: "_probe" });
    const el = document.createElement("div");
    const cleanup = render({ model, el });
    model.set("error", "InputError: <b>bold</b> layer must be in 0..29");
    const box = el.querySelector(".fw-error")!;
    expect(box.textContent).toContain("<b>bold</b>");
    expect(box.querySelector("b")).toBeNull();
    (box.querySelector("button") as HTMLButtonElement).click();
    expect(model.get("error")).toBe("");
    expect(model.saved).toBe(1);
    expect(el.querySelector(".fw-error")).toBeNull();
    model.set("progress", { message: "Running the model", fraction: 0.5 });
    expect(el.querySelector(".fw-progress")!.textContent).toContain("Running the model");
    expect((el.querySelector(".fw-progress-fill") as HTMLElement).style.width).toBe("50%");
    model.set("progress", {});
    expect(el.querySelector(".fw-progress")).toBeNull();
    cleanup();
    expect(model.listenerCount("change:error")).toBe(0);
    expect(el.children.length).toBe(0);
    delete views["_probe"];
  });
  it("says at once when a view describes earlier weights, as text, with one click to recompute", () => {
    views["_probe"] = ({ el }) => {
      el.appendChild(document.createElement("p"));
    };
    const model = new FakeModel({ view: "_probe" });
    const el = document.createElement("div");
    const cleanup = render({ model, el });
    expect(el.querySelector(".fw-stale")).toBeNull();
    model.set("stale", "These results describe <i>earlier</i> weights");
    const box = el.querySelector(".fw-stale")!;
    expect(box.textContent).toContain("<i>earlier</i>");
    expect(box.querySelector("i")).toBeNull();
    expect(el.querySelector(".fw-root")!.classList.contains("fw-is-stale")).toBe(true);
    (box.querySelector("button") as HTMLButtonElement).click();
    expect(model.sent.at(-1)).toEqual({ type: "recompute" });
    model.set("stale", "");
    expect(el.querySelector(".fw-stale")).toBeNull();
    expect(el.querySelector(".fw-root")!.classList.contains("fw-is-stale")).toBe(false);
    const root = el.querySelector(".fw-root") as HTMLElement;
    expect(root.dataset.weightsVersion).toBeUndefined(); // a view that follows no model says nothing
    model.set("weights_version", 7);
    expect(root.dataset.weightsVersion).toBe("7");
    model.set("weights_version", -1);
    expect(root.dataset.weightsVersion).toBeUndefined();
    cleanup();
    expect(model.listenerCount("change:stale")).toBe(0);
    expect(model.listenerCount("change:weights_version")).toBe(0);
    delete views["_probe"];
  });
});

describe("sendLatest", () => {
  it("keeps one message in flight and only the newest waiting", () => {
    const model = new FakeModel({});
    const dispose = initialize({ model });
    for (let v = 1; v <= 5; v++) sendLatest(model, "slide", { value: v });
    expect(model.sent.map((m) => m.value)).toEqual([1]);
    const seen: any[] = [];
    const stop = onMessage(model, (m) => seen.push(m));
    model.emit("msg:custom", { type: "_ack", id: model.sent[0]._ack });
    expect(model.sent.map((m) => m.value)).toEqual([1, 5]);
    model.emit("msg:custom", { type: "_ack", id: model.sent[1]._ack });
    sendLatest(model, "slide", { value: 6 });
    expect(model.sent.map((m) => m.value)).toEqual([1, 5, 6]);
    expect(seen.length).toBe(2);
    stop();
    dispose();
    expect(model.listenerCount("msg:custom")).toBe(0);
  });
});

describe("theme and heatmap", () => {
  it("reads JupyterLab variables and follows the dark flag", () => {
    document.body.setAttribute("data-jp-theme-light", "false");
    document.body.style.setProperty("--jp-layout-color0", "#111111");
    const t = readTheme(document.body);
    expect(t.dark).toBe(true);
    expect(t.background).toBe("#111111");
    document.body.setAttribute("data-jp-theme-light", "true");
    expect(readTheme(document.body).dark).toBe(false);
    document.body.removeAttribute("data-jp-theme-light");
    document.body.style.removeProperty("--jp-layout-color0");
  });
  it("scales are monotonic in lightness and diverge around zero", () => {
    const t = readTheme(document.body);
    const s = sequential(t, 0, 1);
    const lum = (c: number[]) => c[0] + c[1] + c[2];
    expect(t.dark).toBe(false);
    expect(lum(s.color(0))).toBeGreaterThan(lum(s.color(0.5)));
    expect(lum(s.color(0.5))).toBeGreaterThan(lum(s.color(1)));
    document.body.setAttribute("data-jp-theme-light", "false");
    const sd = sequential(readTheme(document.body), 0, 1);
    expect(lum(sd.color(0))).toBeLessThan(lum(sd.color(0.5)));
    expect(lum(sd.color(0.5))).toBeLessThan(lum(sd.color(1)));
    document.body.removeAttribute("data-jp-theme-light");
    const d = diverging(t, 2);
    const [r1, , b1] = d.color(-2);
    const [r2, , b2] = d.color(2);
    expect(b1).toBeGreaterThan(r1);
    expect(r2).toBeGreaterThan(b2);
    expect(parseColor("rgb(1, 2, 3)")).toEqual([1, 2, 3]);
  });
  it("draws every cell, shows the tooltip as text and reports clicks by data row", () => {
    const calls = installRecordingCanvas();
    const clicks: number[][] = [];
    const hm = new Heatmap({
      flipRows: true,
      tooltip: (r, c) => [`<i>L${r}</i> t${c}`],
      onClick: (r, c) => clicks.push([r, c]),
    });
    document.body.appendChild(hm.el);
    const t = readTheme(document.body);
    hm.setData({
      rows: 3, cols: 2, values: new Float32Array([0, 0.2, 0.4, 0.6, 0.8, NaN]),
      rowLabels: ["L0", "L1", "L2"], colLabels: [" Paris", "\n"], scale: sequential(t, 0, 1),
    });
    const cells = calls.filter((c) => c.op === "fillRect");
    expect(cells.length).toBe(5); // the NaN cell stays empty
    expect(new Set(cells.map((c) => c.fillStyle)).size).toBe(5);
    const texts = calls.filter((c) => c.op === "fillText").map((c) => c.args[0]);
    expect(texts).toContain("␣Paris");
    expect(texts).toContain("⏎");
    // click the top-left cell: with flipRows, that is data row 2
    const [x, y] = hm.cellCenter(2, 0);
    hm.canvas.dispatchEvent(new MouseEvent("click", { clientX: x, clientY: y }));
    expect(clicks).toEqual([[2, 0]]);
    expect(hm.selection).toEqual([2, 0]);
    hm.canvas.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight" }));
    hm.canvas.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown" }));
    expect(clicks.at(-1)).toEqual([1, 1]);
    // the selected cell is outlined
    expect(calls.some((c) => c.op === "strokeRect")).toBe(true);
    expect(showToken(" ")).toBe("␣");
    hm.destroy();
  });
});

describe("the bundle's exports", () => {
  it("gives anywidget initialize and render in the default export only (a named render is deprecated there)", () => {
    expect((bundle as Record<string, unknown>).render).toBeUndefined();
    expect((bundle as Record<string, unknown>).initialize).toBeUndefined();
    expect(bundle.default.render).toBe(render);
    expect(bundle.default.initialize).toBe(initialize);
    expect(typeof bundle.mountExports).toBe("function");
  });
});
