// The neuron list: one row per neuron with its activation, its contribution to the target and the top
// tokens its value vector promotes. Bars make magnitudes comparable at a glance; rows are clickable.
import { decodeFloat, decodeInt, formatNumber, h, Packed, showToken } from "../core";

export interface NeuronRow {
  layer: number;
  neuron: number;
  act: number;
  contrib: number;
  valueTop: string[] | null; // null while the kernel is still reading value vectors
}

/** A ranked neuron list as the kernel packs it: ids, activations and contributions as arrays. */
export interface PackedNeurons {
  layer: number;
  neurons: Packed;
  act: Packed;
  contrib: Packed;
  value_top: (string[] | null)[];
}

/** The rows of a packed neuron list, in the kernel's order. */
export function neuronRows(r: PackedNeurons): NeuronRow[] {
  const ids = decodeInt(r.neurons).data;
  const act = decodeFloat(r.act).data;
  const contrib = decodeFloat(r.contrib).data;
  return Array.from(ids, (neuron, i) => ({ layer: r.layer, neuron, act: act[i], contrib: contrib[i], valueTop: r.value_top[i] }));
}

export function neuronTable(onSelect: (layer: number, neuron: number) => void) {
  const body = h("tbody");
  const contribHead = h("th", { text: "contribution", title: "m·(W_U v)[target]: this neuron's push on the target logit" });
  const table = h("table", { class: "fw-table fw-neuron-table" }, [
    h("thead", {}, [h("tr", {}, [
      h("th", { text: "neuron" }),
      h("th", { text: "activation", title: "m: the input of the down projection" }),
      contribHead,
      h("th", { text: "value vector promotes", title: "top tokens of W_U·v (Geva et al. 2021)" }),
    ])]),
    body,
  ]);
  let selected: [number, number] | null = null;

  function bar(v: number, max: number, color: string) {
    const w = max > 0 ? Math.round((44 * Math.abs(v)) / max) : 0;
    return h("span", { class: "fw-bar", style: { width: `${w}px`, background: color, marginLeft: "6px" } });
  }

  return {
    el: table,
    update(rows: NeuronRow[], target: string, selectedNeuron: [number, number] | null) {
      selected = selectedNeuron;
      contribHead.textContent = `→ ${showToken(target)}`;
      const maxAct = Math.max(1e-9, ...rows.map((r) => Math.abs(r.act)));
      const maxC = Math.max(1e-9, ...rows.map((r) => Math.abs(r.contrib)));
      body.replaceChildren(...rows.map((r) => {
        const chips = r.valueTop === null
          ? [h("span", { class: "fw-muted", text: "…" })]
          : r.valueTop.map((t) => h("span", { class: "fw-token", text: showToken(t) }));
        const valueCell = h("td", { style: { display: "flex", gap: "4px", flexWrap: "wrap" } }, chips);
        const tr = h("tr", {
          class: "fw-clickable" + (selected && selected[0] === r.layer && selected[1] === r.neuron ? " fw-row-on" : ""),
          attrs: { "data-layer": String(r.layer), "data-neuron": String(r.neuron) },
          title: "Select this neuron",
          on: { click: () => onSelect(r.layer, r.neuron) },
        }, [
          h("td", { class: "fw-num", text: `L${r.layer}.N${r.neuron}` }),
          h("td", { class: "fw-num" }, [formatNumber(r.act), bar(r.act, maxAct, r.act >= 0 ? "var(--fw-pos)" : "var(--fw-neg)")]),
          h("td", { class: "fw-num" }, [formatNumber(r.contrib), bar(r.contrib, maxC, r.contrib >= 0 ? "var(--fw-pos)" : "var(--fw-neg)")]),
          valueCell,
        ]);
        return tr;
      }));
    },
  };
}
