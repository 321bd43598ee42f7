// NeuronCard: one neuron as a key-value memory. Key side: corpus trigger prefixes (trigger token
// highlighted, the token that actually followed shown after an arrow) and the activation histogram (log
// count, this prompt's activations marked). Value side: promoted / suppressed tokens. Then whether the two
// agree, what else the kernel knows about it and a slider that scales it (neuron_card_joins.ts), and the neuron on
// the current prompt. All corpus and model text goes in through textContent.
import {
  clear, css, decodeFloat, decodeInt, diverging, formatNumber, h, injectStyle, onThemeChange, readTheme, RenderProps, send,
  setText, showToken,
} from "../core";
import { cardJoins, JOINS_CSS } from "./neuron_card_joins";

const CSS = `
.fw-card-grid { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 10px; }
@media (max-width: 720px) { .fw-card-grid { grid-template-columns: minmax(0, 1fr); } }
.fw-narrow .fw-card-grid { grid-template-columns: minmax(0, 1fr); }
.fw-card-triggers { list-style: none; margin: 0; padding: 0; max-height: 340px; overflow-y: auto; font-size: 12px; }
.fw-card-triggers li { display: flex; gap: 8px; padding: 2px 0; border-bottom: 1px solid var(--jp-border-color3, #eee); }
.fw-card-act { font-family: var(--jp-code-font-family, monospace); min-width: 52px; text-align: right; color: var(--jp-ui-font-color2, #777); }
.fw-card-text { flex: 1; min-width: 0; overflow-wrap: anywhere; }
.fw-card-before { color: var(--jp-ui-font-color1, #444); }
.fw-card-trigger { background: var(--fw-pos, #d8734f); color: #fff; border-radius: 2px; padding: 0 2px; white-space: pre; }
.fw-card-next { font-family: var(--jp-code-font-family, monospace); color: var(--jp-ui-font-color2, #777); white-space: pre; }
.fw-card-next.fw-agrees { color: var(--jp-success-color1, #2e7d32); font-weight: 600; }
.fw-card-hist { display: block; width: 100%; height: 120px; }
.fw-card-values { display: grid; grid-template-columns: auto minmax(60px, 1fr) auto; gap: 1px 8px; align-items: center; font-size: 12px; }
.fw-card-values .fw-token { justify-self: start; max-width: 100%; overflow: hidden; text-overflow: ellipsis; }
.fw-card-sub { font-weight: 600; margin: 6px 0 2px; }
.fw-card-prompt { display: flex; flex-wrap: wrap; gap: 2px; font-family: var(--jp-code-font-family, monospace); font-size: 12px; }
.fw-card-tok { padding: 1px 3px; border-radius: 2px; white-space: pre; text-align: center; }
.fw-card-tok small { display: block; font-size: 10px; opacity: 0.8; }
.fw-card-nav input { width: 64px; font: inherit; }
`;

export function render({ model, el }: RenderProps) {
  injectStyle("ffn-widgets-card-style", CSS);
  injectStyle("ffn-widgets-card-joins-style", JOINS_CSS);
  const joins = cardJoins(model);
  const title = h("span", { class: "fw-title" });
  const info = h("span", { class: "fw-muted fw-card-info" });
  const layerBox = h("input", { attrs: { type: "number", min: "0", "aria-label": "layer" } });
  const neuronBox = h("input", { attrs: { type: "number", min: "0", "aria-label": "neuron" } });
  const go = h("button", { class: "fw-button", text: "Show", attrs: { type: "button" } });
  const nav = h("span", { class: "fw-card-nav" }, ["L ", layerBox, " N ", neuronBox, " ", go]);
  const triggers = h("ol", { class: "fw-card-triggers" });
  const canvas = h("canvas", { class: "fw-card-hist", attrs: { role: "img", "aria-label": "activation histogram" } });
  const histNote = h("div", { class: "fw-muted" });
  const promoted = h("div", { class: "fw-card-values fw-card-promoted" });
  const suppressed = h("div", { class: "fw-card-values fw-card-suppressed" });
  const agreement = h("div", { class: "fw-card-agreement" });
  const promptHead = h("div", { class: "fw-card-sub" });
  const promptRow = h("div", { class: "fw-card-prompt" });
  const promptBox = h("div", { class: "fw-card-prompt-box" }, [promptHead, promptRow]);
  const keySide = h("div", { class: "fw-card-key" }, [
    h("div", { class: "fw-card-sub", text: "Key: top trigger prefixes in the corpus" }), triggers,
    h("div", { class: "fw-card-sub", text: "Activations over the corpus (log count)" }), canvas, histNote,
  ]);
  const valueSide = h("div", { class: "fw-card-value" }, [
    h("div", { class: "fw-card-sub", text: "Value: promotes" }), promoted,
    h("div", { class: "fw-card-sub", text: "Value: suppresses" }), suppressed,
    h("div", { class: "fw-card-sub", text: "Agreement" }), agreement,
  ]);
  el.append(h("div", { class: "fw-panel fw-neuron-card" }, [
    h("div", { class: "fw-panel-head" }, [title, nav]), info,
    h("div", { class: "fw-card-grid" }, [keySide, valueSide]), joins.el, promptBox,
  ]));

  const request = () => {
    const layer = Number(layerBox.value);
    const neuron = Number(neuronBox.value);
    if (Number.isInteger(layer) && Number.isInteger(neuron)) send(model, "set_neuron", { layer, neuron });
  };
  go.addEventListener("click", request);
  const onKey = (e: KeyboardEvent) => { if (e.key === "Enter") request(); };
  layerBox.addEventListener("keydown", onKey);
  neuronBox.addEventListener("keydown", onKey);

  function valueRows(box: HTMLElement, rows: [string, number][], sign: string) {
    const max = Math.max(1e-9, ...rows.map(([, v]) => Math.abs(v)));
    box.replaceChildren(...rows.flatMap(([tok, v]) => [
      h("span", { class: "fw-token", text: showToken(tok) }),
      h("span", { class: "fw-bar", style: { width: `${Math.round((100 * Math.abs(v)) / max)}%`, background: `var(${sign})` } }),
      h("span", { class: "fw-num", text: formatNumber(v) }),
    ]));
  }

  function drawHistogram(card: any) {
    const ctx = canvas.getContext("2d");
    const hist = card.histogram;
    if (!ctx) return;
    const theme = readTheme(el);
    const w = (canvas.width = Math.max(200, canvas.clientWidth || 360));
    const hgt = (canvas.height = 120);
    ctx.clearRect(0, 0, w, hgt);
    if (!hist) return;
    const counts = decodeInt(hist.counts).data;
    const n = counts.length;
    const logMax = Math.log10(1 + Math.max(1, ...Array.from(counts)));
    const bw = w / n;
    const base = hgt - 14;
    ctx.fillStyle = theme.accent;
    for (let i = 0; i < n; i++) {
      if (!counts[i]) continue;
      const bh = (base - 4) * (Math.log10(1 + counts[i]) / logMax);
      ctx.fillRect(i * bw, base - bh, Math.max(1, bw - 0.5), bh);
    }
    ctx.fillStyle = theme.muted;
    ctx.font = `10px ${theme.font}`;
    const labels: string[] = hist.labels;
    for (const i of [0, Math.floor(n / 4), Math.floor(n / 2), Math.floor((3 * n) / 4), n - 1]) {
      ctx.fillText(labels[i], Math.min(w - 30, i * bw), hgt - 2);
    }
    ctx.fillStyle = theme.errorColor;
    const bins: number[] = hist.prompt_bins ?? [];
    bins.forEach((b, j) => {
      ctx.globalAlpha = j === bins.length - 1 ? 1 : 0.35; // the last token strongest
      ctx.fillRect(b * bw + bw / 2 - 1, 0, 2, base);
    });
    ctx.globalAlpha = 1;
  }

  function drawPrompt(card: any, theme = readTheme(el)) {
    clear(promptRow);
    const p = card.prompt;
    promptBox.style.display = p ? "" : "none";
    if (!p) return;
    const acts = decodeFloat(p.acts).data;
    const contrib = decodeFloat(p.contrib).data;
    setText(promptHead, `On this prompt: activation per token (colour) and contribution to ${showToken(p.target)} (below)`);
    const scale = diverging(theme, Math.max(1e-6, ...Array.from(acts, Math.abs)));
    p.tokens.forEach((tok: string, i: number) => {
      const bg = scale.color(acts[i]);
      const cell = h("span", { class: "fw-card-tok", title: `activation ${formatNumber(acts[i])} · contribution ${formatNumber(contrib[i])}`,
        style: { background: css(bg) } }, [showToken(tok), h("small", { text: formatNumber(contrib[i]) })]);
      promptRow.appendChild(cell);
    });
  }

  const draw = () => {
    const card = model.get("card");
    if (!card || card.layer === undefined) return;
    setText(title, `Neuron L${card.layer}.N${card.neuron}`);
    if (document.activeElement !== layerBox) layerBox.value = String(card.layer);
    if (document.activeElement !== neuronBox) neuronBox.value = String(card.neuron);
    const ix = card.index;
    setText(info, ix ? `Triggers from ${ix.corpus}: ${Number(ix.tokens).toLocaleString()} tokens mined in ${ix.dtype}${ix.complete ? "" : " (partial index)"}`
      : "No trigger index: pass index=fw.mine_triggers(lm, corpus) to see the key side.");
    triggers.replaceChildren(...card.triggers.map((t: any) => h("li", { title: t.sentence }, [
      h("span", { class: "fw-card-act", text: formatNumber(t.activation) }),
      h("span", { class: "fw-card-text" }, [
        h("span", { class: "fw-card-before", text: t.before }),
        h("span", { class: "fw-card-trigger", text: showToken(t.token) }),
        " ",
        h("span", { class: `fw-card-next${t.agrees ? " fw-agrees" : ""}`, text: t.next === null ? "→ (end)" : `→ ${showToken(t.next)}` }),
      ]),
    ])));
    setText(histNote, card.histogram ? "red: this prompt's tokens (last token strongest)" : "");
    drawHistogram(card);
    valueRows(promoted, card.value.top, "--fw-pos");
    valueRows(suppressed, card.value.bottom, "--fw-neg");
    setText(agreement, card.agreement);
    drawPrompt(card);
    joins.draw(card);
  };
  model.on("change:card", draw);
  model.on("change:scaled", joins.drawScaled);
  const stopTheme = onThemeChange(draw);
  draw();
  return () => {
    model.off("change:card", draw);
    model.off("change:scaled", joins.drawScaled);
    stopTheme();
  };
}
