// StabilityMonitor: the edit-stability experiment, live. Controls (method, steps, facts per step, Start,
// Cancel), then three charts that grow as measurements arrive (scores; KL on unrelated prompts; norm growth),
// the collapse thresholds as dashed guides and the collapse as a vertical marker, and the latest step's
// figures. The root carries data-status (idle, running, done, cancelled, failed) for tests.
import { segmented, seriesChart } from "../components";
import { formatNumber, h, injectStyle, RenderProps, send, setText } from "../core";

const CSS = `
.fw-st-controls { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: center; }
.fw-st-controls input[type=number] { width: 5em; font: inherit; color: var(--jp-ui-font-color0, #111);
  background: var(--jp-input-background, var(--jp-layout-color1, #fff)); border: 1px solid var(--jp-border-color1, #ccc); border-radius: 3px; padding: 3px 6px; }
.fw-root button.fw-st-start { background: var(--jp-brand-color1, #1976d2); color: var(--jp-ui-inverse-font-color0, #fff); border-color: transparent; }
.fw-st-charts { display: flex; flex-wrap: wrap; gap: 8px 16px; margin-top: 8px; }
.fw-st-summary { margin-top: 6px; font-variant-numeric: tabular-nums; }
.fw-st-collapse { color: var(--jp-error-color1, #d32f2f); font-weight: 600; }
.fw-st-last { margin-top: 4px; white-space: pre-wrap; overflow-wrap: anywhere; }
`;

interface Row {
  step: number; edits: number; retention: number | null; efficacy: number | null; paraphrase: number | null;
  neighbourhood: number | null; kl: number | null; kl_max: number | null; norm_ratio: number | null;
  facts: string[]; collapsed: boolean; collapse_reason: string; skipped: number;
}

const pct = (v: number | null) => (v === null || v === undefined ? "–" : `${Math.round(100 * v)}%`);
const NAMES: Record<string, string> = { "r-rome": "r-ROME", rome: "ROME", memit: "MEMIT", alphaedit: "AlphaEdit" };

export function render({ model, el }: RenderProps) {
  injectStyle("ffn-widgets-stability-style", CSS);
  let method = String(model.get("method") ?? "r-rome");
  const offered: string[] = model.get("methods") ?? Object.keys(NAMES);
  const methods = segmented(offered.map((m) => [m, NAMES[m] ?? m]), (m) => { method = m; methods.set(m); });
  const number = (label: string, min: string) => h("input", { attrs: { type: "number", min, step: "1", "aria-label": label } }) as HTMLInputElement;
  const steps = number("steps", "1");
  const batch = number("facts per step", "1");
  const start = h("button", { class: "fw-button fw-st-start", text: "Start", attrs: { type: "button" } });
  const cancel = h("button", { class: "fw-button fw-st-cancel", text: "Cancel", attrs: { type: "button" }, on: { click: () => send(model, "cancel") } });
  const scores = seriesChart({ title: "scores (all edits so far)", scale: "unit", ariaLabel: "retention, efficacy, paraphrase and neighbourhood scores" });
  const kl = seriesChart({ title: "KL on unrelated prompts (nats, log)", scale: "log" });
  const norm = seriesChart({ title: "‖W‖ now / as loaded (log)", scale: "log" });
  const summary = h("div", { class: "fw-st-summary" });
  const last = h("div", { class: "fw-muted fw-st-last" });
  const root = h("div", { class: "fw-stability" }, [
    h("div", { class: "fw-panel" }, [
      h("div", { class: "fw-panel-head" }, [h("span", { class: "fw-title", text: "Edit stability: facts edited one step after another" })]),
      h("div", { class: "fw-st-controls" }, [methods.el, h("span", { class: "fw-muted", text: "steps" }), steps,
        h("span", { class: "fw-muted", text: "facts per step" }), batch, start, cancel]),
      h("div", { class: "fw-st-charts" }, [scores.el, kl.el, norm.el]),
      summary, last,
    ]),
  ]);
  el.appendChild(root);
  start.addEventListener("click", () => send(model, "start", { method, steps: Number(steps.value), batch: Number(batch.value) }));

  function drawControls() {
    method = String(model.get("method") ?? method);
    methods.set(method);
    steps.value = String(model.get("steps") ?? 20);
    batch.value = String(model.get("batch") ?? 1);
  }

  function drawStatus() {
    const status = String(model.get("status") ?? "idle");
    root.dataset.status = status;
    start.disabled = status === "running";
    cancel.style.display = status === "running" ? "" : "none";
    drawRows();
  }

  function drawRows() {
    const rows: Row[] = model.get("rows") ?? [];
    const limits = model.get("collapse") ?? {};
    const xs = rows.map((r) => r.edits);
    const planned = Number(model.get("steps") ?? 1) * Number(model.get("batch") ?? 1);
    const collapsed = rows.find((r) => r.collapsed);
    const at = collapsed ? collapsed.edits : null;
    scores.update(xs, [
      { name: "retention", colour: "#1f77b4", values: rows.map((r) => r.retention) },
      { name: "efficacy", colour: "#2ca02c", values: rows.map((r) => r.efficacy), dashed: true },
      { name: "paraphrase", colour: "#9467bd", values: rows.map((r) => r.paraphrase) },
      { name: "neighbours", colour: "#ff7f0e", values: rows.map((r) => r.neighbourhood) },
    ], planned, typeof limits.retention === "number" ? limits.retention : null, at);
    kl.update(xs, [
      { name: "mean", colour: "#d62728", values: rows.map((r) => r.kl) },
      { name: "max", colour: "#d62728", values: rows.map((r) => r.kl_max), dashed: true },
    ], planned, typeof limits.kl === "number" ? limits.kl : null, at);
    norm.update(xs, [{ name: "largest ratio", colour: "#8c564b", values: rows.map((r) => r.norm_ratio) }], planned,
      typeof limits.norm_ratio === "number" ? limits.norm_ratio : null, at);
    const r = rows[rows.length - 1];
    const status = String(model.get("status") ?? "idle");
    const after = model.get("keep_edits") ? "the run's edits stay in the model's edit log" : "the run's edits were taken out";
    const ended = status === "cancelled" || status === "done" ? ` · ${status}: ${after}` : "";
    summary.replaceChildren(...(r ? [
      `${r.edits} edits · retention ${pct(r.retention)} · efficacy ${pct(r.efficacy)} · paraphrases ${pct(r.paraphrase)} · neighbours ${pct(r.neighbourhood)} · KL ${formatNumber(r.kl ?? NaN)} · norm ×${formatNumber(r.norm_ratio ?? NaN)}${ended}`,
      ...(collapsed ? [h("span", { class: "fw-st-collapse", text: ` · collapsed at ${collapsed.edits} edits: ${collapsed.collapse_reason}` })] : []),
    ] : [status === "running" ? "Editing the first step…" : "No run yet: press Start."]));
    setText(last, r ? `last edited: ${r.facts.join("; ")}${r.skipped ? ` (${r.skipped} skipped: the model already said so)` : ""}` : "");
  }

  const events: [string, () => void][] = [["change:method", drawControls], ["change:steps", () => { drawControls(); drawRows(); }],
    ["change:batch", drawControls], ["change:status", drawStatus], ["change:rows", drawRows], ["change:collapse", drawRows]];
  for (const [e, fn] of events) model.on(e, fn);
  drawControls();
  drawStatus();
  return () => {
    for (const [e, fn] of events) model.off(e, fn);
  };
}
