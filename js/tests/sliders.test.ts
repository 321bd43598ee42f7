// The sliders view with a fake model: rows and bars drawn from the kernel's state, drags coalesced to
// the newest value, bars redrawn with the answered seq and latency, model text kept as text.
import { beforeEach, describe, expect, it } from "vitest";
import { initialize, render } from "../src/host";
import { FakeModel, packed } from "./fakes";

function prediction(seq: number, probs: number[], target = { id: 99, text: " <b>Paris</b>", prob: 0.01, rank: 7, original_prob: 0.2, original_rank: 0 }) {
  return {
    seq,
    tokens: [" the", "<i>x</i>", " a"],
    ids: packed("int32", [3], [1, 2, 3]),
    probs: packed("float32", [3], probs),
    original_probs: packed("float32", [3], [0.3, 0.2, 0.1]),
    target,
  };
}

function mount() {
  const model = new FakeModel({
    view: "sliders",
    prompt: "The Eiffel Tower is in",
    neurons: [{ layer: 3, neuron: 12, promotes: [" Paris"] }, { layer: 5, neuron: 7, promotes: [" <script>"] }],
    scales: [1, 1],
    scales_seq: -1,
    scale_range: [-1, 3],
    prediction: prediction(-1, [0.5, 0.25, 0.125]),
    continuation: { seq: -1, tokens: [" Paris", "."], original: [" Paris", "."] },
  });
  const el = document.createElement("div");
  document.body.appendChild(el);
  initialize({ model });
  const cleanup = render({ model, el });
  return { model, el, cleanup };
}

const ranges = (el: HTMLElement) => [...el.querySelectorAll<HTMLInputElement>("input[type=range]")];

describe("sliders view", () => {
  beforeEach(() => {
    document.body.innerHTML = "";
  });

  it("draws one slider per neuron and the bars, target outside the top-k with its rank", () => {
    const { el } = mount();
    expect(ranges(el).map((r) => r.dataset.key)).toEqual(["3:12", "5:7"]);
    expect(ranges(el)[0].min).toBe("-1");
    expect(ranges(el)[0].max).toBe("3");
    const fills = [...el.querySelectorAll<HTMLElement>(".fw-bar-fill")];
    expect(fills.map((f) => f.style.width)).toEqual(["50%", "25%", "12.5%", "1%"]);
    const target = el.querySelector(".fw-token.fw-bar-target")!;
    expect(target.textContent).toBe("␣<b>Paris</b> (#8)"); // as text, never as markup
    expect(el.querySelector("b")).toBeNull();
    expect(el.querySelector("i")).toBeNull();
    expect(el.querySelector(".fw-target-line")!.textContent).toContain("rank 8 (was 1)");
  });

  it("coalesces 1000 drag events into one message in flight plus the newest value", () => {
    const { el, model } = mount();
    const r = ranges(el)[1];
    for (let i = 0; i < 1000; i++) {
      r.value = String(-1 + (4 * i) / 999);
      r.dispatchEvent(new Event("input"));
    }
    expect(model.sent.length).toBe(1); // nothing else is sent until the kernel acknowledges
    const first = model.sent[0];
    expect(first.type).toBe("scales");
    model.emit("msg:custom", { type: "_ack", id: first._ack });
    expect(model.sent.length).toBe(2);
    const last = model.sent[1];
    expect(last.seq).toBe(1000);
    expect(last.scales).toEqual([1, 3]);
    model.emit("msg:custom", { type: "_ack", id: last._ack });
    expect(model.sent.length).toBe(2); // no backlog
  });

  it("redraws the bars when the kernel answers, recording which drag it answered", () => {
    const { el, model } = mount();
    const r = ranges(el)[0];
    r.value = "0";
    r.dispatchEvent(new Event("input"));
    model.set("prediction", prediction(1, [0.9, 0.05, 0.01]));
    const root = el.querySelector<HTMLElement>(".fw-sliders")!;
    expect(root.dataset.seq).toBe("1");
    expect(Number(root.dataset.latencyMs)).toBeGreaterThanOrEqual(0);
    expect(el.querySelector<HTMLElement>(".fw-bar-fill")!.style.width).toBe("90%");
    // a stale echo of the scales does not yank the slider back; a kernel-side change (-1) does
    r.value = "2";
    r.dispatchEvent(new Event("input"));
    model.set("scales_seq", 1);
    model.set("scales", [0, 1]);
    expect(r.value).toBe("2");
    model.set("scales_seq", -1);
    model.set("scales", [1, 1]);
    expect(r.value).toBe("1");
  });

  it("a view rendered again numbers its messages above what the kernel already answered", () => {
    const { el, model, cleanup } = mount();
    model.set("prediction", prediction(41, [0.9, 0.05, 0.01]));
    cleanup();
    const again = document.createElement("div");
    render({ model, el: again });
    const r = ranges(again)[0];
    r.value = "0";
    r.dispatchEvent(new Event("input"));
    expect(model.sent.at(-1).seq).toBe(42); // the kernel drops numbers it has seen: 1 would be ignored
    expect(ranges(el).length).toBe(0);
  });

  it("typing a number, reset, add and remove send the right messages", () => {
    const { el, model } = mount();
    const box = el.querySelector<HTMLInputElement>("input[type=number]")!;
    box.value = "2.5";
    box.dispatchEvent(new Event("change"));
    expect(model.sent.at(-1)).toMatchObject({ type: "scales", scales: [2.5, 1] });
    expect(ranges(el)[0].value).toBe("2.5");
    expect(model.sent.at(-1).keys).toEqual(["3:12", "5:7"]);
    box.value = "7"; // typed beyond the range: kept to it
    box.dispatchEvent(new Event("change"));
    expect(box.value).toBe("3");
    el.querySelector<HTMLButtonElement>("button.fw-reset")!.click();
    expect(model.sent.at(-1)).toEqual({ type: "reset" });
    const add = el.querySelector<HTMLInputElement>('input[aria-label="add neuron"]')!;
    add.value = "12:345";
    add.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(model.sent.at(-1)).toEqual({ type: "add", text: "12:345" });
    el.querySelector<HTMLButtonElement>('button[aria-label="remove L5.N7"]')!.click();
    expect(model.sent.at(-1)).toEqual({ type: "remove", layer: 5, neuron: 7 });
    model.set("neurons", [{ layer: 3, neuron: 12, promotes: [] }]);
    expect(ranges(el).length).toBe(1);
  });

  it("shows the continuation next to the original one, and cleans up its listeners", () => {
    const { el, model, cleanup } = mount();
    model.set("continuation", { seq: 2, tokens: [" London", "<br>"], original: [" Paris", "."] });
    const text = el.querySelector(".fw-continuation")!.textContent!;
    expect(text).toContain(" London<br>");
    expect(text).toContain("originally:  Paris.");
    model.set("continuation", { seq: 3, tokens: [" Paris", ".", "\n", "\n"], original: [] });
    const shown = el.querySelector(".fw-continuation")!.textContent!;
    expect(shown).toContain(" Paris.⏎⏎");
    expect(shown).not.toContain("\n");
    expect(shown).toContain("originally: (end of text)");
    cleanup();
    expect(model.listenerCount("change:prediction")).toBe(0);
    expect(el.querySelector(".fw-sliders")).toBeNull();
  });
});
