// The standalone views (LogitLens, NeuronList) and the prompt box's coalescing, with a fake model.
// (The explorer itself is covered in explorer.test.ts.)
import { beforeEach, describe, expect, it } from "vitest";
import { render } from "../src/host";
import { FakeModel, installRecordingCanvas, packed } from "./fakes";

const L = 3;
const T = 4;
const K = 2;
const tokens = ["The", " E", "iffel", " of"];

function range(n: number, f: (i: number) => number) {
  return Array.from({ length: n }, (_, i) => f(i));
}

function payload() {
  const cells = L * T;
  const top = (offset: number) => ({
    ids: packed("int32", [L, T, K], range(cells * K, (i) => (i * 7 + offset) % 50)),
    act: packed("float16", [L, T, K], range(cells * K, (i) => i / 4)),
    contrib: packed("float16", [L, T, K], range(cells * K, (i) => (i % 3) - 1)),
  });
  const lens = {
    prob: packed("float16", [L, T], range(cells, (i) => i / cells)),
    rank: packed("uint16", [L, T], range(cells, (i) => cells - i)),
    top: packed("uint16", [L, T], range(cells, (i) => 100 + (i % 3))),
    top_prob: packed("float16", [L, T], range(cells, () => 0.5)),
  };
  return {
    prompt: "The Eiffel of", tokens, n_layers: L, d_mlp: 64,
    target: { id: 7, text: " Paris" },
    predictions: [{ id: 7, text: " Paris", prob: 0.7 }, { id: 8, text: " London", prob: 0.1 }],
    grids: { max_act: packed("float16", [L, T], range(cells, (i) => i)), contrib: packed("float16", [L, T], range(cells, (i) => i - 6)) },
    top: { activation: top(1), contribution: top(3) },
    lens: { post: lens, mid: lens },
    vocab: { ids: packed("int32", [5], [7, 8, 100, 101, 102]), text: [" Paris", " London", " the", "<b>x</b>", " city"] },
  };
}

function values() {
  // every neuron id 0..49 of every layer promotes token 7 then 100
  const pairs: number[] = [];
  const tops: number[] = [];
  for (let l = 0; l < L; l++) for (let n = 0; n < 50; n++) { pairs.push(l, n); tops.push(7, 100); }
  return { neurons: packed("int32", [pairs.length / 2, 2], pairs), top: packed("int32", [tops.length / 2, 2], tops), vocab: { ids: packed("int32", [2], [7, 100]), text: [" Paris", " the"] } };
}

function explorerModel() {
  return new FakeModel({
    view: "explorer", prompt: "The Eiffel of", target: "", data: payload(), values: values(), neuron: {}, cell: {},
    stat: "max_act", rank_by: "contribution", lens_stage: "post", lens_value: "prob", slot: [], slot_title: "",
  });
}

describe("prompt box", () => {
  beforeEach(() => {
    document.body.innerHTML = "";
    installRecordingCanvas();
  });
  it("keeps one prompt edit in flight and sends only the newest after the ack", () => {
    const model = explorerModel();
    const el = document.createElement("div");
    document.body.appendChild(el);
    render({ model, el });
    const input = el.querySelector(".fw-prompt input") as HTMLInputElement;
    for (const text of ["A new prompt", "A newer prompt", "The newest prompt"]) {
      input.value = text;
      input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    }
    expect(model.sent.map((m) => m.prompt)).toEqual(["A new prompt"]);
    model.emit("msg:custom", { type: "_ack", id: model.sent[0]._ack });
    expect(model.sent.map((m) => m.prompt)).toEqual(["A new prompt", "The newest prompt"]);
  });
});

describe("standalone views", () => {
  beforeEach(() => {
    document.body.innerHTML = "";
    installRecordingCanvas();
  });
  it("the lens view has no activation heatmap", () => {
    const model = explorerModel();
    model.state.view = "lens";
    const el = document.createElement("div");
    render({ model, el });
    expect(el.querySelector(".fw-lens-panel canvas.fw-heatmap-canvas")).not.toBeNull();
    expect(el.querySelector(".fw-activation-panel")).toBeNull();
  });
  it("the neuron list renders its rows and sends the ranking choice", () => {
    const model = new FakeModel({
      view: "neurons", selected: {},
      rows: { layer: 4, position: 2, token: " city", by: "activation", target: " Paris", tokens,
        neurons: packed("int32", [2], [11, 22]), act: packed("float32", [2], [3.5, -1]), contrib: packed("float32", [2], [0.2, -0.1]),
        value_top: [[" Paris", " France"], ["<i>", " x"]] },
    });
    const el = document.createElement("div");
    render({ model, el });
    const rows = [...el.querySelectorAll("tbody tr")] as HTMLElement[];
    expect(rows.map((r) => r.dataset.neuron)).toEqual(["11", "22"]);
    expect(rows[1].textContent).toContain("<i>");
    expect(el.querySelector("i")).toBeNull();
    (el.querySelector('button[data-value="contribution"]') as HTMLButtonElement).click();
    expect(model.sent).toEqual([{ type: "set_by", by: "contribution" }]);
  });
});
