// The causal-trace view with a fake model: rows fill in as the kernel publishes them, subject tokens are
// marked, an MLP click asks for neurons, the neuron list opens cards, model text stays text.
import { beforeEach, describe, expect, it } from "vitest";
import { render } from "../src/host";
import { Call, FakeModel, installRecordingCanvas, packed } from "./fakes";

const L = 4;
const tokens = ["The", " E", "iffel", " <b>of</b>"];
const T = tokens.length;

function grid(rowsDone: number[], status = "running", L = 4) {
  const values = (base: number) => {
    const out: number[] = [];
    for (let t = 0; t < T; t++) for (let l = 0; l < L; l++) out.push(rowsDone.includes(t) ? base + 0.01 * (t * L + l) : NaN);
    return out;
  };
  const kinds = ["hidden", "mlp", "attn"];
  return {
    tokens, subject: [1, 3], kinds, n_layers: L, window: 2, target: " Paris", p_clean: 0.7, p_corrupted: 0.05,
    samples: 10, corrupted_prompt: null, status, finished: rowsDone.length,
    scores: Object.fromEntries(kinds.map((k, i) => [k, packed("float32", [T, L], values(0.1 * i))])),
    spread: Object.fromEntries(kinds.map((k) => [k, packed("float32", [T, L], values(0))])),
  };
}

function cellFills(calls: Call[], canvas: HTMLCanvasElement) {
  return calls.filter((c) => (c as any).canvas === canvas && c.op === "fillRect").length;
}

describe("causal trace view", () => {
  let calls: Call[];
  beforeEach(() => {
    document.body.innerHTML = "";
    calls = installRecordingCanvas();
  });

  it("thins layer labels that do not fit to every 2nd, 5th... instead of overlapping them", () => {
    const width = Object.getOwnPropertyDescriptor(Element.prototype, "clientWidth")!;
    Object.defineProperty(Element.prototype, "clientWidth", { configurable: true, get: () => 300 });
    try {
      const model = new FakeModel({ view: "causal_trace", grid: grid([0, 1, 2, 3], "done", 30), neurons: {}, selected: {} });
      const el = document.createElement("div");
      document.body.appendChild(el);
      render({ model, el });
      const mlp = el.querySelector('.fw-trace-map[data-kind="mlp"] canvas') as HTMLCanvasElement;
      const geometry = JSON.parse(mlp.dataset.geometry!);
      const drawn = calls.filter((c) => (c as any).canvas === mlp && c.op === "fillText").map((c) => String(c.args[0]));
      const layers = drawn.filter((s) => /^\d+$/.test(s)).map(Number);
      const step = layers[1] - layers[0];
      expect(step * geometry.cw).toBeGreaterThanOrEqual(7 * 2 + 6); // two digits (the fake font: 7 px each) fit
      expect([2, 5, 10]).toContain(step);
      expect(layers).toEqual(Array.from({ length: Math.ceil(30 / step) }, (_, i) => i * step));
      expect(calls.some((c) => (c as any).canvas === mlp && c.op === "rotate" && c.args[0] === Math.PI / 4)).toBe(false);
    } finally {
      Object.defineProperty(Element.prototype, "clientWidth", width);
    }
  });

  it("draws three heatmaps and fills rows in as they arrive", () => {
    const model = new FakeModel({ view: "causal_trace", grid: grid([T - 1]), neurons: {}, selected: {} });
    const el = document.createElement("div");
    document.body.appendChild(el);
    render({ model, el });
    const canvases = [...el.querySelectorAll(".fw-trace-map canvas")] as HTMLCanvasElement[];
    expect(canvases.map((c) => c.closest(".fw-trace-map")!.getAttribute("data-kind"))).toEqual(["hidden", "mlp", "attn"]);
    const mlp = canvases[1];
    expect(cellFills(calls, mlp)).toBe(L); // one token row of L layers
    calls.length = 0;
    model.set("grid", grid([T - 1, T - 2]));
    expect(cellFills(calls, mlp)).toBe(2 * L);
    const labels = calls.filter((c) => (c as any).canvas === mlp && c.op === "fillText").map((c) => c.args[0]);
    expect(labels).toContain("iffel*");
    expect(labels).toContain("The");
    expect(el.textContent).toContain("clean p = 0.700");
    expect(el.querySelector("b")).toBeNull(); // the token "<b>of</b>" never becomes markup
    const cancel = [...el.querySelectorAll("button")].find((b) => b.textContent === "Cancel")!;
    cancel.click();
    expect(model.sent).toEqual([{ type: "cancel" }]);
    model.set("grid", grid([0, 1, 2, 3], "done"));
    expect(cancel.style.display).toBe("none");
  });

  it("an MLP click asks for neurons; a neuron click selects it", () => {
    const model = new FakeModel({ view: "causal_trace", grid: grid([0, 1, 2, 3], "done"), neurons: {}, selected: {} });
    const el = document.createElement("div");
    document.body.appendChild(el);
    render({ model, el });
    const mlp = el.querySelector('.fw-trace-map[data-kind="mlp"] canvas') as HTMLCanvasElement;
    const g = JSON.parse(mlp.dataset.geometry!);
    const [layer, token] = [2, 2];
    mlp.dispatchEvent(new MouseEvent("click", { clientX: g.x0 + (layer + 0.5) * g.cw, clientY: g.y0 + (token + 0.5) * g.ch }));
    expect(model.sent).toEqual([{ type: "select_cell", kind: "mlp", layer, token }]);
    expect((el.querySelector(".fw-trace-neurons") as HTMLElement).style.display).toBe("none");
    model.set("neurons", {
      layer, position: token, token: "iffel", target: " Paris",
      neurons: packed("int32", [2], [5, 9]), act: packed("float32", [2], [1.5, -0.5]),
      contrib: packed("float32", [2], [0.3, 0.1]), value_top: [[" Paris"], ["<i>x</i>"]],
    });
    const rows = [...el.querySelectorAll(".fw-trace-neurons tbody tr")] as HTMLElement[];
    expect(rows.map((r) => r.dataset.neuron)).toEqual(["5", "9"]);
    expect(el.querySelector("i")).toBeNull();
    rows[1].click();
    expect(model.sent.at(-1)).toEqual({ type: "select_neuron", layer, neuron: 9 });
    const edit = el.querySelector(".fw-trace-edit") as HTMLButtonElement;
    expect(edit.textContent).toBe(`Edit layer ${layer} here…`);
    edit.click();
    expect(model.sent.at(-1)).toEqual({ type: "open_editor", layer });
  });

  it("draws the editor it opened below the trace through the widget manager", async () => {
    const made: string[] = [];
    const model = new FakeModel({ view: "causal_trace", grid: grid([0, 1, 2, 3], "done"), neurons: {}, selected: {}, editor_slot: [] });
    (model as any).widget_manager = {
      get_model: async (id: string) => ({ id }),
      create_view: async (child: { id: string }) => {
        made.push(child.id);
        const el = document.createElement("div");
        el.className = "child-view";
        el.textContent = child.id;
        return { el, remove: () => el.remove() };
      },
    };
    const el = document.createElement("div");
    document.body.appendChild(el);
    const cleanup = render({ model, el });
    model.set("editor_slot", ["IPY_MODEL_abc"]);
    await new Promise((r) => setTimeout(r, 0));
    expect(made).toEqual(["abc"]);
    expect(el.querySelector(".fw-trace-editor .child-view")!.textContent).toBe("abc");
    cleanup();
    expect(el.querySelector(".child-view")).toBeNull();
    expect(model.listenerCount("change:editor_slot")).toBe(0);
  });
});
