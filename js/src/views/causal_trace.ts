// Causal trace: ROME's three heatmaps (hidden state, MLP, attention), tokens down and layers across,
// filled in as the kernel finishes rows. Hover reads the arrays in the browser; clicking an MLP cell asks
// the kernel for that layer's neurons at that token, ranked by contribution to the target, and offers
// "Edit here…": a ROME editor at that layer, drawn below the trace (or in the explorer's panel).
import { Heatmap, layerLabels, legend, neuronRows, neuronTable } from "../components";
import { childWidgets, decodeFloat, formatNumber, h, onThemeChange, Packed, readTheme, RenderProps, send, sequential, setText, showToken } from "../core";

const TITLES: Record<string, string> = {
  hidden: "Hidden state (one layer restored)",
  mlp: "MLP output (window of layers)",
  attn: "Attention output (window of layers)",
};

interface Grid {
  tokens: string[];
  subject: [number, number];
  kinds: string[];
  n_layers: number;
  window: number;
  target: string;
  p_clean: number | null;
  p_corrupted: number | null;
  samples: number;
  corrupted_prompt: string | null;
  status: string;
  finished: number;
  scores: Record<string, Packed>;
  spread: Record<string, Packed>;
}

export function render({ model, el }: RenderProps) {
  const title = h("span", { class: "fw-title" });
  const probs = h("span", { class: "fw-muted fw-trace-probs" });
  const status = h("span", { class: "fw-muted fw-trace-status" });
  const cancel = h("button", { class: "fw-button", text: "Cancel", attrs: { type: "button" }, on: { click: () => send(model, "cancel") } });
  const key = legend();
  const maps = h("div", { class: "fw-trace-maps", style: { display: "flex", flexWrap: "wrap", gap: "12px" } });
  const neuronTitle = h("span", { class: "fw-title" });
  const table = neuronTable((layer, neuron) => send(model, "select_neuron", { layer, neuron }));
  const editHere = h("button", { class: "fw-button fw-trace-edit", text: "Edit here…", attrs: { type: "button" },
    title: "Open a ROME editor for this fact at this layer, with this MLP row as its layer hint",
    on: { click: () => send(model, "open_editor", { layer: Number(model.get("neurons")?.layer) }) } });
  const neuronPanel = h("div", { class: "fw-panel fw-trace-neurons", style: { display: "none" } }, [
    h("div", { class: "fw-panel-head" }, [neuronTitle, editHere]), table.el,
  ]);
  const editorBox = h("div", { class: "fw-trace-editor" });
  const editor = childWidgets(model, editorBox);
  el.append(
    h("div", { class: "fw-panel" }, [
      h("div", { class: "fw-panel-head" }, [title, h("span", {}, [status, " ", cancel])]),
      h("div", { class: "fw-toolbar" }, [probs, key.el]),
      maps,
    ]),
    neuronPanel,
    editorBox,
  );

  const heatmaps = new Map<string, { box: HTMLElement; map: Heatmap; head: HTMLElement }>();
  let grid: Grid | null = null;
  let values: Record<string, Float32Array> = {};
  let spreads: Record<string, Float32Array> = {};

  const label = (i: number) => {
    const g = grid!;
    const mark = i >= g.subject[0] && i < g.subject[1] ? "*" : "";
    return `${showToken(g.tokens[i])}${mark}`;
  };

  const windowText = (kind: string, layer: number) => {
    if (kind === "hidden" || !grid) return "";
    const w = grid.window;
    const lo = Math.max(0, layer - Math.floor(w / 2));
    const hi = Math.min(grid.n_layers, layer - Math.floor(-w / 2)) - 1;
    return lo === hi ? `layer ${lo} restored` : `layers ${lo}–${hi} restored`;
  };

  const tooltip = (kind: string) => (row: number, col: number) => {
    const g = grid!;
    const i = row * g.n_layers + col;
    const v = values[kind]?.[i];
    const lines = [`${kind} · layer ${col} · token ${row} ${label(row)}`];
    if (v === undefined || Number.isNaN(v)) return [...lines, "not computed yet"];
    lines.push(`p(${showToken(g.target)}) = ${formatNumber(v)} ± ${formatNumber(spreads[kind][i])}`);
    if (g.p_corrupted !== null) lines.push(`indirect effect = ${formatNumber(v - g.p_corrupted)}`);
    const w = windowText(kind, col);
    if (w) lines.push(w);
    if (kind === "mlp") lines.push("click: this layer's neurons at this token");
    return lines;
  };

  const ensureMaps = (g: Grid) => {
    for (const kind of g.kinds) {
      if (heatmaps.has(kind)) continue;
      const map = new Heatmap({
        cellHeight: 16,
        minCellWidth: 8, // 30+ layers fit side by side; wider models scroll
        maxCellWidth: 22,
        ariaLabel: `${kind} causal trace`,
        tooltip: tooltip(kind),
        onClick: (row, col) => {
          for (const [other, m] of heatmaps) if (other !== kind) m.map.select(null);
          send(model, "select_cell", { kind, layer: col, token: row });
        },
      });
      const head = h("div", { class: "fw-muted", text: TITLES[kind] ?? kind });
      const box = h("div", { class: "fw-trace-map", attrs: { "data-kind": kind }, style: { flex: "1 1 360px", minWidth: "0" } }, [head, map.el]);
      heatmaps.set(kind, { box, map, head });
      maps.append(box);
    }
  };

  const draw = () => {
    const g = model.get("grid") as Grid;
    if (!g || !g.tokens) return;
    grid = g;
    ensureMaps(g);
    values = {};
    spreads = {};
    let lo = Infinity;
    let hi = -Infinity;
    for (const kind of g.kinds) {
      values[kind] = decodeFloat(g.scores[kind]).data;
      spreads[kind] = decodeFloat(g.spread[kind]).data;
      for (const v of values[kind]) {
        if (Number.isNaN(v)) continue;
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
    for (const p of [g.p_clean, g.p_corrupted]) {
      if (p === null) continue;
      lo = Math.min(lo, p);
      hi = Math.max(hi, p);
    }
    if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
    const scale = sequential(readTheme(el), lo, hi > lo ? hi : lo + 1e-6);
    key.update(scale, `p(${showToken(g.target)})`);
    const rowLabels = g.tokens.map((_, i) => label(i));
    const colLabels = layerLabels(g.n_layers);
    for (const kind of g.kinds) {
      heatmaps.get(kind)!.map.setData({
        rows: g.tokens.length, cols: g.n_layers, values: values[kind], rowLabels, colLabels, scale,
        colTitle: "layer",
      });
    }
    const how = g.corrupted_prompt ? `patching from “${g.corrupted_prompt}”` : `${g.samples} noise samples on the subject (*)`;
    setText(title, `Causal trace of p(${showToken(g.target)})`);
    const pc = g.p_clean === null ? "…" : formatNumber(g.p_clean);
    const pk = g.p_corrupted === null ? "…" : formatNumber(g.p_corrupted);
    setText(probs, `clean p = ${pc} · corrupted p = ${pk} · ${how}`);
    const running = g.status === "running" || g.status === "waiting";
    setText(status, running ? `computing… ${g.finished} rows done` : g.status === "done" ? "done" : g.status);
    el.dataset.status = g.status;
    el.dataset.finished = String(g.finished);
    cancel.style.display = running ? "" : "none";
  };

  const drawNeurons = () => {
    const r = model.get("neurons");
    if (!r || !r.neurons) {
      neuronPanel.style.display = "none";
      return;
    }
    neuronPanel.style.display = "";
    const rows = neuronRows(r);
    setText(neuronTitle, `Layer ${r.layer} neurons at token ${r.position} ${showToken(r.token)}, by contribution to ${showToken(r.target)}`);
    const sel = model.get("selected") ?? {};
    setText(editHere, `Edit layer ${r.layer} here…`);
    table.update(rows, r.target, sel.neuron !== undefined ? [sel.neuron_layer, sel.neuron] : null);
  };

  const drawEditor = () => void editor.draw((model.get("editor_slot") ?? []).map(String));
  model.on("change:editor_slot", drawEditor);
  model.on("change:grid", draw);
  model.on("change:neurons", drawNeurons);
  model.on("change:selected", drawNeurons);
  const stopTheme = onThemeChange(draw);
  draw();
  drawNeurons();
  drawEditor();
  return () => {
    editor.destroy();
    model.off("change:editor_slot", drawEditor);
    model.off("change:grid", draw);
    model.off("change:neurons", drawNeurons);
    model.off("change:selected", drawNeurons);
    stopTheme();
    for (const { map } of heatmaps.values()) map.destroy();
  };
}
