// The neuron card view with a fake model: text stays text, the histogram and prompt marks are drawn,
// navigation sends set_neuron, and kernel updates redraw.
import { beforeEach, describe, expect, it } from "vitest";
import { render } from "../src/host";
import { FakeModel, installRecordingCanvas, packed } from "./fakes";

const EVIL = "<img src=x onerror=alert(1)>";

function card(layer = 3, neuron = 17) {
  const counts = Array.from({ length: 129 }, (_, i) => (i === 64 ? 5000 : i > 64 && i < 80 ? 80 - i : 0));
  return {
    layer, neuron, n_layers: 30, d_mlp: 1536,
    agreement: "1 of 2 trigger examples are followed by one of the value's top 10 tokens",
    value: { top: [[" Paris", 1.5], [EVIL, 0.9]], bottom: [[" the", -2.0]] },
    triggers: [
      { rank: 0, before: "The capital of France is", token: " the", next: " city", activation: 3.25, agrees: true, sentence: "s0" },
      { rank: 1, before: `Tags like ${EVIL} and`, token: " <b>", next: null, activation: 2.5, agrees: false, sentence: EVIL },
    ],
    index: { corpus: "wikipedia", tokens: 536823, dtype: "bfloat16", complete: true, model: "m" },
    histogram: { counts: packed("int32", [129], counts), labels: Array.from({ length: 129 }, (_, i) => String(i)), prompt_bins: [70, 72] },
    prompt: { tokens: ["The", " city", EVIL], acts: packed("float32", [3], [0.5, -1, 2]),
      contrib: packed("float32", [3], [0.1, -0.2, 0.7]), target: " Paris", text: "The city" },
  };
}

describe("neuron card", () => {
  let calls: ReturnType<typeof installRecordingCanvas>;
  beforeEach(() => {
    document.body.innerHTML = "";
    calls = installRecordingCanvas();
  });

  it("renders triggers, values, agreement and the prompt as text", () => {
    const model = new FakeModel({ view: "neuron_card", card: card() });
    const el = document.createElement("div");
    document.body.appendChild(el);
    const cleanup = render({ model, el });
    expect(el.querySelector(".fw-title")!.textContent).toBe("Neuron L3.N17");
    const items = el.querySelectorAll(".fw-card-triggers li");
    expect(items.length).toBe(2);
    expect(items[0].querySelector(".fw-card-trigger")!.textContent).toBe("␣the"); // shown like every other token
    expect(items[0].querySelector(".fw-card-next")!.classList.contains("fw-agrees")).toBe(true);
    expect(items[1].textContent).toContain(EVIL); // shown literally...
    expect(items[1].querySelector(".fw-card-next")!.textContent).toBe("→ (end)");
    expect(el.querySelector("img")).toBeNull(); // ...never parsed as markup
    expect(el.querySelector("b")).toBeNull();
    expect(el.querySelector(".fw-card-promoted")!.textContent).toContain(EVIL.replace(/ /g, "␣")); // a token: spaces shown
    expect(el.querySelector(".fw-card-agreement")!.textContent).toContain("1 of 2");
    expect(el.querySelector(".fw-card-info")!.textContent).toContain("536,823 tokens mined in bfloat16");
    const toks = el.querySelectorAll(".fw-card-tok");
    expect(toks.length).toBe(3);
    expect(toks[2].textContent).toContain(EVIL.replace(/ /g, "␣"));
    // histogram: one bar per non-empty bin plus one mark per prompt token
    const rects = calls.filter((c) => c.op === "fillRect");
    expect(rects.length).toBe(16 + 2);
    cleanup();
    expect(model.listenerCount("change:card")).toBe(0);
  });

  it("asks the kernel for another neuron and redraws when it answers", () => {
    const model = new FakeModel({ view: "neuron_card", card: card() });
    const el = document.createElement("div");
    document.body.appendChild(el);
    render({ model, el });
    const [layer, neuron] = el.querySelectorAll<HTMLInputElement>(".fw-card-nav input");
    layer.value = "5";
    neuron.value = "99";
    el.querySelector<HTMLButtonElement>(".fw-card-nav button")!.click();
    expect(model.sent.at(-1)).toMatchObject({ type: "set_neuron", layer: 5, neuron: 99 });
    model.set("card", { ...card(5, 99), prompt: undefined, histogram: undefined, triggers: [], index: null });
    expect(el.querySelector(".fw-title")!.textContent).toBe("Neuron L5.N99");
    expect(el.querySelectorAll(".fw-card-triggers li").length).toBe(0);
    expect(el.querySelector<HTMLElement>(".fw-card-prompt-box")!.style.display).toBe("none");
    expect(el.querySelector(".fw-card-info")!.textContent).toContain("No trigger index");
  });
});
