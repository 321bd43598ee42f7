// Localize: where does a fact live? One compact row per measure (causal trace, knowledge neurons, logit lens,
// value vectors), then ROME's edit success at each edited layer in rows of their own, every row on the same
// layer columns, filling in as the kernel measures. A click on a layer lists its top neurons (at the last token
// and the last subject token); each has a button that opens its neuron card in the slot under the view (a
// child widget, core/children.ts). The fact is shown as text. The root carries data-status for tests.
import { childWidgets, decodeFloat, formatNumber, h, injectStyle, Packed, RenderProps, send, setText, showToken } from "../core";
import { neuronRows, PackedNeurons } from "../components";

const CSS = `
.fw-loc-fact { display: flex; flex-wrap: wrap; gap: 4px 10px; align-items: baseline; margin-bottom: 6px; }
.fw-loc-prompt { font-family: var(--jp-code-font-family, monospace); overflow-wrap: anywhere; }
.fw-loc-grid { display: grid; gap: 1px 1px; align-items: stretch; font-size: 12px; overflow-x: auto; }
.fw-loc-label { padding-right: 8px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; align-self: center; }
.fw-loc-peak { padding-left: 6px; white-space: nowrap; color: var(--jp-ui-font-color2, #777); align-self: center;
  font-variant-numeric: tabular-nums; }
.fw-loc-head { text-align: center; font-size: 10px; color: var(--jp-ui-font-color2, #777); cursor: pointer; min-width: 0; }
.fw-loc-cell { position: relative; height: 22px; cursor: pointer; background: var(--jp-layout-color2, #f2f2f2); min-width: 6px; }
.fw-loc-cell:hover { outline: 1px solid var(--jp-border-color1, #bbb); }
.fw-loc-cell.fw-loc-na { background: transparent; outline: 1px dashed var(--jp-border-color2, #ddd); outline-offset: -2px; }
.fw-loc-fill { position: absolute; left: 1px; right: 1px; background: var(--fw-neg, #5b8fca); }
.fw-loc-fill.fw-loc-neg { background: var(--jp-ui-font-color3, #aaa); }
.fw-loc-edit .fw-loc-fill { background: var(--fw-pos, #d8734f); }
.fw-loc-on { box-shadow: inset 0 0 0 2px var(--jp-brand-color1, #1976d2); }
.fw-loc-section { grid-column: 1 / -1; font-weight: 600; margin-top: 6px; color: var(--jp-ui-font-color1, #444); }
.fw-loc-sites { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(420px, 100%), 1fr)); gap: 8px 24px; }
.fw-loc-site { min-width: 0; overflow-x: auto; }
.fw-loc-site .fw-table { width: 100%; }
.fw-loc-site .fw-table td { white-space: nowrap; }
.fw-loc-site .fw-loc-promotes { white-space: normal; display: flex; flex-wrap: wrap; gap: 3px; min-width: 140px; }
.fw-narrow .fw-loc-site .fw-table td { white-space: normal; }
.fw-narrow .fw-loc-site .fw-loc-promotes { min-width: 0; }
.fw-narrow .fw-loc-site .fw-loc-promotes { max-width: 110px; }
.fw-narrow .fw-loc-site .fw-loc-promotes .fw-token { white-space: pre; overflow: hidden; text-overflow: ellipsis; max-width: 100%; }
.fw-narrow .fw-loc-card { white-space: nowrap; }
.fw-narrow .fw-loc-site .fw-table :is(th, td):nth-child(2) { display: none; }  /* activation: the ranking is by contribution */
.fw-loc-promotes .fw-token { max-width: 9em; overflow: hidden; text-overflow: ellipsis; }
.fw-loc-form { margin: 4px 0; }
.fw-loc-form-fields { display: grid; grid-template-columns: auto minmax(160px, 1fr); gap: 4px 8px; align-items: center; max-width: 720px; margin-top: 4px; }
.fw-root button.fw-loc-run { background: var(--jp-brand-color1, #1976d2); color: var(--jp-ui-inverse-font-color0, #fff); border-color: transparent; }
`;

interface Name { name: string; label: string; short?: string; edit: boolean; unit: boolean }
interface Site extends PackedNeurons { name: string; position: number; token: string }
const FIELDS: [string, string][] = [["prompt", "prompt"], ["subject", "subject"], ["target", "true object"], ["target_new", "new object (edits)"]];

/** Bar geometry of one value in its row: [bottom %, height %, negative], from the row's scale. */
export function barGeometry(v: number, scale: number, signed: boolean): [number, number, boolean] {
  if (!Number.isFinite(v) || scale <= 0) return [0, 0, false];
  const f = Math.min(1, Math.abs(v) / scale);
  if (!signed) return [0, 100 * (v > 0 ? f : 0), false];
  return v >= 0 ? [50, 50 * f, false] : [50 - 50 * f, 50 * f, true];
}

export function render({ model, el }: RenderProps) {
  injectStyle("ffn-widgets-localize-style", CSS);
  const fact = h("div", { class: "fw-loc-fact" });
  const run = h("button", { class: "fw-button fw-loc-run", text: "Run", attrs: { type: "button" } });
  const cancel = h("button", { class: "fw-button fw-loc-cancel", text: "Cancel", attrs: { type: "button" }, on: { click: () => send(model, "cancel") } });
  const statusText = h("span", { class: "fw-muted fw-loc-status" });
  const inputs: Record<string, HTMLInputElement> = {};
  const fields = h("div", { class: "fw-loc-form-fields" });
  for (const [name, label] of [...FIELDS, ["edit_layers", "edit layers (e.g. 0, 4, 8-10; all; none)"]]) {
    inputs[name] = h("input", { attrs: { type: "text", "aria-label": label, "data-field": name } });
    fields.append(h("span", { class: "fw-muted", text: label }), inputs[name]);
  }
  const form = h("details", { class: "fw-loc-form" }, [h("summary", { text: "Another fact…" }), fields]);
  const grid = h("div", { class: "fw-loc-grid", attrs: { role: "table", "aria-label": "measures per layer" } });
  const neuronTitle = h("span", { class: "fw-title" });
  const sites = h("div", { class: "fw-loc-sites" });
  const neuronPanel = h("div", { class: "fw-panel fw-loc-neurons", style: { display: "none" } }, [h("div", { class: "fw-panel-head" }, [neuronTitle]), sites]);
  const slotTitle = h("span", { class: "fw-title" });
  const close = h("button", { class: "fw-button", text: "×", title: "Close this card", attrs: { type: "button", "aria-label": "Close card" },
    on: { click: () => send(model, "close_card") } });
  const slotBody = h("div", { class: "fw-slot-body" });
  const slot = h("div", { class: "fw-panel fw-slot", style: { display: "none" } }, [h("div", { class: "fw-panel-head" }, [slotTitle, close]), slotBody]);
  const root = h("div", { class: "fw-localize" }, [
    h("div", { class: "fw-panel" }, [
      h("div", { class: "fw-panel-head" }, [h("span", { class: "fw-title", text: "Where does this fact live?" }), h("span", {}, [statusText, " ", run, " ", cancel])]),
      fact, form, grid,
      h("div", { class: "fw-muted", text: "Bars per row are scaled to the row (fractions on 0–1); dashed: not measured. Click a layer for its top neurons." }),
    ]),
    neuronPanel, slot,
  ]);
  el.appendChild(root);
  const children = childWidgets(model, slotBody);

  run.addEventListener("click", () => {
    const body: Record<string, string> = {};
    for (const [name, input] of Object.entries(inputs)) body[name] = input.value;
    send(model, "start", body);
  });
  grid.addEventListener("click", (e) => {
    const at = (e.target as HTMLElement).closest<HTMLElement>("[data-layer]");
    if (at) send(model, "select", { layer: Number(at.dataset.layer) });
  });

  function drawFact() {
    const f = model.get("fact") ?? {};
    fact.replaceChildren(
      h("span", { class: "fw-loc-prompt", text: String(f.prompt ?? "") }),
      h("span", { class: "fw-muted", text: "subject" }), h("span", { class: "fw-loc-subject", text: String(f.subject ?? "") }),
      h("span", { class: "fw-muted", text: "→" }), h("span", { class: "fw-token fw-loc-target", text: showToken(String(f.target ?? "")) }),
      ...(f.target_new ? [h("span", { class: "fw-muted", text: "edited to" }), h("span", { class: "fw-token fw-loc-new", text: showToken(String(f.target_new)) })] : []),
    );
    const layers: number[] = model.get("edit_layers") ?? [];
    const values: Record<string, string> = { ...f, edit_layers: layers.length ? layers.join(", ") : "none" };
    for (const [name, input] of Object.entries(inputs)) if (document.activeElement !== input) input.value = String(values[name] ?? "");
  }

  function drawGrid() {
    const n = Number(model.get("n_layers") ?? 0);
    const names: Name[] = model.get("names") ?? [];
    const packed: Record<string, Packed> = model.get("measures") ?? {};
    const selected = Number(model.get("selected") ?? -1);
    grid.style.gridTemplateColumns = `minmax(110px, 190px) repeat(${n}, minmax(6px, 1fr)) minmax(72px, auto)`;
    const cells: HTMLElement[] = [h("span", { class: "fw-muted", text: "layer" })];
    for (let l = 0; l < n; l++) {
      cells.push(h("span", { class: `fw-loc-head${l === selected ? " fw-loc-on" : ""}`, text: n <= 16 || l % 5 === 0 || l === selected ? String(l) : "",
        attrs: { "data-layer": String(l), role: "columnheader", title: `layer ${l}` } }));
    }
    cells.push(h("span"));
    let section = "";
    for (const m of names) {
      const kind = m.edit ? "ROME edit at that layer (undone after measuring)" : "Localisation";
      if (kind !== section) {
        section = kind;
        cells.push(h("div", { class: "fw-loc-section", text: kind }));
      }
      const values = packed[m.name] ? decodeFloat(packed[m.name]).data : new Float32Array(n).fill(NaN);
      let max = 0;
      let peak = -1;
      let negative = false;
      values.forEach((v, l) => {
        if (!Number.isFinite(v)) return;
        if (Math.abs(v) > max) max = Math.abs(v);
        if (peak < 0 || v > values[peak]) peak = l;
        if (v < 0) negative = true;
      });
      const scale = m.unit ? 1 : max;
      cells.push(h("span", { class: `fw-loc-label${m.edit ? " fw-loc-edit" : ""}`, text: m.short ?? m.label, title: m.label }));
      for (let l = 0; l < n; l++) {
        const v = values[l];
        const [bottom, height, neg] = barGeometry(v, scale, negative);
        const fill = h("div", { class: `fw-loc-fill${neg ? " fw-loc-neg" : ""}`, style: { bottom: `${bottom.toFixed(1)}%`, height: `${height.toFixed(1)}%` } });
        const text = Number.isFinite(v) ? formatNumber(v) : "not measured";
        cells.push(h("div", {
          class: `fw-loc-cell${m.edit ? " fw-loc-edit" : ""}${Number.isFinite(v) ? "" : " fw-loc-na"}${l === selected ? " fw-loc-on" : ""}`,
          title: `${m.label} · layer ${l}: ${text}`,
          attrs: { "data-layer": String(l), "data-measure": m.name, "data-value": Number.isFinite(v) ? String(v) : "nan", role: "cell" },
        }, [fill]));
      }
      cells.push(h("span", { class: "fw-loc-peak", text: peak >= 0 ? `max L${peak}: ${formatNumber(values[peak])}` : "–" }));
    }
    grid.replaceChildren(...cells);
  }

  function drawStatus() {
    const status = String(model.get("status") ?? "idle");
    root.dataset.status = status;
    run.disabled = status === "running";
    cancel.style.display = status === "running" ? "" : "none";
    const edits: number[] = model.get("edit_layers") ?? [];
    setText(statusText, { idle: "not run yet", running: "measuring…", done: `done · ${edits.length} edited layers`,
      cancelled: "cancelled: the weights are as they were", failed: "failed" }[status] ?? status);
  }

  function drawNeurons() {
    const data = model.get("neurons") ?? {};
    const list: Site[] = data.sites ?? [];
    neuronPanel.style.display = list.length ? "" : "none";
    if (!list.length) return;
    setText(neuronTitle, `Layer ${data.layer}: top neurons by contribution to ${showToken(String(data.target ?? ""))}`);
    sites.replaceChildren(...list.map((site) => {
      const rows = neuronRows(site);
      const maxC = Math.max(1e-12, ...rows.map((r) => Math.abs(r.contrib)));
      return h("div", { class: "fw-loc-site", attrs: { "data-site": site.name } }, [
        h("div", { class: "fw-card-sub" }, [`At the ${site.name} `, h("span", { class: "fw-token", text: showToken(site.token) }), ` (position ${site.position})`]),
        h("table", { class: "fw-table" }, [
          h("thead", {}, [h("tr", {}, ["neuron", "activation", "contribution", "value promotes", ""].map((t) => h("th", { text: t })))]),
          h("tbody", {}, rows.map((r) => h("tr", { attrs: { "data-neuron": String(r.neuron) } }, [
            h("td", { class: "fw-num", text: `L${r.layer}.N${r.neuron}` }),
            h("td", { class: "fw-num", text: formatNumber(r.act) }),
            h("td", { class: "fw-num" }, [formatNumber(r.contrib), h("span", { class: "fw-bar", style: {
              width: `${Math.round((40 * Math.abs(r.contrib)) / maxC)}px`, marginLeft: "6px", background: r.contrib >= 0 ? "var(--fw-pos)" : "var(--fw-neg)" } })]),
            h("td", {}, [h("span", { class: "fw-loc-promotes" }, (r.valueTop ?? []).map((t) => h("span", { class: "fw-token", text: showToken(t) })))]),
            h("td", {}, [h("button", { class: "fw-button fw-loc-card", text: "card", title: `Open the neuron card of L${r.layer}.N${r.neuron}`,
              attrs: { type: "button" }, on: { click: () => send(model, "open_card", { layer: r.layer, neuron: r.neuron }) } })]),
          ]))),
        ]),
      ]);
    }));
  }

  const drawSlot = () => {
    const refs: string[] = (model.get("slot") ?? []).map(String);
    setText(slotTitle, String(model.get("slot_title") ?? ""));
    slot.style.display = refs.length ? "" : "none";
    void children.draw(refs);
  };
  const drawSlotTitle = () => setText(slotTitle, String(model.get("slot_title") ?? ""));

  const events: [string, () => void][] = [["change:fact", drawFact], ["change:edit_layers", () => { drawFact(); drawStatus(); }],
    ["change:measures", drawGrid], ["change:names", drawGrid], ["change:n_layers", drawGrid], ["change:selected", drawGrid],
    ["change:status", drawStatus], ["change:neurons", drawNeurons], ["change:slot", drawSlot], ["change:slot_title", drawSlotTitle]];
  for (const [e, fn] of events) model.on(e, fn);
  drawFact();
  drawGrid();
  drawStatus();
  drawNeurons();
  drawSlot();
  return () => {
    for (const [e, fn] of events) model.off(e, fn);
    children.destroy();
  };
}
