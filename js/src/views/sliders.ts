// NeuronSliders: one range input per neuron; the kernel answers each (coalesced) drag with the next-token
// bars, then the greedy continuation. The root carries data-seq (the drag message the bars answer) and
// data-latency-ms (input event -> bars redrawn), which the browser test and benchmark read.
import { clear, decodeFloat, decodeInt, h, injectStyle, RenderProps, send, sendLatest, setText, showToken } from "../core";

const CSS = `
.fw-sliders-rows { display: grid; grid-template-columns: auto minmax(120px, 1fr) 64px auto; gap: 4px 10px; align-items: center; }
.fw-sliders-rows input[type=range] { width: 100%; }
.fw-sliders-rows input[type=number] { width: 64px; font: inherit; }
.fw-slider-label { font-family: var(--jp-code-font-family, monospace); white-space: nowrap; }
.fw-bars { display: grid; grid-template-columns: auto minmax(120px, 1fr) 56px; gap: 2px 8px; align-items: center; }
.fw-bar-track { position: relative; height: 12px; background: var(--jp-layout-color2, #eee); border-radius: 2px; }
.fw-bar-fill { position: absolute; left: 0; top: 0; bottom: 0; background: var(--fw-neg, #5b8fca); border-radius: 2px; }
.fw-bar-target .fw-bar-fill { background: var(--fw-pos, #d8734f); }
.fw-bar-target { font-weight: 600; }
.fw-bar-was { position: absolute; top: -2px; bottom: -2px; width: 2px; background: var(--jp-ui-font-color1, #333); opacity: 0.55; }
.fw-bar-sep { grid-column: 1 / -1; border-top: 1px dashed var(--jp-border-color1, #ccc); height: 0; }
.fw-continuation { font-family: var(--jp-code-font-family, monospace); white-space: pre-wrap; overflow-wrap: anywhere; }
.fw-narrow .fw-sliders-rows { grid-template-columns: auto minmax(60px, 1fr) 52px auto; gap: 4px 6px; }
.fw-narrow .fw-sliders-rows input[type=number] { width: 52px; }
.fw-narrow .fw-bars { grid-template-columns: auto minmax(60px, 1fr) auto; gap: 2px 6px; }
.fw-narrow .fw-bars .fw-token { white-space: pre-wrap; overflow-wrap: anywhere; }
`;

const lastSeq = new WeakMap<object, number>(); // per model: the highest message number used or answered

function nextSeq(model: RenderProps["model"]): number {
  const answered = Math.max(Number(model.get("scales_seq") ?? -1), Number(model.get("prediction")?.seq ?? -1));
  const seq = Math.max(lastSeq.get(model) ?? 0, answered) + 1;
  lastSeq.set(model, seq);
  return seq;
}

interface Row {
  layer: number;
  neuron: number;
  promotes: string[];
}

const width = (p: number) => `${Math.round(1000 * Math.min(1, Math.max(0, p))) / 10}%`;
const pct = (p: number) => (p >= 0.1 ? `${(100 * p).toFixed(1)}%` : `${(100 * p).toPrecision(2)}%`);

export function render({ model, el }: RenderProps) {
  injectStyle("ffn-widgets-sliders-style", CSS);
  const now = () => (typeof performance !== "undefined" ? performance.now() : Date.now());
  let local: number[] = [...(model.get("scales") ?? [])];
  // Sequence numbers are shared by every view of this model and start above what the kernel last answered,
  // so a re-rendered (or second) view never reuses a number the kernel has seen.
  let lastSent = -1;
  const sentAt = new Map<number, number>();
  let inputs: [HTMLInputElement, HTMLInputElement][] = [];

  const prompt = h("div", { class: "fw-muted" });
  const targetLine = h("div", { class: "fw-target-line" });
  const rows = h("div", { class: "fw-sliders-rows" });
  const addBox = h("input", { attrs: { type: "text", placeholder: "layer:neuron", "aria-label": "add neuron", size: "10" } });
  const addButton = h("button", { class: "fw-button", text: "Add", attrs: { type: "button" } });
  const resetButton = h("button", { class: "fw-button fw-reset", text: "Reset all to ×1", attrs: { type: "button" } });
  const bars = h("div", { class: "fw-bars", attrs: { "aria-label": "next-token probabilities" } });
  const continuation = h("div", { class: "fw-continuation" });
  const root = h("div", { class: "fw-sliders" }, [
    h("div", { class: "fw-panel" }, [
      h("div", { class: "fw-panel-head" }, [h("span", { class: "fw-title", text: "Neuron sliders" }), prompt]),
      rows,
      h("div", { class: "fw-toolbar" }, [resetButton, h("span", {}, [addBox, addButton]),
        h("span", { class: "fw-muted", text: "0 suppresses · 1 leaves the neuron · 2 doubles it (every position)" })]),
    ]),
    h("div", { class: "fw-panel" }, [h("div", { class: "fw-panel-head" }, [h("span", { class: "fw-title", text: "Next token" }), targetLine]), bars]),
    h("div", { class: "fw-panel" }, [h("span", { class: "fw-muted", text: "Greedy continuation: " }), continuation]),
  ]);
  el.appendChild(root);

  const keys = () => (model.get("neurons") ?? []).map((n: Row) => `${n.layer}:${n.neuron}`);
  const sendScales = () => {
    const seq = nextSeq(model);
    lastSent = seq;
    sentAt.set(seq, now());
    root.dataset.sent = String(seq);
    sendLatest(model, "scales", { scales: [...local], keys: keys(), seq });
  };

  const buildRows = () => {
    clear(rows);
    inputs = [];
    const neurons: Row[] = model.get("neurons") ?? [];
    const [lo, hi] = model.get("scale_range") ?? [-1, 3];
    local = [...(model.get("scales") ?? neurons.map(() => 1))];
    if (!neurons.length) rows.appendChild(h("span", { class: "fw-muted", text: "No neurons yet: add one as layer:neuron, or from the explorer." }));
    neurons.forEach((n, i) => {
      const key = `${n.layer}:${n.neuron}`;
      const label = h("span", { class: "fw-slider-label", text: `L${n.layer}.N${n.neuron}`,
        title: `promotes: ${n.promotes.map(showToken).join(" ")}` });
      const range = h("input", { attrs: { type: "range", min: String(lo), max: String(hi), step: "0.05", "data-key": key,
        "aria-label": `scale of L${n.layer}.N${n.neuron}` } });
      const box = h("input", { attrs: { type: "number", min: String(lo), max: String(hi), step: "0.1", "data-key": key,
        "aria-label": `scale of L${n.layer}.N${n.neuron} (number)` } });
      range.value = box.value = String(local[i]);
      inputs.push([range, box]);
      range.addEventListener("input", () => {
        local[i] = Number(range.value);
        box.value = range.value;
        sendScales();
      });
      box.addEventListener("change", () => {
        let v = Number(box.value);
        if (!Number.isFinite(v) || box.value.trim() === "") return;
        v = Math.min(hi, Math.max(lo, v)); // typed values are kept to the slider's range
        local[i] = v;
        box.value = range.value = String(v);
        sendScales();
      });
      const remove = h("button", { class: "fw-button", text: "×", title: "remove this slider",
        attrs: { type: "button", "aria-label": `remove L${n.layer}.N${n.neuron}` },
        on: { click: () => send(model, "remove", { layer: n.layer, neuron: n.neuron }) } });
      const promotes = h("span", { class: "fw-muted", text: n.promotes.map(showToken).join(" ") });
      rows.append(h("span", {}, [label, " ", promotes]), range, box, remove);
    });
  };

  const applyScales = () => {
    const answered = Number(model.get("scales_seq"));
    if (answered !== -1 && answered < lastSent) return; // an older drag position: the user has moved on
    local = [...(model.get("scales") ?? [])];
    inputs.forEach(([range, box], i) => {
      if (i >= local.length) return;
      if (Number(range.value) !== local[i]) range.value = String(local[i]);
      if (Number(box.value) !== local[i]) box.value = String(local[i]);
    });
  };

  const barRow = (token: string, prob: number, was: number, isTarget: boolean, rank?: number) => {
    const fill = h("div", { class: "fw-bar-fill", style: { width: width(prob) } });
    const marker = h("div", { class: "fw-bar-was", style: { left: width(was) }, title: `original ${pct(was)}` });
    const cls = isTarget ? "fw-bar-target" : "";
    const label = rank !== undefined ? `${showToken(token)} (#${rank + 1})` : showToken(token);
    return [h("span", { class: `fw-token ${cls}`, text: label }), h("div", { class: `fw-bar-track ${cls}` }, [fill, marker]),
      h("span", { class: `fw-num ${cls}`, text: pct(prob) })];
  };

  const drawBars = () => {
    const p = model.get("prediction");
    if (!p || !p.probs) return;
    const probs = decodeFloat(p.probs).data;
    const was = decodeFloat(p.original_probs).data;
    const ids = decodeInt(p.ids).data;
    const t = p.target;
    clear(bars);
    let targetShown = false;
    p.tokens.forEach((tok: string, i: number) => {
      const isTarget = !!t && ids[i] === t.id;
      targetShown = targetShown || isTarget;
      bars.append(...barRow(tok, probs[i], was[i], isTarget));
    });
    if (t && !targetShown) {
      bars.append(h("div", { class: "fw-bar-sep" }), ...barRow(t.text, t.prob, t.original_prob, true, t.rank));
    }
    if (t) {
      setText(targetLine, `p(${showToken(t.text)}) = ${pct(t.prob)} (was ${pct(t.original_prob)}) · rank ${t.rank + 1} (was ${t.original_rank + 1})`);
    }
    const answered = Number(p.seq);
    root.dataset.seq = String(answered);
    const start = sentAt.get(answered);
    if (start !== undefined) {
      root.dataset.latencyMs = (now() - start).toFixed(1);
      for (const k of [...sentAt.keys()]) if (k <= answered) sentAt.delete(k);
    }
  };

  const drawContinuation = () => {
    const c = model.get("continuation");
    if (!c || !c.tokens) return;
    clear(continuation);
    // one line of text: line breaks drawn as ⏎, an empty continuation (the model ends its turn) said so
    const text = (tokens: string[]) => tokens.join("").replace(/\r?\n/g, "⏎") || "(end of text)";
    const now = text(c.tokens), before = text(c.original ?? []);
    continuation.append(h("span", { class: "fw-muted", text: "…" }), h("span", { text: now }));
    if (now !== before) continuation.append(h("span", { class: "fw-muted", text: `   (originally: ${before})` }));
  };

  const showPrompt = () => setText(prompt, String(model.get("prompt") ?? ""));
  const onAdd = () => {
    if (!addBox.value.trim()) return;
    send(model, "add", { text: addBox.value });
    addBox.value = "";
  };
  addButton.addEventListener("click", onAdd);
  addBox.addEventListener("keydown", (e) => { if ((e as KeyboardEvent).key === "Enter") onAdd(); });
  resetButton.addEventListener("click", () => send(model, "reset"));

  const handlers: [string, () => void][] = [["change:neurons", buildRows], ["change:scales", applyScales],
    ["change:prediction", drawBars], ["change:continuation", drawContinuation], ["change:prompt", showPrompt]];
  for (const [event, fn] of handlers) model.on(event, fn);
  showPrompt();
  buildRows();
  drawBars();
  drawContinuation();
  return () => {
    for (const [event, fn] of handlers) model.off(event, fn);
    root.remove();
  };
}
