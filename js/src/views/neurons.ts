// NeuronList on its own: the rows come ready-ranked from the kernel (fw.top_neurons).
import { neuronRows, neuronTable, segmented } from "../components";
import { h, RenderProps, send, setText, showToken } from "../core";

export function render({ model, el }: RenderProps) {
  const title = h("span", { class: "fw-title" });
  const bySeg = segmented([["activation", "by |activation|"], ["contribution", "by contribution"]], (by) => send(model, "set_by", { by }));
  const table = neuronTable((layer, neuron) => send(model, "select_neuron", { layer, neuron }));
  el.append(h("div", { class: "fw-panel" }, [h("div", { class: "fw-panel-head" }, [title, bySeg.el]), table.el]));
  const draw = () => {
    const r = model.get("rows");
    if (!r || !r.neurons) return;
    const rows = neuronRows(r);
    setText(title, `Top neurons · layer ${r.layer} · token ${r.position} ${showToken(r.token)}`);
    bySeg.set(r.by);
    const sel = model.get("selected");
    table.update(rows, r.target, sel && sel.layer !== undefined ? [sel.layer, sel.neuron] : null);
  };
  model.on("change:rows", draw);
  model.on("change:selected", draw);
  draw();
  return () => {
    model.off("change:rows", draw);
    model.off("change:selected", draw);
  };
}
