// The neuron card's joined part with a fake model: knowledge score, trace share and edits as text, hints when
// they are unknown, and the slider sending coalesced scales and drawing the kernel's answer.
import { beforeEach, describe, expect, it } from "vitest";
import { render } from "../src/host";
import { FakeModel, installRecordingCanvas } from "./fakes";

const EVIL = "<img src=x onerror=alert(1)>";

function card(extra: Record<string, unknown> = {}) {
  return {
    layer: 4, neuron: 9, n_layers: 30, d_mlp: 1536, agreement: "", triggers: [], index: null,
    value: { top: [[" Paris", 1.0]], bottom: [[" the", -1.0]] },
    prompt: { tokens: ["A"], acts: { dtype: "float32", shape: [1], data: new DataView(new Float32Array([1]).buffer) },
      contrib: { dtype: "float32", shape: [1], data: new DataView(new Float32Array([0.5]).buffer) }, target: " Paris", text: "A" },
    knowledge: { prompt: "A", target: " Paris", score: 0.0123, max: 0.05, rank: 4, of: 46080, mean_score: 0.01, prompts: 1,
      threshold: 0.2, candidate: true, knowledge_neuron: true, n_knowledge_neurons: 3, source: "kernel" },
    trace: { prompt: "A", target: " Paris", token: 3, token_text: EVIL, samples: 10, p_clean: 0.6, p_corrupted: 0.01,
      p_mlp: 0.2, p_neuron: 0.05, mlp_effect: 0.19, neuron_effect: 0.04, share: 0.2105, trace_kind: "mlp",
      trace_window: 1, trace_cell: 0.19, source: "given" },
    edit: { touched: true, value: { k: 10, before: [], after: [], kept: 8, lost: [" Paris", EVIL], gained: [" Rome"],
      relative_change: 0.12, cosine: 0.99 },
      entries: [{ index: 0, method: "r-ROME", facts: `${EVIL} → ' Rome'`, layers: [4], writes_values: true }] },
    ...extra,
  };
}

function mount(model: FakeModel) {
  const el = document.createElement("div");
  document.body.appendChild(el);
  render({ model, el });
  return el;
}

describe("neuron card joins", () => {
  beforeEach(() => {
    document.body.innerHTML = "";
    installRecordingCanvas();
  });

  it("shows the knowledge score, the trace share and the edits as text", () => {
    const el = mount(new FakeModel({ view: "neuron_card", card: card(), scaled: {}, scale_range: [-1, 3] }));
    const text = (sel: string) => el.querySelector(sel)!.textContent!;
    expect(text(".fw-card-knowledge")).toContain("rank 4 of 46,080");
    expect(text(".fw-card-knowledge")).toContain("A knowledge neuron of this fact.");
    expect(text(".fw-card-trace")).toContain("21.1%");
    expect(text(".fw-card-trace")).toContain("+0.040 (neuron) vs +0.190 (MLP)");
    expect(text(".fw-card-trace")).not.toContain("small numbers");
    expect(text(".fw-card-trace")).toContain(EVIL.replace(/ /g, "␣"));
    expect(text(".fw-card-edit")).toContain("#0 r-ROME at layer 4");
    expect(text(".fw-card-edit")).toContain("8 of its top 10 tokens kept");
    expect(text(".fw-card-edit")).toContain("gained: ␣Rome");
    expect(el.querySelector("img")).toBeNull();
  });

  it("warns when the layer's MLP restores almost nothing", () => {
    const c = card();
    const el = mount(new FakeModel({ view: "neuron_card", scaled: {}, card: { ...c, trace: { ...c.trace, mlp_effect: -0.0005, share: -0.07 } } }));
    expect(el.querySelector(".fw-card-trace")!.textContent).toContain("the share is a ratio of small numbers");
  });

  it("says what to pass when nothing is known, and hides the slider without a prompt", () => {
    const el = mount(new FakeModel({ view: "neuron_card", scaled: {},
      card: card({ knowledge: undefined, trace: undefined, edit: { touched: false, entries: [], value: null }, prompt: undefined }) }));
    expect(el.querySelector(".fw-card-knowledge")!.textContent).toContain("knowledge=fw.knowledge_neurons");
    expect(el.querySelector(".fw-card-trace")!.textContent).toContain("trace=fw.causal_trace");
    expect(el.querySelector(".fw-card-edit")!.textContent).toBe("No edit in lm.edits touched layer 4.");
    expect(el.querySelector<HTMLElement>(".fw-card-slider")!.parentElement!.style.display).toBe("none");
  });

  it("sends the newest scale only while one is in flight, and draws the answer", () => {
    const model = new FakeModel({ view: "neuron_card", card: card(), scaled: {}, scale_range: [-1, 3] });
    const el = mount(model);
    const range = el.querySelector<HTMLInputElement>(".fw-card-slider input[type=range]")!;
    expect([range.min, range.max, range.value]).toEqual(["-1", "3", "1"]);
    for (const v of ["0.5", "0.25", "0"]) {
      range.value = v;
      range.dispatchEvent(new Event("input"));
    }
    const scales = model.sent.filter((m) => m.type === "scale");
    expect(scales.length).toBe(1); // the others wait for the kernel's acknowledgement; only the newest is kept
    expect(scales[0]).toMatchObject({ scale: 0.5, seq: 1 });
    model.emit("msg:custom", { type: "_ack", id: scales[0]._ack });
    expect(model.sent.filter((m) => m.type === "scale").at(-1)).toMatchObject({ scale: 0, seq: 3 });
    model.set("scaled", { scale: 0, target: " Paris", seq: 3, before: { p: 0.5, rank: 0, top: [[" Paris", 0.5]] },
      after: { p: 0.1, rank: 2, top: [[" Rome", 0.3], [EVIL, 0.2]] } });
    expect(el.querySelector(".fw-card-readout")!.textContent).toContain("50.0% → 10.0%, rank 0 → 2");
    expect(el.querySelector(".fw-card-pred")!.textContent).toContain("␣Rome");
    expect(el.querySelector("img")).toBeNull();
  });
});
