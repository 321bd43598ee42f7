// Whitespace tokens look the same in every view: one helper (showToken) makes spaces, newlines and tabs
// visible, so a token that is a single space is never an empty box or an invisible axis label.
import { beforeEach, describe, expect, it } from "vitest";
import { showToken } from "../src/core/format";
import { render } from "../src/host";
import { Call, FakeModel, installRecordingCanvas, packed } from "./fakes";

const SPACES = "   "; // a whole token of three spaces (byte-level BPE vocabularies have them)

function mount(state: Record<string, unknown>) {
  const model = new FakeModel(state);
  const el = document.createElement("div");
  document.body.appendChild(el);
  render({ model, el });
  return el;
}

const texts = (calls: Call[]) => calls.filter((c) => c.op === "fillText").map((c) => String(c.args[0]));

describe("whitespace tokens", () => {
  let calls: Call[];
  beforeEach(() => {
    document.body.innerHTML = "";
    calls = installRecordingCanvas();
  });

  it("the helper makes every whitespace character visible", () => {
    expect(showToken(" ")).toBe("␣");
    expect(showToken(SPACES)).toBe("␣␣␣");
    expect(showToken(" Paris")).toBe("␣Paris");
    expect(showToken("New York ")).toBe("New␣York␣");
    expect(showToken("\n\n")).toBe("⏎⏎");
    expect(showToken("\r\n")).toBe("⏎");
    expect(showToken("\t")).toBe("⇥");
    expect(showToken("\u00a0")).toBe("␣");
    expect(showToken("")).toBe("∅");
    expect(showToken("<b>")).toBe("<b>");
  });

  it("neuron card triggers, next tokens and values", () => {
    const el = mount({
      view: "neuron_card",
      card: {
        layer: 1, neuron: 2, n_layers: 4, d_mlp: 8, agreement: "",
        value: { top: [[SPACES, 1]], bottom: [["\t", -1]] },
        triggers: [{ rank: 0, before: "a", token: " ", next: "\n", activation: 1, agrees: false, sentence: "a \n" }],
        index: null, histogram: null, prompt: null,
      },
    });
    expect(el.querySelector(".fw-card-trigger")!.textContent).toBe("␣");
    expect(el.querySelector(".fw-card-next")!.textContent).toBe("→ ⏎");
    expect(el.querySelector(".fw-card-promoted .fw-token")!.textContent).toBe("␣␣␣");
    expect(el.querySelector(".fw-card-suppressed .fw-token")!.textContent).toBe("⇥");
  });

  it("neuron lists and slider bars", () => {
    const list = mount({
      view: "neurons", selected: {},
      rows: { layer: 0, position: 1, token: " ", by: "activation", target: SPACES, tokens: ["a", " "],
        neurons: packed("int32", [1], [3]), act: packed("float32", [1], [1]), contrib: packed("float32", [1], [1]),
        value_top: [[SPACES, "\n"]] },
    });
    expect([...list.querySelectorAll("tbody .fw-token")].map((t) => t.textContent)).toEqual(["␣␣␣", "⏎"]);
    expect(list.querySelector(".fw-title")!.textContent).toMatch(/token 1 ␣$/);
    expect(list.querySelector("thead")!.textContent).toContain("→ ␣␣␣");
    const sliders = mount({
      view: "sliders", prompt: "x", neurons: [], scales: [], scales_seq: -1, scale_range: [-1, 3],
      prediction: { seq: -1, tokens: [SPACES], ids: packed("int32", [1], [1]), probs: packed("float32", [1], [0.5]),
        original_probs: packed("float32", [1], [0.5]), target: null },
      continuation: { seq: -1, tokens: [], original: [] },
    });
    expect(sliders.querySelector(".fw-bars .fw-token")!.textContent).toBe("␣␣␣");
  });

  it("heatmap axes and lens cells of the explorer, and the causal trace's token axis", () => {
    const L = 2;
    const tokens = ["a", SPACES, "\t"];
    const T = tokens.length;
    const grid = (v: number) => packed("float32", [L, T], Array(L * T).fill(v));
    const lens = { prob: grid(0.5), rank: packed("int32", [L, T], Array(L * T).fill(1)),
      top: packed("int32", [L, T], Array(L * T).fill(9)), top_prob: grid(0.5) };
    mount({
      view: "explorer", prompt: "a", target: "", stat: "max_act", rank_by: "contribution", lens_stage: "post",
      lens_value: "prob", cell: {}, neuron: {}, slot: [], slot_title: "", values: {},
      data: { prompt: "a", tokens, n_layers: L, d_mlp: 4, target: { id: 9, text: SPACES }, predictions: [],
        grids: { max_act: grid(1), contrib: grid(0) }, lens: { post: lens, mid: lens },
        vocab: { ids: packed("int32", [1], [9]), text: [SPACES] } },
    });
    const drawn = texts(calls);
    expect(drawn).toContain("␣␣␣"); // the axis label and the lens cells' top token
    expect(drawn).toContain("⇥");
    expect(drawn.filter((s) => s.trim() === "")).toEqual([]);
    calls.length = 0;
    const scores = packed("float32", [T, L], Array(T * L).fill(0.5));
    mount({
      view: "causal_trace", neurons: {}, selected: {},
      grid: { tokens, subject: [1, 2], kinds: ["mlp"], n_layers: L, window: 1, target: " ", p_clean: 0.5,
        p_corrupted: 0.1, samples: 1, corrupted_prompt: null, status: "done", finished: T,
        scores: { mlp: scores }, spread: { mlp: scores } },
    });
    expect(texts(calls)).toEqual(expect.arrayContaining(["␣␣␣*", "⇥"]));
    expect(texts(calls).filter((s) => s.trim() === "")).toEqual([]);
  });
});
