// The editor view with a fake model: the form and its gestures, the layer strip, the live loss chart and its
// log scale, before → after rows, the edit log's state and Undo/Reset, model text kept as text.
import { beforeEach, describe, expect, it } from "vitest";
import { barHeights } from "../src/components/layer_strip";
import { logRange, logY } from "../src/components/line_chart";
import { pct, verdict } from "../src/views/editor_report";
import { initialize, render } from "../src/host";
import { FakeModel, installRecordingCanvas, packed } from "./fakes";

const side = (pTrue: number, pNew: number, top: string) => ({ p_true: pTrue, p_new: pNew, top: [[top, 0.6], [" <i>x</i>", 0.1]] });

function comparison(applied = true) {
  return {
    rows: [
      { kind: "prompt", prompt: "The <b>Eiffel</b> Tower is in", true: " Paris", new: " Rome", before: side(0.6, 0.01, " Paris"), after: side(0.01, 0.95, " Rome") },
      { kind: "paraphrase", prompt: "The Eiffel Tower can be found in", true: " Paris", new: " Rome", before: side(0.5, 0.02, " Paris"), after: side(0.4, 0.3, " Paris") },
      { kind: "neighbour", prompt: "The Louvre is in", true: " Paris", new: " Rome", before: side(0.7, 0.01, " Paris"), after: side(0.69, 0.02, " Paris") },
    ],
    continuations: { before: " Paris, <script>France</script>.", after: " Rome, Italy." },
    layer: 4, subject: "The Eiffel Tower", target: " Rome", method: "r-rome", delta_norm: 88.8, applied, key: "a1",
  };
}

const logRow = (key: string, index: number, mine = true) => ({
  key, index, method: "r-ROME", facts: [{ prompt: "p", subject: "The <b>Eiffel</b> Tower", target: " Rome" }], layers: [4],
  norm: 1.234, time: "12:00:00", mine,
});

function mount(extra: Record<string, unknown> = {}) {
  const model = new FakeModel({
    view: "editor", prompt: "The <b>Eiffel</b> Tower is located in the city of", subject: "The Eiffel Tower", target: " Rome",
    layer: 4, method: "r-rome", n_layers: 6, status: "idle", curve: [], comparison: {}, edit_log: [],
    prediction: { token: " Paris", prob: 0.62 },
    hint: { values: packed("float32", [6], [0.1, 0.5, NaN, 0.9, -0.2, 0.3]), peak: 3, label: "MLP indirect effect" },
    ...extra,
  });
  const el = document.createElement("div");
  document.body.appendChild(el);
  initialize({ model });
  const cleanup = render({ model, el });
  return { model, el, cleanup };
}

const q = <T extends Element = HTMLElement>(el: Element, sel: string) => el.querySelector(sel) as unknown as T;

describe("editor view", () => {
  beforeEach(() => {
    document.body.innerHTML = "";
    installRecordingCanvas();
  });

  it("shows the form from the kernel's state, model text as text", () => {
    const { el } = mount();
    expect(q(el, ".fw-ed-prompt-text").textContent).toBe("The <b>Eiffel</b> Tower is located in the city of");
    expect(el.querySelector("b")).toBeNull();
    expect(q<HTMLInputElement>(el, 'input[aria-label="subject"]').value).toBe("The Eiffel Tower");
    expect(q<HTMLInputElement>(el, 'input[aria-label="new target"]').value).toBe(" Rome");
    expect(q<HTMLInputElement>(el, 'input[aria-label="layer"]').value).toBe("4");
    expect(q(el, ".fw-ed-predicts").textContent).toContain("␣Paris (62.0%)");
    expect(q(el, ".fw-seg .fw-on").textContent).toBe("r-ROME");
    expect(q(el, ".fw-editor").dataset.status).toBe("idle");
    expect(q(el, ".fw-ed-progress").style.display).toBe("none");
    expect(q(el, ".fw-ed-report").style.display).toBe("none");
    expect(q(el, ".fw-ed-log-empty").style.display).toBe("");
  });

  it("the strip says both the hint's peak and the default edit layer, and why, when they differ", () => {
    const hint = { values: packed("float32", [6], [0.1, 0.5, NaN, 0.9, -0.2, 0.3]), peak: 3, label: "MLP indirect effect",
      default: 1, default_reason: "where edits of the dev facts succeed best (edit_layer_sweep)" };
    const { el } = mount({ hint });
    const title = q(el, ".fw-strip-title").textContent!;
    expect(title).toContain("▲ peak at layer 3");
    expect(title).toContain("default layer 1: where edits of the dev facts succeed best");
    const same = mount({ hint: { ...hint, default: 3 } });
    expect(q(same.el, ".fw-strip-title").textContent).not.toContain("default layer");
  });

  it("Apply sends what the user typed and chose; the strip picks a layer", () => {
    const { el, model } = mount();
    const target = q<HTMLInputElement>(el, 'input[aria-label="new target"]');
    target.value = " London";
    target.dispatchEvent(new Event("input"));
    q<HTMLButtonElement>(el, '.fw-seg button[data-value="rome"]').click();
    const bars = [...el.querySelectorAll<HTMLButtonElement>(".fw-strip-bar")];
    expect(bars).toHaveLength(6);
    expect(bars[3].classList.contains("fw-peak")).toBe(true);
    expect(bars[3].textContent).toBe("▲");
    expect(bars[2].classList.contains("fw-unknown")).toBe(true);
    expect(bars[4].classList.contains("fw-on")).toBe(true);
    bars[1].click();
    expect(q<HTMLInputElement>(el, 'input[aria-label="layer"]').value).toBe("1");
    expect(bars[1].classList.contains("fw-on") && !bars[4].classList.contains("fw-on")).toBe(true);
    q<HTMLButtonElement>(el, ".fw-ed-apply").click();
    expect(model.sent.at(-1)).toEqual({ type: "apply", subject: "The Eiffel Tower", target: " London", layer: 1, method: "rome" });
    model.set("subject", "The Louvre"); // a kernel change shows (the user's typing was sent)
    expect(q<HTMLInputElement>(el, 'input[aria-label="subject"]').value).toBe("The Louvre");
  });

  it("a running edit disables Apply and the log, shows Cancel and draws the loss live", () => {
    const { el, model } = mount({ edit_log: [logRow("a1", 0)] });
    model.set("status", "running");
    expect(q<HTMLButtonElement>(el, ".fw-ed-apply").disabled).toBe(true);
    expect(q(el, ".fw-ed-cancel").style.display).toBe("");
    expect(q<HTMLButtonElement>(el, ".fw-ed-undo").disabled).toBe(true);
    expect(q<HTMLButtonElement>(el, ".fw-ed-reset").disabled).toBe(true);
    const curve = [6.4, 4.8, 3.0, 0.9].map((loss, step) => ({ step, loss, p_target: step / 4, of: 20 }));
    for (let i = 1; i <= curve.length; i++) model.set("curve", curve.slice(0, i));
    expect(q(el, ".fw-ed-progress").style.display).toBe("");
    const points = q(el, ".fw-chart-y").getAttribute("points")!.split(" ");
    expect(points).toHaveLength(4);
    const ys = points.map((p) => Number(p.split(",")[1]));
    expect(ys).toEqual([...ys].sort((a, b) => a - b)); // falling loss: rising y in pixels
    expect(q(el, ".fw-ed-step").textContent).toContain("step 4 of 20");
    q<HTMLButtonElement>(el, ".fw-ed-cancel").click();
    expect(model.sent.at(-1)).toEqual({ type: "cancel" });
    model.set("status", "cancelled");
    expect(q(el, ".fw-ed-cancel").style.display).toBe("none");
    expect(q(el, ".fw-ed-step").textContent).toContain("cancelled: nothing written");
  });

  it("draws before → after rows with verdicts and the continuations as text", () => {
    const { el, model } = mount();
    model.set("comparison", comparison());
    const rows = [...el.querySelectorAll<HTMLElement>(".fw-ed-row")];
    expect(rows.map((r) => r.dataset.kind)).toEqual(["prompt", "paraphrase", "neighbour"]);
    expect(rows[0].querySelector(".fw-ed-new")!.textContent).toBe("1.0% → 95.0%");
    expect(rows[0].querySelector(".fw-ed-top")!.textContent).toContain("␣Paris");
    expect(rows.map((r) => r.querySelector(".fw-ed-verdict")!.textContent)).toEqual(["new wins", "true still wins", "kept"]);
    expect(rows[0].querySelector(".fw-ed-prompt-cell")!.textContent).toContain("<b>Eiffel</b>");
    expect(q(el, ".fw-ed-before-text").textContent).toBe(" Paris, <script>France</script>.");
    expect(el.querySelector("script, b, i")).toBeNull();
    expect(q(el, ".fw-ed-report-note").textContent).toBe("");
    model.set("comparison", comparison(false));
    expect(q(el, ".fw-ed-report-note").textContent).toContain("undone");
  });

  it("the edit log follows the kernel's list; Undo and Reset send their messages", () => {
    const { el, model } = mount();
    model.set("edit_log", [logRow("a1", 0, false), logRow("b2", 1)]);
    const rows = [...el.querySelectorAll<HTMLElement>(".fw-ed-log tbody tr")];
    expect(rows.map((r) => r.dataset.key)).toEqual(["a1", "b2"]);
    expect(rows[1].classList.contains("fw-ed-mine") && !rows[0].classList.contains("fw-ed-mine")).toBe(true);
    expect(rows[0].textContent).toContain("The <b>Eiffel</b> Tower → ␣Rome");
    expect(el.querySelector("b")).toBeNull();
    (rows[0].querySelector(".fw-ed-undo") as HTMLButtonElement).click();
    expect(model.sent.at(-1)).toEqual({ type: "undo", key: "a1" });
    q<HTMLButtonElement>(el, ".fw-ed-reset").click();
    expect(model.sent.at(-1)).toEqual({ type: "reset" });
    model.set("edit_log", []);
    expect(el.querySelectorAll(".fw-ed-log tbody tr")).toHaveLength(0);
    expect(q(el, ".fw-ed-log-empty").style.display).toBe("");
    expect(q<HTMLButtonElement>(el, ".fw-ed-reset").disabled).toBe(true);
  });

  it("removes its listeners on cleanup", () => {
    const { model, cleanup } = mount();
    cleanup();
    for (const e of ["change:curve", "change:edit_log", "change:comparison", "change:status"]) expect(model.listenerCount(e)).toBe(0);
  });
});

describe("editor parts", () => {
  it("log range spans the positive values, at least a factor of ten", () => {
    expect(logRange([6.4, 0.055, NaN, -1])).toEqual([0.055, 6.4]);
    const [lo, hi] = logRange([2, 2])!;
    expect(hi / lo).toBeCloseTo(10);
    expect(Math.sqrt(lo * hi)).toBeCloseTo(2);
    expect(logRange([0, NaN])).toBeNull();
  });

  it("log y maps the range ends to the plot's edges, clamps outside it", () => {
    const r: [number, number] = [0.01, 10];
    expect(logY(10, r, 10, 110)).toBe(10);
    expect(logY(0.01, r, 10, 110)).toBe(110);
    expect(logY(Math.sqrt(0.1), r, 10, 110)).toBeCloseTo(60);
    expect(logY(0, r, 10, 110)).toBe(110);
    expect(logY(1e6, r, 10, 110)).toBe(10);
    expect(Number.isNaN(logY(NaN, r, 10, 110))).toBe(true);
  });

  it("bar heights are shares of the largest value; negatives and NaN are empty", () => {
    expect(barHeights([0.5, 1, NaN, -0.2, 0])).toEqual([0.5, 1, 0, 0, 0]);
    expect(barHeights([NaN, -1])).toEqual([0, 0]);
  });

  it("percentages stay short at any size", () => {
    expect([0.702, 0.0057, 0.00022, 7.7e-8, null].map(pct)).toEqual(["70.2%", "0.57%", "0.022%", "<0.01%", "–"]);
  });

  it("verdicts: prompts want the new object to win, neighbours to keep theirs", () => {
    const row = (kind: string, t: number, n: number) => ({ kind, after: { p_true: t, p_new: n } }) as any;
    expect(verdict(row("prompt", 0.1, 0.8)).good).toBe(true);
    expect(verdict(row("paraphrase", 0.5, 0.4)).good).toBe(false);
    expect(verdict(row("neighbour", 0.5, 0.4)).text).toBe("kept");
    expect(verdict(row("neighbour", 0.1, 0.4)).text).toBe("pulled to new");
  });
});
