// Editor: a ROME edit from a form (subject, new target, layer — typed or clicked on the hint strip —,
// method), its optimisation drawn live, then before → after rows, the continuations, and the model's edit
// log with Undo. The root carries data-status (idle, running, done, cancelled, failed) for tests.
import { layerStrip, lineChart, segmented } from "../components";
import { decodeFloat, formatNumber, h, injectStyle, RenderProps, send, setText, showToken } from "../core";
import { BatchFact, Comparison, comparisonTable, continuations, factList, LogRow, logTable, pct } from "./editor_report";

const CSS = `
.fw-ed-form { display: grid; grid-template-columns: auto minmax(0, 1fr); gap: 6px 10px; align-items: center; }
.fw-ed-form > .fw-muted { justify-self: end; }
.fw-ed-prompt-text { font-family: var(--jp-code-font-family, monospace); white-space: pre-wrap; }
.fw-ed-form input[type=text] { font-family: var(--jp-code-font-family, monospace); width: 16em; max-width: 100%; }
.fw-narrow .fw-ed-form { grid-template-columns: minmax(0, 1fr); gap: 2px; }
.fw-narrow .fw-ed-form > .fw-muted { justify-self: start; margin-top: 4px; }
.fw-narrow .fw-ed-prompt-cell { min-width: 8em; }
.fw-narrow .fw-ed-table td.fw-num, .fw-narrow .fw-ed-top, .fw-narrow .fw-ed-verdict { white-space: normal; }
.fw-narrow .fw-ed-bars { display: flex; margin: 0 0 2px; }
.fw-narrow .fw-ed-verdict { overflow-wrap: normal; }
.fw-ed-form input[type=number] { width: 5em; font: inherit; color: var(--jp-ui-font-color0, #111);
  background: var(--jp-input-background, var(--jp-layout-color1, #fff)); border: 1px solid var(--jp-border-color1, #ccc); border-radius: 3px; padding: 3px 6px; }
.fw-ed-line { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: center; }
.fw-root button.fw-ed-apply { background: var(--jp-brand-color1, #1976d2); color: var(--jp-ui-inverse-font-color0, #fff); border-color: transparent; }
.fw-root button:disabled { opacity: 0.5; cursor: default; }
.fw-strip { margin-top: 2px; }
.fw-strip-bars { display: flex; gap: 1px; align-items: flex-end; margin-top: 2px; }
.fw-strip-bar { display: flex; flex-direction: column; align-items: center; flex: 0 1 14px; min-width: 4px; padding: 0; border: none; background: none;
  cursor: pointer; color: var(--jp-ui-font-color1, #444); }
.fw-strip-track { width: calc(100% - 2px); height: 36px; display: flex; align-items: flex-end; border-radius: 1px;
  background: var(--jp-layout-color2, #eee); background: color-mix(in srgb, currentColor 9%, transparent); }
.fw-strip-bar:hover .fw-strip-track { outline: 1px solid var(--jp-border-color1, #ccc); }
.fw-strip-fill { width: 100%; background: var(--fw-neg, #5b8fca); }
.fw-strip-bar.fw-unknown .fw-strip-track { background: transparent; outline: 1px dashed var(--jp-border-color1, #ccc); }
.fw-strip-bar.fw-on .fw-strip-track { outline: 2px solid var(--jp-brand-color1, #1976d2); outline-offset: 1px; }
.fw-strip-bar.fw-on .fw-strip-fill { background: var(--fw-pos, #d8734f); }
.fw-strip-tick { font-size: 9px; height: 12px; color: var(--jp-ui-font-color2, #777); }
.fw-strip-bar.fw-peak .fw-strip-tick { color: var(--fw-pos, #d8734f); }
.fw-ed-run { display: flex; flex-wrap: wrap; gap: 10px 18px; align-items: center; }
.fw-ed-bars { display: inline-flex; flex-direction: column; gap: 1px; width: 48px; margin-right: 6px; vertical-align: middle; }
.fw-ed-bar { display: block; height: 4px; border-radius: 1px; }
.fw-ed-before { background: var(--jp-ui-font-color3, #bbb); }
.fw-ed-true .fw-ed-after { background: var(--fw-neg, #5b8fca); }
.fw-ed-new .fw-ed-after { background: var(--fw-pos, #d8734f); }
.fw-ed-scroll { overflow-x: auto; }
.fw-ed-prompt-cell { min-width: 16em; }
.fw-ed-table td.fw-num, .fw-ed-top, .fw-ed-verdict { white-space: nowrap; }
.fw-ed-undone .fw-ed-table, .fw-ed-undone .fw-ed-continuations { opacity: 0.6; }
.fw-ed-kind { font-size: 11px; padding: 0 4px; border-radius: 2px; background: var(--jp-layout-color2, #eee); color: var(--jp-ui-font-color1, #444); }
.fw-ed-verdict { font-size: 11px; font-weight: 600; }
.fw-ed-verdict.fw-good { color: var(--jp-success-color1, #2e7d32); }
.fw-ed-verdict.fw-bad { color: var(--jp-warn-color1, #e65100); }
.fw-ed-continuations { display: grid; grid-template-columns: auto minmax(0, 1fr); gap: 4px 10px; margin-top: 8px; }
.fw-ed-text { font-family: var(--jp-code-font-family, monospace); white-space: pre-wrap; overflow-wrap: anywhere; }
.fw-ed-after-text { color: var(--jp-ui-font-color0, #111); font-weight: 600; }
.fw-ed-facts { max-height: 180px; overflow-y: auto; }
.fw-editor .fw-ed-table-wrap { max-height: 420px; overflow-y: auto; }
.fw-ed-new-object { color: var(--fw-pos, #d8734f); }
tr.fw-ed-mine td:first-child { box-shadow: inset 3px 0 var(--fw-pos, #d8734f); }
`;

interface CurvePointMsg { step: number; loss: number | null; p_target: number | null; of?: number }

export function render({ model, el }: RenderProps) {
  injectStyle("ffn-widgets-editor-style", CSS);
  const promptText = h("span", { class: "fw-ed-prompt-text" });
  const predicts = h("span", { class: "fw-muted fw-ed-predicts" });
  const subject = h("input", { attrs: { type: "text", "aria-label": "subject", spellcheck: "false" } }) as HTMLInputElement;
  const target = h("input", { attrs: { type: "text", "aria-label": "new target", spellcheck: "false", placeholder: "e.g. Rome" } }) as HTMLInputElement;
  const layer = h("input", { attrs: { type: "number", min: "0", step: "1", "aria-label": "layer" } }) as HTMLInputElement;
  let method = String(model.get("method") ?? "r-rome");
  const names: Record<string, string> = { "r-rome": "r-ROME", rome: "ROME", memit: "MEMIT", alphaedit: "AlphaEdit" };
  const offered: string[] = model.get("methods") ?? ["r-rome", "rome"];
  const methods = segmented(offered.map((m) => [m, names[m] ?? m]), (m) => { method = m; methods.set(m); drawLayerNote(); });
  const batch: BatchFact[] = model.get("batch") ?? [];
  const isBatch = batch.length > 0;
  const facts = factList();
  const layerNote = h("span", { class: "fw-muted fw-ed-layer-note" });
  if (isBatch) predicts.style.display = "none"; // one prompt's prediction says little about a batch
  const apply = h("button", { class: "fw-button fw-ed-apply", text: "Apply", attrs: { type: "button" } });
  const cancel = h("button", { class: "fw-button fw-ed-cancel", text: "Cancel", attrs: { type: "button" }, on: { click: () => send(model, "cancel") } });
  const strip = layerStrip((l) => { layer.value = String(l); drawHint(); });
  const chart = lineChart({ label: "loss", label2: "p(new)", width: 340, height: 120, ariaLabel: "optimisation loss per step" });
  const stepText = h("span", { class: "fw-muted fw-ed-step" });
  const runPanel = h("div", { class: "fw-panel fw-ed-progress" }, [
    h("div", { class: "fw-panel-head" }, [h("span", { class: "fw-title", text: "Optimising the new value" }), stepText]),
    h("div", { class: "fw-ed-run" }, [chart.el]),
  ]);
  const table = comparisonTable();
  const texts = continuations();
  const reportHead = h("span", { class: "fw-title" });
  const reportNote = h("span", { class: "fw-muted fw-ed-report-note" });
  const reportPanel = h("div", { class: "fw-panel fw-ed-report" }, [
    h("div", { class: "fw-panel-head" }, [reportHead, reportNote]), h("div", { class: "fw-ed-table-wrap" }, [table.el]),
    ...(isBatch ? [] : [h("div", { class: "fw-muted", style: { marginTop: "8px" }, text: "Greedy continuation of the prompt" }), texts.el]),
  ]);
  const log = logTable((key) => send(model, "undo", { key }));
  const reset = h("button", { class: "fw-button fw-ed-reset", text: "Reset all edits", title: "The weights as loaded, bit for bit",
    attrs: { type: "button" }, on: { click: () => send(model, "reset") } });
  const root = h("div", { class: "fw-editor" }, [
    h("div", { class: "fw-panel" }, [
      h("div", { class: "fw-panel-head" }, [h("span", { class: "fw-title", text: isBatch ? `Edit ${batch.length} facts` : "ROME edit" }), predicts]),
      h("div", { class: "fw-ed-form" }, [
        ...(isBatch ? [h("span", { class: "fw-muted", text: "Facts" }), facts.el] : [
          h("span", { class: "fw-muted", text: "Prompt" }), promptText,
          h("span", { class: "fw-muted", text: "Subject" }), h("div", { class: "fw-ed-line" }, [subject,
            h("span", { class: "fw-muted", text: "New target" }), target])]),
        h("span", { class: "fw-muted", text: "Layer" }), h("div", { class: "fw-ed-line" }, [layer, layerNote, methods.el, apply, cancel]),
        h("span", {}), strip.el,
      ]),
    ]),
    runPanel, reportPanel,
    h("div", { class: "fw-panel" }, [h("div", { class: "fw-panel-head" }, [h("span", { class: "fw-title", text: "Edit log of this model" }), reset]), log.el]),
  ]);
  el.appendChild(root);

  const typed = new Set<HTMLInputElement>(); // fields the user changed since the kernel last set them
  for (const input of [subject, target, layer]) input.addEventListener("input", () => typed.add(input));
  const submit = () => {
    send(model, "apply", { subject: subject.value, target: target.value, layer: layer.value === "" ? null : Number(layer.value), method });
    typed.clear();
  };
  apply.addEventListener("click", submit);
  for (const input of [subject, target, layer]) input.addEventListener("keydown", (e) => { if ((e as KeyboardEvent).key === "Enter") submit(); });
  layer.addEventListener("input", () => { drawHint(); drawLayerNote(); });
  facts.update(batch);

  function drawLayerNote() {
    const l = Number(layer.value);
    const memit = method === "memit" || method === "alphaedit";
    setText(layerNote, memit && Number.isFinite(l) ? `layers ${Math.max(0, l - 4)}–${l}` : "");
  }

  function drawForm() {
    setText(promptText, String(model.get("prompt") ?? ""));
    layer.max = String(Math.max(0, Number(model.get("n_layers") ?? 1) - 1));
    const fields: [HTMLInputElement, string][] = [[subject, String(model.get("subject") ?? "")],
      [target, String(model.get("target") ?? "")], [layer, String(model.get("layer") ?? "")]];
    for (const [input, value] of fields) if (!typed.has(input) && input.value !== value) input.value = value;
    method = String(model.get("method") ?? method);
    methods.set(method);
    drawHint();
    drawLayerNote();
  }

  function drawHint() {
    const hint = model.get("hint");
    strip.el.style.display = hint && hint.values ? "" : "none";
    if (hint && hint.values) {
      const fallback = typeof hint.default === "number" ? { layer: hint.default, reason: String(hint.default_reason ?? "") } : undefined;
      strip.update(decodeFloat(hint.values).data, Number(layer.value), Number(hint.peak), String(hint.label ?? ""), fallback);
    }
  }

  function drawStatus() {
    const status = String(model.get("status") ?? "idle");
    root.dataset.status = status;
    const running = status === "running";
    apply.disabled = running;
    reset.disabled = running || !(model.get("edit_log") ?? []).length;
    cancel.style.display = running ? "" : "none";
    drawCurve();
    drawLog();
  }

  function drawCurve() {
    const curve: CurvePointMsg[] = model.get("curve") ?? [];
    runPanel.style.display = curve.length ? "" : "none";
    const last = curve[curve.length - 1];
    chart.update(curve.map((p) => ({ x: p.step, y: p.loss ?? NaN, y2: p.p_target })), last?.of ?? 20);
    const status = String(model.get("status") ?? "");
    const where = status === "running" ? "" : status === "cancelled" ? " · cancelled: nothing written" : status === "done" ? " · written" : "";
    setText(stepText, last ? `step ${last.step + 1}${last.of ? ` of ${last.of}` : ""} · loss ${formatNumber(last.loss ?? NaN)} · p(new) ${formatNumber(last.p_target ?? NaN)}${where}` : "");
  }

  function drawPrediction() {
    const p = model.get("prediction") ?? {};
    setText(predicts, p.token !== undefined ? `the model now continues with ${showToken(p.token)} (${(100 * p.prob).toFixed(1)}%)` : "");
  }

  function drawReport() {
    const c = model.get("comparison") as Comparison | undefined;
    if (!c || !c.rows) {
      reportPanel.style.display = "none";
      return;
    }
    reportPanel.style.display = "";
    const layers = c.layers?.length ? `layers ${c.layers[0]}–${c.layers[c.layers.length - 1]}` : `layer ${c.layer}`;
    setText(reportHead, c.batch
      ? `Before → after: ${c.facts} facts, ${names[c.method] ?? c.method} at ${layers} · efficacy ${pct(c.efficacy)} · paraphrases ${pct(c.paraphrase)}`
      : `Before → after: ${c.subject} → ${showToken(c.target)} at layer ${c.layer} (${c.method})`);
    const skipped = c.skipped?.length ? `skipped (the model already said so): ${c.skipped.join("; ")}. ` : "";
    setText(reportNote, skipped + (c.applied ? "" : "this edit has been undone; the numbers are of when it was applied"));
    reportPanel.classList.toggle("fw-ed-undone", !c.applied);
    table.update(c.rows);
    texts.update(c.continuations, String(model.get("prompt") ?? ""));
  }

  function drawLog() {
    const rows: LogRow[] = model.get("edit_log") ?? [];
    log.update(rows, model.get("status") === "running");
    reset.disabled = model.get("status") === "running" || !rows.length;
  }

  const events: [string, () => void][] = [
    ["change:prompt", drawForm], ["change:subject", () => { typed.delete(subject); drawForm(); }],
    ["change:target", () => { typed.delete(target); drawForm(); }], ["change:layer", () => { typed.delete(layer); drawForm(); }],
    ["change:method", drawForm], ["change:hint", drawHint], ["change:status", drawStatus], ["change:curve", drawCurve],
    ["change:comparison", drawReport], ["change:edit_log", drawLog], ["change:prediction", drawPrediction],
  ];
  for (const [e, fn] of events) model.on(e, fn);
  drawForm();
  drawStatus();
  drawPrediction();
  drawReport();
  return () => {
    for (const [e, fn] of events) model.off(e, fn);
  };
}
