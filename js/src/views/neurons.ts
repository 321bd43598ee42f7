// NeuronList on its own: the rows come ready-ranked from the kernel (fw.top_neurons).
import { decodeFloat, decodeInt } from "../arrays";
import { neuronTable } from "../components/neuronTable";
import { h, setText, showToken } from "../dom";
import { send } from "../messages";
import type { RenderProps } from "../types";

export function render({ model, el }: RenderProps) {
  const title = h("span", { class: "fw-title" });
  const byButtons = (["activation", "contribution"] as const).map((by) =>
    h("button", { text: by === "activation" ? "by |activation|" : "by contribution", attrs: { "data-value": by, type: "button" }, on: { click: () => send(model, "set_by", { by }) } }),
  );
  const table = neuronTable((layer, neuron) => send(model, "select_neuron", { layer, neuron }));
  el.append(h("div", { class: "fw-panel" }, [h("div", { class: "fw-panel-head" }, [title, h("span", { class: "fw-seg" }, byButtons)]), table.el]));
  const draw = () => {
    const r = model.get("rows");
    if (!r || !r.neurons) return;
    const ids = decodeInt(r.neurons).data;
    const act = decodeFloat(r.act).data;
    const contrib = decodeFloat(r.contrib).data;
    setText(title, `Top neurons · layer ${r.layer} · token ${r.position} ${showToken(r.token)}`);
    for (const b of byButtons) b.classList.toggle("fw-on", b.dataset.value === r.by);
    const sel = model.get("selected");
    table.update(Array.from(ids, (neuron, i) => ({ layer: r.layer, neuron, act: act[i], contrib: contrib[i], valueTop: r.value_top[i] })),
      r.target, sel && sel.layer !== undefined ? [sel.layer, sel.neuron] : null);
  };
  model.on("change:rows", draw);
  model.on("change:selected", draw);
  draw();
  return () => {
    model.off("change:rows", draw);
    model.off("change:selected", draw);
  };
}
