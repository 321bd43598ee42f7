// The averaged causal trace (ROME's average plots): one heatmap per kind, ROME's six token groups down and layers
// across, the average indirect effect in each cell, filling in as the kernel (or a cluster's workers) finishes
// each fact. Hover reads the arrays in the browser. Skipped facts (the model does not predict their target) are
// listed as text. The root carries data-status, data-done and data-n-facts for tests.
import { Heatmap, layerLabels, legend } from "../components";
import { decodeFloat, diverging, formatNumber, h, maxAbs, onThemeChange, Packed, readTheme, RenderProps, send, setText } from "../core";

const TITLES: Record<string, string> = {
  hidden: "Hidden state (one layer restored)",
  mlp: "MLP output (window of layers)",
  attn: "Attention output (window of layers)",
};

interface Grid {
  groups: string[];
  kinds: string[];
  n_layers: number;
  total: number;
  done: number;
  skipped_count: number;
  samples: number;
  window: number;
  status: string;
  workers: number;
  n_facts: number;
  counts: number[];
  p_clean: number | null;
  p_corrupted: number | null;
  indirect: Record<string, Packed>;
  scores: Record<string, Packed>;
  peaks: Record<string, [number, string, number]>;
  skipped: [string, string][];
}

const facts = (n: number) => `${n} fact${n === 1 ? "" : "s"}`;

/** The header's status line: how far the job is and where it runs. */
export function statusLine(g: Grid): string {
  const where = g.workers ? ` on ${g.workers} workers` : "";
  const skipped = g.skipped_count ? ` (${g.skipped_count} not known)` : "";
  if (g.status === "running") return `tracing${where}… ${g.done} of ${facts(g.total)}${skipped}`;
  if (g.status === "done") return `done: ${facts(g.n_facts)} averaged${g.skipped_count ? `, ${g.skipped_count} skipped` : ""}`;
  if (g.status === "cancelled") return `cancelled after ${g.done} of ${facts(g.total)}${skipped}`;
  return g.status === "failed" ? "failed" : "";
}

export function render({ model, el }: RenderProps) {
  const title = h("span", { class: "fw-title" });
  const status = h("span", { class: "fw-muted fw-avg-status" });
  const cancel = h("button", { class: "fw-button", text: "Cancel", attrs: { type: "button" }, on: { click: () => send(model, "cancel") } });
  const again = h("button", { class: "fw-button", text: "Run again", attrs: { type: "button" }, on: { click: () => send(model, "start") } });
  const probs = h("span", { class: "fw-muted fw-avg-probs" });
  const key = legend();
  const maps = h("div", { class: "fw-avg-maps", style: { display: "flex", flexWrap: "wrap", gap: "12px" } });
  const peaks = h("div", { class: "fw-muted fw-avg-peaks" });
  const skippedList = h("ul", { class: "fw-avg-skipped-list" });
  const skippedHead = h("summary", {});
  const skipped = h("details", { class: "fw-avg-skipped", style: { display: "none" } }, [skippedHead, skippedList]);
  el.append(h("div", { class: "fw-panel" }, [
    h("div", { class: "fw-panel-head" }, [title, h("span", {}, [status, " ", cancel, again])]),
    h("div", { class: "fw-toolbar" }, [probs, key.el]),
    maps, peaks, skipped,
  ]));

  const heatmaps = new Map<string, Heatmap>();
  let grid: Grid | null = null;
  let effects: Record<string, Float32Array> = {};
  let scores: Record<string, Float32Array> = {};

  const tooltip = (kind: string) => (row: number, col: number) => {
    const g = grid!;
    const i = row * g.n_layers + col;
    const lines = [`${kind} · layer ${col} · ${g.groups[row]}`];
    const v = effects[kind]?.[i];
    if (v === undefined || Number.isNaN(v)) return [...lines, g.n_facts ? "no fact has tokens in this group" : "not traced yet"];
    lines.push(`average indirect effect = ${formatNumber(v)}`, `average p restored = ${formatNumber(scores[kind][i])}`,
      `over ${g.counts[row]} of ${g.n_facts} facts`);
    return lines;
  };

  const ensureMaps = (g: Grid) => {
    for (const kind of g.kinds) {
      if (heatmaps.has(kind)) continue;
      const map = new Heatmap({ cellHeight: 18, minCellWidth: 8, maxCellWidth: 22, ariaLabel: `${kind} averaged causal trace`, tooltip: tooltip(kind) });
      maps.append(h("div", { class: "fw-avg-map", attrs: { "data-kind": kind }, style: { flex: "1 1 360px", minWidth: "0" } }, [
        h("div", { class: "fw-muted", text: TITLES[kind] ?? kind }), map.el,
      ]));
      heatmaps.set(kind, map);
    }
  };

  const draw = () => {
    const g = model.get("grid") as Grid;
    if (!g || !g.groups) return;
    grid = g;
    ensureMaps(g);
    effects = {};
    scores = {};
    const empty = new Float32Array(g.groups.length * g.n_layers).fill(NaN);
    for (const kind of g.kinds) {
      effects[kind] = g.indirect[kind] ? decodeFloat(g.indirect[kind]).data : empty;
      scores[kind] = g.scores[kind] ? decodeFloat(g.scores[kind]).data : empty;
    }
    const limit = Math.max(1e-6, ...g.kinds.map((k) => maxAbs(effects[k])));
    const scale = diverging(readTheme(el), limit);
    key.update(scale, "average indirect effect");
    const colLabels = layerLabels(g.n_layers);
    for (const kind of g.kinds) {
      heatmaps.get(kind)!.setData({ rows: g.groups.length, cols: g.n_layers, values: effects[kind], rowLabels: g.groups,
        colLabels, scale, colTitle: "layer" });
    }
    setText(title, `Averaged causal trace over ${g.n_facts} of ${facts(g.total)}`);
    setText(status, statusLine(g));
    const known = g.p_clean !== null && g.p_corrupted !== null;
    setText(probs, (known ? `clean p = ${formatNumber(g.p_clean!)} · corrupted p = ${formatNumber(g.p_corrupted!)} · ` +
      `total effect = ${formatNumber(g.p_clean! - g.p_corrupted!)} · ` : "") + `${g.samples} noise samples per fact, window ${g.window}`);
    setText(peaks, g.kinds.filter((k) => g.peaks[k]).map((k) => {
      const [layer, group, v] = g.peaks[k];
      return `${k} peak: layer ${layer}, ${group} (${formatNumber(v)})`;
    }).join(" · "));
    skipped.style.display = g.skipped.length ? "" : "none";
    setText(skippedHead, `${facts(g.skipped_count)} skipped: the model does not predict the target`);
    skippedList.replaceChildren(...g.skipped.map(([prompt, reason]) => h("li", { text: `${prompt} (${reason})` })));
    const running = g.status === "running";
    cancel.style.display = running ? "" : "none";
    again.style.display = running || g.status === "idle" ? "none" : "";
    el.dataset.status = g.status;
    el.dataset.done = String(g.done);
    el.dataset.nFacts = String(g.n_facts);
  };

  model.on("change:grid", draw);
  const stopTheme = onThemeChange(draw);
  draw();
  return () => {
    model.off("change:grid", draw);
    stopTheme();
    for (const map of heatmaps.values()) map.destroy();
  };
}
