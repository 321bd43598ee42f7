// The stability view with a fake model: controls and their gestures, the curves growing with the rows, the
// collapse thresholds and marker, the summary; and the editor's batch mode (fact list, methods, per-fact rows).
import { beforeEach, describe, expect, it } from "vitest";
import { initialize, render } from "../src/host";
import { FakeModel } from "./fakes";

const row = (step: number, extra: Record<string, unknown> = {}) => ({
  step, edits: step + 1, retention: step ? 1 - 0.1 * step : null, earlier: step, efficacy: 1, paraphrase: 0.8,
  neighbourhood: 0.9, kl: 0.01 * (step + 1), kl_max: 0.05 * (step + 1), norm_ratio: 1 + 0.02 * step,
  facts: [`The <b>Louvre</b> → Rome ${step}`], collapsed: false, collapse_reason: "", skipped: 0, ...extra,
});

function mount(view: string, state: Record<string, unknown>) {
  const model = new FakeModel({ view, ...state });
  const el = document.createElement("div");
  document.body.appendChild(el);
  initialize({ model });
  const cleanup = render({ model, el });
  return { model, el, cleanup };
}

const stability = (extra: Record<string, unknown> = {}) => mount("stability", {
  method: "r-rome", methods: ["r-rome", "rome", "memit", "alphaedit"], batch: 1, steps: 10, status: "idle", rows: [],
  collapse: { kl: 1, norm_ratio: 10, retention: 0.5 }, ...extra,
});

const points = (el: Element, chart: number, name: string) =>
  [...el.querySelectorAll(".fw-series-chart")[chart].querySelectorAll(`.fw-series[data-name="${name}"] polyline`)]
    .map((p) => p.getAttribute("points")!.split(" ").length).reduce((a, b) => a + b, 0);

describe("stability view", () => {
  beforeEach(() => {
    document.body.innerHTML = "";
  });

  it("sends Start with the chosen method, steps and batch, and Cancel while running", () => {
    const { model, el } = stability();
    expect(el.querySelector(".fw-stability")!.getAttribute("data-status")).toBe("idle");
    expect((el.querySelector(".fw-st-cancel") as HTMLElement).style.display).toBe("none");
    (el.querySelector('.fw-seg button[data-value="memit"]') as HTMLButtonElement).click();
    (el.querySelector('input[aria-label="steps"]') as HTMLInputElement).value = "7";
    (el.querySelector('input[aria-label="facts per step"]') as HTMLInputElement).value = "3";
    (el.querySelector(".fw-st-start") as HTMLButtonElement).click();
    expect(model.sent).toEqual([{ type: "start", method: "memit", steps: 7, batch: 3 }]);
    model.set("status", "running");
    expect((el.querySelector(".fw-st-start") as HTMLButtonElement).disabled).toBe(true);
    (el.querySelector(".fw-st-cancel") as HTMLButtonElement).click();
    expect(model.sent[1]).toEqual({ type: "cancel" });
  });

  it("grows the curves row by row, with a gap where retention is not yet defined", () => {
    const { model, el } = stability({ status: "running" });
    expect(el.querySelector(".fw-st-summary")!.textContent).toContain("Editing the first step");
    model.set("rows", [row(0)]);
    expect(points(el, 0, "retention")).toBe(0); // no earlier edits at step 0
    expect(points(el, 0, "efficacy")).toBe(1);
    model.set("rows", [row(0), row(1), row(2)]);
    expect(points(el, 0, "retention")).toBe(2);
    expect(points(el, 1, "mean")).toBe(3);
    expect(points(el, 2, "largest ratio")).toBe(3);
    const summary = el.querySelector(".fw-st-summary")!.textContent!;
    expect(summary).toContain("3 edits");
    expect(summary).toContain("retention 80%");
    // fact text stays text
    expect(el.querySelector(".fw-st-last")!.textContent).toContain("The <b>Louvre</b> → Rome 2");
    expect(el.querySelector(".fw-st-last b")).toBeNull();
  });

  it("marks the collapse and draws the thresholds", () => {
    const { model, el } = stability({ status: "done" });
    model.set("rows", [row(0), row(1), row(2, { collapsed: true, collapse_reason: "norm ratio 12 > 10", norm_ratio: 12 })]);
    expect(el.querySelectorAll(".fw-chart-marker").length).toBe(3);
    expect(el.querySelector(".fw-st-collapse")!.textContent).toContain("collapsed at 3 edits: norm ratio 12 > 10");
    expect(el.querySelectorAll(".fw-chart-threshold").length).toBeGreaterThanOrEqual(2); // retention 0.5, norm 10
    expect(el.querySelector(".fw-st-summary")!.textContent).toContain("done: the run's edits were taken out");
  });
});

describe("editor batch mode", () => {
  beforeEach(() => {
    document.body.innerHTML = "";
  });

  const side = (pTrue: number, pNew: number) => ({ p_true: pTrue, p_new: pNew, top: [[" x", 0.5]] });

  it("lists the facts, offers the batch methods and shows per-fact rows with their own new objects", () => {
    const { model, el } = mount("editor", {
      prompt: "The Eiffel Tower is located in the city of", subject: "", target: "", layer: 4, method: "memit", n_layers: 6,
      status: "idle", curve: [], comparison: {}, edit_log: [], prediction: {}, hint: {},
      methods: ["memit", "alphaedit", "r-rome", "rome"],
      batch: [{ prompt: "The <i>Eiffel</i> Tower is in", subject: "The Eiffel Tower", target: " Rome" },
        { prompt: "The Colosseum is in", subject: "The Colosseum", target: " Paris" }],
    });
    expect(el.querySelector(".fw-panel-head .fw-title")!.textContent).toBe("Edit 2 facts");
    expect([...el.querySelectorAll(".fw-ed-facts td")].map((td) => td.textContent)).toEqual(
      ["The <i>Eiffel</i> Tower is in", "The Eiffel Tower", "␣Rome", "The Colosseum is in", "The Colosseum", "␣Paris"]);
    expect(el.querySelector(".fw-ed-facts i")).toBeNull();
    expect(el.querySelector('input[aria-label="subject"]')).toBeNull();
    expect([...el.querySelectorAll(".fw-seg button")].map((b) => b.textContent)).toEqual(["MEMIT", "AlphaEdit", "r-ROME", "ROME"]);
    expect(el.querySelector(".fw-ed-layer-note")!.textContent).toBe("layers 0–4");
    (el.querySelector('.fw-seg button[data-value="alphaedit"]') as HTMLButtonElement).click();
    (el.querySelector(".fw-ed-apply") as HTMLButtonElement).click();
    expect(model.sent[0]).toMatchObject({ type: "apply", method: "alphaedit", layer: 4 });
    model.set("comparison", {
      rows: [{ kind: "prompt", prompt: "A", true: " Paris", new: " Rome", before: side(0.6, 0.01), after: side(0.1, 0.8) },
        { kind: "prompt", prompt: "B", true: " Rome", new: " Paris", before: side(0.7, 0.01), after: side(0.6, 0.2) }],
      continuations: {}, layer: 4, layers: [0, 1, 2, 3, 4], method: "alphaedit", batch: true, facts: 2, skipped: [],
      subject: "2 facts", target: "", efficacy: 0.5, paraphrase: null, delta_norm: 3, applied: true, keys: ["k"],
    });
    expect(el.querySelector(".fw-ed-report .fw-title")!.textContent).toBe(
      "Before → after: 2 facts, AlphaEdit at layers 0–4 · efficacy 50.0% · paraphrases –");
    expect([...el.querySelectorAll(".fw-ed-new-object")].map((s) => s.textContent)).toEqual([" ⇒ ␣Rome", " ⇒ ␣Paris"]);
    expect(el.querySelector(".fw-ed-continuations")).toBeNull();
  });
});
