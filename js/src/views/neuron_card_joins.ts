// The neuron card's joined part: what else the kernel knows about the neuron — its knowledge-neuron score for
// the fact, its share of the MLP's indirect effect in a causal trace, what edits did to its value vector — and a
// slider that scales it, the prediction change following the drag (sendLatest: the newest value wins).
import { formatNumber, h, RenderProps, sendLatest, setText, showToken } from "../core";

export const JOINS_CSS = `
.fw-card-joins { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 6px 16px; margin-top: 6px; }
@media (max-width: 720px) { .fw-card-joins { grid-template-columns: minmax(0, 1fr); } }
.fw-narrow .fw-card-joins { grid-template-columns: minmax(0, 1fr); }
.fw-card-join { min-width: 0; overflow-wrap: anywhere; }
.fw-card-yes { color: var(--jp-success-color1, #2e7d32); font-weight: 600; }
.fw-card-slider-row { display: flex; gap: 8px; align-items: center; }
.fw-card-slider-row input[type=range] { flex: 1; min-width: 100px; }
.fw-card-pred { display: grid; grid-template-columns: auto auto; gap: 0 16px; font-size: 12px; margin-top: 2px; }
.fw-card-pred .fw-token { margin-right: 3px; }
`;

const pct = (p: number | null | undefined) => (p === null || p === undefined ? "–" : p >= 0.1 ? `${(100 * p).toFixed(1)}%` : `${(100 * p).toPrecision(2)}%`);
const tokens = (xs: string[]) => xs.map((t) => h("span", { class: "fw-token", text: showToken(t) }));

function knowledgeLines(k: any): (Node | string)[] {
  if (!k) return [h("span", { class: "fw-muted", text: "Not computed for this prompt: pass knowledge=fw.knowledge_neurons(lm, prompt, target)." })];
  return [
    `Attribution to `, h("span", { class: "fw-token", text: showToken(k.target) }), ` on its prompt: ${formatNumber(k.score)} `,
    `(rank ${Number(k.rank).toLocaleString()} of ${Number(k.of).toLocaleString()}; the top neuron has ${formatNumber(k.max)}). `,
    k.knowledge_neuron ? h("span", { class: "fw-card-yes", text: "A knowledge neuron of this fact." })
      : `Not kept as a knowledge neuron (${k.n_knowledge_neurons === 1 ? "1 neuron is" : `${k.n_knowledge_neurons} are`}; the bar is ${k.threshold} × the top score${k.prompts > 1 ? `, in enough of ${k.prompts} prompts` : ""}).`,
    h("div", { class: "fw-muted", text: k.source === "kernel" ? "From the kernel's latest knowledge-neuron run on this prompt." : "" }),
  ];
}

function traceLines(t: any, layer: number): (Node | string)[] {
  if (!t) return [h("span", { class: "fw-muted", text: "No causal trace of this prompt: pass trace=fw.causal_trace(lm, prompt, subject, kind=\"mlp\")." })];
  const share = t.share === null ? "–" : `${(100 * t.share).toFixed(1)}%`;
  const signed = (v: number) => `${v > 0 ? "+" : ""}${formatNumber(v)}`;
  const total = t.p_clean - t.p_corrupted;
  const small = Math.abs(t.mlp_effect) < 0.01 * Math.abs(total);
  return [
    `Restoring only this neuron at `, h("span", { class: "fw-token", text: showToken(t.token_text) }), ` (token ${t.token}) brings back `,
    h("b", { text: share }), ` of what restoring layer ${layer}'s whole MLP output does: p(`, h("span", { class: "fw-token", text: showToken(t.target) }),
    `) changes by ${signed(t.neuron_effect)} (neuron) vs ${signed(t.mlp_effect)} (MLP), from ${pct(t.p_corrupted)} corrupted; clean ${pct(t.p_clean)}.`,
    ...(small ? [h("div", { class: "fw-muted", text: `Here this MLP restores under 1% of the total effect (${formatNumber(total)}): the share is a ratio of small numbers.` })] : []),
    h("div", { class: "fw-muted", text: `${t.samples} corrupted runs of the ${t.source === "kernel" ? "kernel's latest" : "given"} trace.` }),
  ];
}

function editLines(e: any, layer: number): (Node | string)[] {
  if (!e || !e.touched) return [h("span", { class: "fw-muted", text: `No edit in lm.edits touched layer ${layer}.` })];
  const out: (Node | string)[] = e.entries.map((x: any) => h("div", { text: `#${x.index} ${x.method} at layer${x.layers.length > 1 ? "s" : ""} ${x.layers.join(", ")}: ${x.facts}` }));
  const v = e.value;
  if (v) {
    out.push(h("div", {}, [`Value vector moved by ${(100 * v.relative_change).toPrecision(2)}% (cosine ${formatNumber(v.cosine)}); `,
      `${v.kept} of its top ${v.k} tokens kept.`]));
    if (v.lost.length) out.push(h("div", {}, ["lost: ", ...tokens(v.lost)]));
    if (v.gained.length) out.push(h("div", {}, ["gained: ", ...tokens(v.gained)]));
  }
  return out;
}

export function cardJoins(model: RenderProps["model"]) {
  const knowledge = h("div", { class: "fw-card-join fw-card-knowledge" });
  const trace = h("div", { class: "fw-card-join fw-card-trace" });
  const edit = h("div", { class: "fw-card-join fw-card-edit" });
  const range = h("input", { attrs: { type: "range", step: "0.05", "aria-label": "scale this neuron" } }) as HTMLInputElement;
  const scaleText = h("span", { class: "fw-num fw-card-scale" });
  const readout = h("div", { class: "fw-card-readout" });
  const pred = h("div", { class: "fw-card-pred" });
  const slider = h("div", { class: "fw-card-join fw-card-slider" }, [
    h("div", { class: "fw-card-slider-row" }, [range, scaleText]), readout, pred,
  ]);
  const sub = (text: string, body: HTMLElement) => h("div", {}, [h("div", { class: "fw-card-sub", text }), body]);
  const sliderBox = sub("Scale it (every position)", slider);
  const el = h("div", { class: "fw-card-joins" }, [
    sub("Knowledge neurons (this fact)", knowledge), sub("Causal trace: share of the MLP's effect", trace),
    sub("Edits at this layer", edit), sliderBox,
  ]);
  let seq = 0;
  range.addEventListener("input", () => {
    setText(scaleText, `×${Number(range.value).toFixed(2)}`);
    sendLatest(model, "scale", { scale: Number(range.value), seq: ++seq });
  });

  function drawScaled() {
    const s = model.get("scaled") ?? {};
    if (s.after === undefined) {
      setText(readout, "Drag to scale the neuron's activation: 0 silences it, 2 doubles it.");
      pred.replaceChildren();
      return;
    }
    readout.replaceChildren(`×${formatNumber(s.scale)}: p(`, h("span", { class: "fw-token", text: showToken(s.target) }),
      `) ${pct(s.before.p)} → ${pct(s.after.p)}, rank ${s.before.rank} → ${s.after.rank}`);
    const column = (title: string, rows: [string, number][]) => h("div", {}, [h("div", { class: "fw-muted", text: title }),
      ...rows.map(([t, p]) => h("div", {}, [h("span", { class: "fw-token", text: showToken(t) }), pct(p)]))]);
    pred.replaceChildren(column("before", s.before.top), column("scaled", s.after.top));
  }

  return {
    el,
    drawScaled,
    draw(card: any) {
      knowledge.replaceChildren(...knowledgeLines(card.knowledge));
      trace.replaceChildren(...traceLines(card.trace, card.layer));
      edit.replaceChildren(...editLines(card.edit, card.layer));
      sliderBox.style.display = card.prompt ? "" : "none";
      const [lo, hi] = model.get("scale_range") ?? [-1, 3];
      range.min = String(lo);
      range.max = String(hi);
      const s = model.get("scaled") ?? {};
      range.value = String(s.scale ?? 1);
      setText(scaleText, `×${Number(range.value).toFixed(2)}`);
      drawScaled();
    },
  };
}
