// The prompt views: prompt box, target selector, activation heatmap + neuron list, logit lens.
// The explorer shows all of them; ActivationHeatmap and LogitLens show their part. Hover and click read
// the arrays already in the browser; only editing the prompt/target or picking a neuron talks to the kernel.
// A new prompt arrives in parts (the heatmap first, then the tables, the lens, the value tokens): each part
// is drawn when it comes, and a part still coming shows a light "computing" note where it will appear.
import { Heatmap, layerLabels, legend, neuronTable, NeuronRow, promptBar, segmented } from "../components";
import {
  decodeFloat, diverging, formatNumber, h, injectStyle, maxAbs, Model, onThemeChange, readTheme, robustMax, Scale, send,
  sendLatest, sequential, setText, showToken,
} from "../core";
import { decodeData, Decoded, decodeValues, sameTokens, ValueTops, valuesComplete, Vocab } from "./prompt_data";

export interface Parts {
  heatmap: boolean;
  lens: boolean;
}

const STAT_LABEL: Record<string, string> = { max_act: "max |activation|", contrib: "MLP → target logit", neuron: "selected neuron" };

const WAITING_CSS = `
.fw-waiting { display: inline-flex; align-items: center; gap: 6px; font-size: 11px; color: var(--jp-ui-font-color2, #777); }
.fw-panel[data-pending="true"] .fw-heatmap-canvas { opacity: 0.6; }
`;

/** A light "still coming" note, a few still words hidden until shown: the frame's bar shows the motion (one
 *  moving bar, not one per panel, each asking the browser for frames while the kernel computes). */
function waiting(text: string): HTMLElement {
  return h("span", { class: "fw-waiting", attrs: { role: "status" }, style: { display: "none" } }, [text]);
}

export function renderPrompt(model: Model, el: HTMLElement, parts: Parts): () => void {
  injectStyle("ffn-widgets-prompt-style", WAITING_CSS);
  const vocab = new Vocab();
  let d: Decoded | null = null;
  let valueTops: ValueTops = { rows: new Map(), top: null, k: 0 };
  const tok = (id: number) => vocab.token(id);

  // ---- prompt and target ------------------------------------------------------------------
  const bar = promptBar({
    current: () => model.get("prompt"),
    onPrompt: (prompt) => sendLatest(model, "set_prompt", { prompt }),
    onTarget: (target) => send(model, "set_target", { target }),
  });
  el.append(bar.header, bar.targetBar);

  // ---- activation heatmap and neuron list ---------------------------------------------------------------
  const statSeg = segmented([["max_act", STAT_LABEL.max_act], ["contrib", STAT_LABEL.contrib], ["neuron", STAT_LABEL.neuron]], (v) => {
    model.set("stat", v);
    model.save_changes();
  });
  const actLegend = legend();
  const actMap = new Heatmap({
    flipRows: true,
    cellHeight: 12,
    minCellWidth: 40, // and no widest: the map fills the panel
    keepLastColumn: true,
    ariaLabel: "activation heatmap",
    tooltip: (r, c) => actTooltip(r, c),
    onClick: (r, c) => pickCell(r, c),
  });
  const rankSeg = segmented([["contribution", "by contribution"], ["activation", "by |activation|"]], (v) => {
    model.set("rank_by", v);
    model.save_changes();
  });
  const cellTitle = h("span", { class: "fw-title" });
  const table = neuronTable((layer, neuron) => send(model, "select_neuron", { layer, neuron }));
  const tableWait = waiting("ranking the neurons of every cell…");
  const neuronPanel = h("div", { class: "fw-panel fw-neurons-panel" }, [
    h("div", { class: "fw-panel-head" }, [cellTitle, rankSeg.el]),
    tableWait,
    table.el,
  ]);
  const heatPanel = h("div", { class: "fw-panel fw-activation-panel" }, [
    h("div", { class: "fw-panel-head" }, [h("span", { class: "fw-title", text: "MLP activations" }), statSeg.el]),
    h("div", { class: "fw-toolbar" }, [actLegend.el]),
    actMap.el,
  ]);
  if (parts.heatmap) el.append(heatPanel, neuronPanel);

  // ---- logit lens ---------------------------------------------------------------------------
  const stageSeg = segmented([["post", "after block"], ["mid", "before MLP"]], (v) => {
    model.set("lens_stage", v);
    model.save_changes();
  });
  const valueSeg = segmented([["prob", "probability"], ["rank", "rank"]], (v) => {
    model.set("lens_value", v);
    model.save_changes();
  });
  const lensLegend = legend();
  const lensWait = waiting("computing the logit lens…");
  const lensMap = new Heatmap({
    flipRows: true,
    cellHeight: 17,
    minCellWidth: 40, // and no widest: the map fills the panel
    keepLastColumn: true,
    ariaLabel: "logit lens",
    tooltip: (r, c) => lensTooltip(r, c),
    onClick: (r, c) => pickCell(r, c),
  });
  const lensPanel = h("div", { class: "fw-panel fw-lens-panel" }, [
    h("div", { class: "fw-panel-head" }, [h("span", { class: "fw-title", text: "Logit lens" }), h("span", {}, [stageSeg.el, " ", valueSeg.el])]),
    h("div", { class: "fw-toolbar" }, [lensLegend.el, h("span", { class: "fw-muted", text: "cell text: the top token" }), lensWait]),
    lensMap.el,
  ]);
  if (parts.lens) el.append(lensPanel);

  // ---- drawing -------------------------------------------------------------------------------
  function neuronGrid(): Float32Array | null {
    const n = model.get("neuron");
    if (!d || !n || n.acts === undefined) return null;
    const acts = decodeFloat(n.acts).data;
    const g = new Float32Array(d.L * d.T).fill(NaN);
    if (acts.length === d.T) g.set(acts, n.layer * d.T);
    return g;
  }

  function drawActivations() {
    if (!d || !parts.heatmap || !d.maxAct || !d.contrib) return;
    const theme = readTheme(el);
    const neuron = model.get("neuron");
    let stat = String(model.get("stat"));
    if (stat === "neuron" && !neuron?.acts) stat = "max_act";
    statSeg.set(stat, neuron?.acts ? [] : ["neuron"]);
    statSeg.label("contrib", `MLP → ${showToken(d.target.text)}`);
    statSeg.label("neuron", neuron?.acts ? `L${neuron.layer}.N${neuron.neuron}` : STAT_LABEL.neuron);
    let values: Float32Array;
    let scale: Scale;
    let title: string;
    if (stat === "contrib") {
      values = d.contrib;
      scale = diverging(theme, robustMax(values));
      title = `MLP output → logit of ${showToken(d.target.text)}`;
    } else if (stat === "neuron") {
      values = neuronGrid()!;
      scale = diverging(theme, maxAbs(values));
      title = `activation of L${neuron.layer}.N${neuron.neuron}`;
    } else {
      values = d.maxAct;
      scale = sequential(theme, 0, robustMax(values));
      title = "largest |activation| in the layer";
    }
    const clipped = maxAbs(values) > scale.max * 1.0001;
    actLegend.update(scale, title, (v) => (clipped && v === scale.max ? `≥ ${formatNumber(v)}` : formatNumber(v)));
    actMap.setData({
      rows: d.L, cols: d.T, values, scale, rowLabels: layerLabels(d.L), colLabels: d.tokens,
      rowTitle: "layer", colTitle: "token",
    });
    actMap.el.dataset.stat = stat;
  }

  /** A part missing from `d` that the kernel is computing (not one that failed: its error is shown). */
  function coming(part: "top" | "lens"): boolean {
    if (!d) return false;
    const missing = part === "top" ? !d.top : !d.lens?.[lensStage()];
    return missing && (d.pending.includes(part) || !model.get("error"));
  }

  function lensStage(): "post" | "mid" {
    return String(model.get("lens_stage")) === "mid" ? "mid" : "post";
  }

  function drawLens() {
    if (!d || !parts.lens) return;
    const theme = readTheme(el);
    const stage = lensStage();
    const byRank = String(model.get("lens_value")) === "rank";
    stageSeg.set(stage);
    valueSeg.set(byRank ? "rank" : "prob");
    const g = d.lens?.[stage];
    lensWait.style.display = coming("lens") ? "" : "none";
    lensPanel.dataset.pending = String(!g);
    // the colour scale: log-scaled rank, inverted so that "rank 0" is the strongest colour like probability 1
    const maxLog = Math.log10(65536);
    const scale = sequential(theme, 0, byRank ? maxLog : 1);
    if (byRank) lensLegend.update(scale, `rank of ${showToken(d.target.text)}`, (v) => (v >= maxLog ? "0" : `${Math.round(10 ** (maxLog - v) - 1)}`));
    else lensLegend.update(scale, `p(${showToken(d.target.text)})`);
    const values = !g ? new Float32Array(d.L * d.T).fill(NaN) // the new prompt's empty grid until the stage arrives
      : byRank ? Float32Array.from(g.rank, (r) => maxLog - Math.log10(r + 1)) : g.prob;
    lensMap.setData({
      rows: d.L, cols: d.T, values, scale, rowLabels: layerLabels(d.L), colLabels: d.tokens,
      cellText: g ? (r, c) => tok(g.top[r * d!.T + c]) : undefined, rowTitle: "layer", colTitle: "token",
    });
  }

  function rowsFor(layer: number, token: number): NeuronRow[] {
    if (!d?.top) return [];
    const by = String(model.get("rank_by")) === "activation" ? "activation" : "contribution";
    const t = d.top[by];
    const dm = Number(model.get("data").d_mlp);
    const rows: NeuronRow[] = [];
    const base = (layer * d.T + token) * d.k;
    for (let i = 0; i < d.k; i++) {
      const neuron = t.ids[base + i];
      const vr = valueTops.rows.get(layer * dm + neuron);
      rows.push({
        layer, neuron, act: t.act[base + i], contrib: t.contrib[base + i],
        valueTop: vr === undefined || !valueTops.top ? null : Array.from(valueTops.top.subarray(vr * valueTops.k, (vr + 1) * valueTops.k), tok),
      });
    }
    return rows;
  }

  function drawNeurons() {
    if (!d || !parts.heatmap) return;
    const cell = model.get("cell") ?? {};
    const by = String(model.get("rank_by")) === "activation" ? "activation" : "contribution";
    rankSeg.set(by);
    if (cell.layer === undefined || cell.token === undefined || cell.token >= d.T || cell.layer >= d.L) {
      setText(cellTitle, "Top neurons");
      tableWait.style.display = "none";
      table.update([], d.target.text, null);
      table.el.style.display = "none";
      neuronPanel.dataset.empty = "true";
      actMap.select(null);
      lensMap.select(null);
      if (!neuronPanel.querySelector(".fw-hint")) neuronPanel.append(h("div", { class: "fw-muted fw-hint", text: "Click a cell of the heatmap (or the lens) to list its top neurons." }));
      return;
    }
    neuronPanel.querySelector(".fw-hint")?.remove();
    tableWait.style.display = coming("top") ? "" : "none";
    table.el.style.display = d.top ? "" : "none";
    neuronPanel.dataset.empty = "false";
    setText(cellTitle, `Top neurons · layer ${cell.layer} · token ${cell.token} ${showToken(d.tokens[cell.token])}`);
    const n = model.get("neuron");
    table.update(rowsFor(cell.layer, cell.token), d.target.text, n?.acts ? [n.layer, n.neuron] : null);
    actMap.select([cell.layer, cell.token]);
    lensMap.select([cell.layer, cell.token]);
  }

  function drawHeader() {
    if (!d) return;
    bar.update(String(model.get("prompt")), d.target, d.predictions, !model.get("target"));
  }

  /** A new prompt (other tokens): a selected cell moves to the last token, where the prediction is read. */
  function followNewPrompt(before: string[] | undefined) {
    const cell = model.get("cell") ?? {};
    if (!d || !before || cell.layer === undefined || sameTokens(before, d.tokens)) return;
    if (cell.token !== d.T - 1) pickCell(Math.min(cell.layer, d.L - 1), d.T - 1);
  }

  function pickCell(layer: number, token: number) {
    model.set("cell", { layer, token });
    model.save_changes();
  }

  function actTooltip(r: number, c: number): string[] {
    if (!d) return [];
    const i = r * d.T + c;
    const lines = [`layer ${r} · token ${c} ${showToken(d.tokens[c])}`];
    const topAct = d.top?.activation;
    if (d.maxAct) lines.push(`max |activation| ${formatNumber(d.maxAct[i])}` + (topAct ? ` (N${topAct.ids[i * d.k]})` : ""));
    if (d.contrib) lines.push(`MLP → ${showToken(d.target.text)} logit ${formatNumber(d.contrib[i])}`);
    const n = model.get("neuron");
    if (String(model.get("stat")) === "neuron" && n?.acts) {
      const g = neuronGrid();
      lines.push(r === n.layer ? `L${n.layer}.N${n.neuron} activation ${formatNumber(g![i])}` : `(L${n.layer}.N${n.neuron} lives in layer ${n.layer})`);
    }
    lines.push("click: top neurons here");
    return lines;
  }

  function lensTooltip(r: number, c: number): string[] {
    if (!d) return [];
    const stage = lensStage();
    const g = d.lens?.[stage];
    const i = r * d.T + c;
    const head = `layer ${r} ${stage === "post" ? "after block" : "before MLP"} · token ${c} ${showToken(d.tokens[c])}`;
    if (!g) return [head, coming("lens") ? "computing the logit lens…" : "no lens for this prompt"];
    return [
      head,
      `top token ${showToken(tok(g.top[i]))}  p = ${formatNumber(g.topProb[i])}`,
      `p(${showToken(d.target.text)}) = ${formatNumber(g.prob[i])}  rank ${g.rank[i]}`,
    ];
  }

  /** What is on screen, for tests and the timing harness: the prompt drawn and the parts still missing. */
  function markState() {
    if (!d) return;
    const missing: string[] = [];
    if (parts.heatmap && !d.top) missing.push("top");
    if (parts.lens && !d.lens?.[lensStage()]) missing.push("lens");
    if (parts.heatmap && !valuesComplete(d, valueTops, Number(model.get("data")?.d_mlp ?? 1 << 20))) missing.push("values");
    el.dataset.prompt = d.prompt;
    el.dataset.missing = missing.join(" ");
  }

  // ---- wiring ------------------------------------------------------------------------------
  const onData = () => {
    const before = d?.tokens;
    d = decodeData(model.get("data"), vocab);
    followNewPrompt(before);
    drawHeader();
    drawActivations();
    drawNeurons();
    drawLens();
    markState();
  };
  const readValues = () => {
    valueTops = decodeValues(model.get("values"), vocab, () => Number(model.get("data")?.d_mlp ?? 1 << 20));
  };
  const onValues = () => {
    readValues();
    drawNeurons();
    markState();
  };
  const onStat = () => drawActivations();
  const onNeuron = () => {
    drawActivations();
    drawNeurons();
  };
  const onLens = () => {
    drawLens();
    markState();
  };
  const onError = () => {
    drawNeurons();
    drawLens();
  };
  const onPrompt = () => drawHeader();
  const subs: [string, () => void][] = [
    ["change:data", onData], ["change:values", onValues], ["change:stat", onStat], ["change:neuron", onNeuron],
    ["change:cell", drawNeurons], ["change:rank_by", drawNeurons], ["change:lens_stage", onLens],
    ["change:lens_value", onLens], ["change:prompt", onPrompt], ["change:target", onPrompt], ["change:error", onError],
  ];
  for (const [ev, fn] of subs) model.on(ev, fn);
  readValues();
  onData();
  const stopTheme = onThemeChange(() => {
    drawActivations();
    drawLens();
  });
  return () => {
    for (const [ev, fn] of subs) model.off(ev, fn);
    stopTheme();
    actMap.destroy();
    lensMap.destroy();
    bar.destroy();
  };
}
