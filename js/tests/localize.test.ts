// The localisation view with a fake model: one row per measure on shared layer columns (edit rows apart, NaN
// cells marked), the fact as text, live redraws, Run / Cancel / layer clicks / card buttons as gestures, and
// the neuron lists the kernel sends.
import { beforeEach, describe, expect, it } from "vitest";
import { render } from "../src/host";
import { barGeometry } from "../src/views/localize";
import { FakeModel, packed } from "./fakes";

const EVIL = "<img src=x onerror=alert(1)>";
const NAMES = [
  { name: "trace_mlp", label: "causal trace: MLP indirect effect (one layer)", edit: false, unit: false },
  { name: "lens_gain", label: "logit lens: target rank gained across the MLP (log10)", edit: false, unit: false },
  { name: "edit_efficacy", label: "ROME at this layer: efficacy", edit: true, unit: true },
];

function state(extra: Record<string, unknown> = {}) {
  return {
    view: "localize", n_layers: 4, names: NAMES, status: "running", selected: -1, edit_layers: [1, 2],
    fact: { prompt: `The ${EVIL} is located in`, subject: EVIL, target: " Paris", target_new: " Rome" },
    measures: {
      trace_mlp: packed("float32", [4], [0.1, 0.4, 0.2, 0]),
      lens_gain: packed("float32", [4], [-0.5, 1, 0, 0.25]),
      edit_efficacy: packed("float32", [4], [NaN, 1, NaN, NaN]),
    },
    neurons: {}, slot: [], slot_title: "", ...extra,
  };
}

function mount(model: FakeModel) {
  const el = document.createElement("div");
  document.body.appendChild(el);
  return { el, cleanup: render({ model, el }) };
}

const cells = (el: HTMLElement, measure: string) =>
  [...el.querySelectorAll<HTMLElement>(`.fw-loc-cell[data-measure="${measure}"]`)];

describe("localize view", () => {
  beforeEach(() => {
    document.body.innerHTML = "";
  });

  it("draws one row per measure on the same layer columns, edit rows apart, the fact as text", () => {
    const model = new FakeModel(state());
    const { el, cleanup } = mount(model);
    for (const m of NAMES) expect(cells(el, m.name).map((c) => c.dataset.layer)).toEqual(["0", "1", "2", "3"]);
    expect(cells(el, "trace_mlp").map((c) => Number(c.dataset.value))).toEqual([0.1, 0.4, 0.2, 0].map(Math.fround));
    const edit = cells(el, "edit_efficacy");
    expect(edit.every((c) => c.classList.contains("fw-loc-edit"))).toBe(true);
    expect(edit.map((c) => c.classList.contains("fw-loc-na"))).toEqual([true, false, true, true]);
    expect(cells(el, "trace_mlp").some((c) => c.classList.contains("fw-loc-edit"))).toBe(false);
    expect([...el.querySelectorAll(".fw-loc-section")].map((s) => s.textContent)).toEqual(
      ["Localisation", "ROME edit at that layer (undone after measuring)"]);
    // the tallest bar of a row is the row's peak; a negative value hangs below the middle of a signed row
    const fill = (c: HTMLElement) => (c.firstChild as HTMLElement).style;
    expect(fill(cells(el, "trace_mlp")[1]).height).toBe("100%");
    expect(fill(cells(el, "lens_gain")[0]).bottom).toBe("25%");
    expect(el.querySelector(".fw-loc-prompt")!.textContent).toBe(`The ${EVIL} is located in`);
    expect(el.querySelector(".fw-loc-subject")!.textContent).toBe(EVIL);
    expect(el.querySelector("img")).toBeNull();
    expect(el.querySelector(".fw-localize")!.getAttribute("data-status")).toBe("running");
    expect(el.querySelector<HTMLElement>(".fw-loc-cancel")!.style.display).toBe("");
    cleanup();
    expect(model.listenerCount("change:measures")).toBe(0);
  });

  it("redraws as measures stream in and when the run ends", () => {
    const model = new FakeModel(state({ measures: {} }));
    const { el } = mount(model);
    expect(cells(el, "trace_mlp").every((c) => c.classList.contains("fw-loc-na"))).toBe(true);
    model.set("measures", { trace_mlp: packed("float32", [4], [0, 0.3, 0, 0]) });
    expect(cells(el, "trace_mlp")[1].dataset.value).toBe(String(Math.fround(0.3)));
    expect(el.querySelector(".fw-loc-peak")!.textContent).toContain("L1");
    model.set("status", "cancelled");
    expect(el.querySelector<HTMLElement>(".fw-loc-cancel")!.style.display).toBe("none");
    expect(el.querySelector(".fw-loc-status")!.textContent).toContain("weights are as they were");
  });

  it("sends Run with the form, Cancel, and the clicked layer", () => {
    const model = new FakeModel(state());
    const { el } = mount(model);
    el.querySelector<HTMLButtonElement>(".fw-loc-cancel")!.click();
    expect(model.sent.at(-1)).toEqual({ type: "cancel" });
    cells(el, "lens_gain")[2].click();
    expect(model.sent.at(-1)).toEqual({ type: "select", layer: 2 });
    model.set("status", "done");
    const subject = el.querySelector<HTMLInputElement>('input[data-field="subject"]')!;
    expect(subject.value).toBe(EVIL);
    expect(el.querySelector<HTMLInputElement>('input[data-field="edit_layers"]')!.value).toBe("1, 2");
    subject.value = "The Louvre";
    el.querySelector<HTMLButtonElement>(".fw-loc-run")!.click();
    expect(model.sent.at(-1)).toMatchObject({ type: "start", subject: "The Louvre", target: " Paris", edit_layers: "1, 2" });
  });

  it("lists the selected layer's neurons with a card button each", () => {
    const model = new FakeModel(state());
    const { el } = mount(model);
    expect(el.querySelector<HTMLElement>(".fw-loc-neurons")!.style.display).toBe("none");
    const site = (name: string, position: number, ids: number[]) => ({
      name, position, token: " Tower", layer: 2, neurons: packed("int32", [ids.length], ids),
      act: packed("float32", [ids.length], ids.map(() => 1.5)), contrib: packed("float32", [ids.length], ids.map((_, i) => 1 - i)),
      value_top: ids.map(() => [EVIL, " Paris"]),
    });
    model.set("selected", 2);
    model.set("neurons", { layer: 2, target: " Paris", sites: [site("last token", 5, [7, 9]), site("last subject token", 3, [11])] });
    expect(cells(el, "trace_mlp")[2].classList.contains("fw-loc-on")).toBe(true);
    const lists = el.querySelectorAll(".fw-loc-site");
    expect([...lists].map((s) => (s as HTMLElement).dataset.site)).toEqual(["last token", "last subject token"]);
    expect([...lists[0].querySelectorAll("tbody tr")].map((r) => (r as HTMLElement).dataset.neuron)).toEqual(["7", "9"]);
    expect(lists[0].textContent).toContain(EVIL.replace(/ /g, "␣"));
    expect(el.querySelector("img")).toBeNull();
    lists[1].querySelector<HTMLButtonElement>(".fw-loc-card")!.click();
    expect(model.sent.at(-1)).toEqual({ type: "open_card", layer: 2, neuron: 11 });
    model.set("slot_title", "Neuron L2.N11");
    model.set("slot", ["IPY_MODEL_abc"]);
    expect(el.querySelector<HTMLElement>(".fw-slot")!.style.display).toBe("");
    el.querySelector<HTMLButtonElement>(".fw-slot .fw-panel-head button")!.click();
    expect(model.sent.at(-1)).toEqual({ type: "close_card" });
  });

  it("bar geometry: unsigned rows from the bottom, signed rows about the middle, NaN empty", () => {
    expect(barGeometry(0.5, 1, false)).toEqual([0, 50, false]);
    expect(barGeometry(2, 1, false)).toEqual([0, 100, false]);
    expect(barGeometry(-0.5, 1, true)).toEqual([25, 25, true]);
    expect(barGeometry(0.5, 1, true)).toEqual([50, 25, false]);
    expect(barGeometry(NaN, 1, true)).toEqual([0, 0, false]);
  });
});
