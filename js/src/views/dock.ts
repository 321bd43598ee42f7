// The FFN side panel (Python: widgets/dock.py): docked views, each a live second view of its widget with an
// Undock button, then every model in the kernel with its edit log and an Undo per entry. The panel's place in
// the shell (ipylab) and its removal on a kernel restart (the package's JupyterLab extension) are not done here.
import { childWidgets, h, setText } from "../core";
import type { RenderProps } from "../core";

// what a docked view is called when its widget has no title of its own
const NAMES: Record<string, string> = {
  causal_trace: "Causal trace", editor: "Editor", explorer: "Explorer", heatmap: "Activations", lens: "Logit lens",
  localize: "Localize", neuron_card: "Neuron card", neurons: "Neurons", sliders: "Neuron sliders", stability: "Stability",
};

type EditRow = { index: number; method: string; facts: string[]; layers: number[]; time: string };
type ModelRow = { serial: number; name: string; summary: string; edits: EditRow[] };

export function render({ model, el }: RenderProps) {
  const docked = h("div", { class: "fw-dock-views" });
  const models = h("div", { class: "fw-dock-models" });
  const root = h("div", { class: "fw-dock" }, [docked, h("div", { class: "fw-dock-section", text: "Models" }), models]);
  // the kernel this panel belongs to: the JupyterLab extension removes the panel when that kernel restarts
  const kernel = (model as any).widget_manager?.kernel?.id;
  if (kernel) root.setAttribute("data-kernel", String(kernel));
  el.append(root);
  let slots: { ref: string; destroy: () => void; el: HTMLElement }[] = [];

  const drawDocked = () => {
    const refs: string[] = (model.get("docked") ?? []).map(String);
    // keep the views of refs still docked (a redraw would reset their scroll and state), drop the others
    const keep = slots.filter((s) => refs.includes(s.ref));
    for (const s of slots) if (!keep.includes(s)) s.destroy();
    slots = refs.map((ref, i) => keep.find((s) => s.ref === ref) ?? dockedView(ref, i));
    slots.forEach((s, i) => s.el.setAttribute("data-index", String(i)));
    docked.replaceChildren(...slots.map((s) => s.el));
    if (!slots.length) {
      docked.append(h("div", { class: "fw-muted fw-dock-empty", text: "No docked views. Dock one with view.dock(), fw.dock(view) or the ⇥ button on a view." }));
    }
  };

  const dockedView = (ref: string, index: number) => {
    const body = h("div", { class: "fw-dock-body fw-in-dock" });
    const title = h("span", { class: "fw-dock-title", text: "view" });
    const close = h("button", { class: "fw-button", text: "Undock", title: "Take this view out of the panel (it stays in its cell)" });
    const box = h("div", { class: "fw-panel fw-dock-item", attrs: { "data-index": String(index) } }, [
      h("div", { class: "fw-panel-head" }, [title, close]),
      body,
    ]);
    close.addEventListener("click", () => model.send({ type: "undock", index: Number(box.getAttribute("data-index")) }));
    const children = childWidgets(model, body);
    void children.draw([ref]).then(() => {
      const manager = (model as any).widget_manager;
      manager?.get_model?.(ref.replace(/^IPY_MODEL_/, "")).then((m: any) => {
        const label = () => setText(title, String(m.get("title") || NAMES[m.get("view")] || m.get("view") || "view"));
        label();
        m.on?.("change:title", label);
      }).catch(() => undefined);
    });
    return { ref, el: box, destroy: () => children.destroy() };
  };

  const drawModels = () => {
    const rows: ModelRow[] = model.get("models") ?? [];
    models.replaceChildren();
    if (!rows.length) models.append(h("div", { class: "fw-muted", text: "No model loaded in this kernel yet (fw.load_model())." }));
    for (const m of rows) {
      const list = h("ol", { class: "fw-dock-edits" });
      for (const e of m.edits) {
        const undo = h("button", { class: "fw-button", text: "Undo", title: "Take this edit out of the weights (later edits stay)" });
        undo.addEventListener("click", () => model.send({ type: "undo", model: m.serial, entry: e.index }));
        list.append(h("li", { class: "fw-dock-edit" }, [
          h("span", { class: "fw-dock-edit-text", text: `${e.method} · ${e.facts.join("; ")} · layer${e.layers.length > 1 ? "s" : ""} ${e.layers.join(", ")} · ${e.time}` }),
          undo,
        ]));
      }
      const reset = h("button", { class: "fw-button", text: "Reset all", title: "Undo every edit of this model" });
      reset.addEventListener("click", () => model.send({ type: "reset", model: m.serial }));
      models.append(h("div", { class: "fw-panel fw-dock-model", attrs: { "data-serial": String(m.serial) } }, [
        h("div", { class: "fw-panel-head" }, [h("b", { text: m.name }), m.edits.length ? reset : null]),
        h("div", { class: "fw-muted", text: m.summary }),
        m.edits.length ? list : h("div", { class: "fw-muted", text: "No edits: the weights are as loaded." }),
      ]));
    }
  };

  model.on("change:docked", drawDocked);
  model.on("change:models", drawModels);
  drawDocked();
  drawModels();
  return () => {
    model.off("change:docked", drawDocked);
    model.off("change:models", drawModels);
    for (const s of slots) s.destroy();
  };
}
