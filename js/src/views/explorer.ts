// The explorer: every prompt view, plus a slot where another widget (neuron card, sliders, causal trace)
// is drawn. The slot holds widget references ("IPY_MODEL_<id>"); the child's own view is created through
// the host's widget manager, so it stays a full widget talking to its own kernel object.
import { h, Model, RenderProps, setText } from "../core";
import { renderPrompt } from "./prompt";

export function render({ model, el }: RenderProps) {
  const stopPrompt = renderPrompt(model, el, { heatmap: true, lens: true });
  const title = h("span", { class: "fw-title" });
  const close = h("button", { class: "fw-button", text: "×", title: "Close this panel", attrs: { type: "button", "aria-label": "Close panel" } });
  const body = h("div", { class: "fw-slot-body" });
  const panel = h("div", { class: "fw-panel fw-slot", style: { display: "none" } }, [h("div", { class: "fw-panel-head" }, [title, close]), body]);
  el.append(panel);
  close.addEventListener("click", () => {
    model.set("slot", []);
    model.set("slot_title", "");
    model.save_changes();
  });
  let generation = 0;
  let childViews: { remove?: () => void }[] = [];
  const drawSlot = async () => {
    const mine = ++generation;
    for (const v of childViews) v.remove?.();
    childViews = [];
    body.replaceChildren();
    const refs: string[] = (model.get("slot") ?? []).map(String);
    setText(title, String(model.get("slot_title") ?? ""));
    panel.style.display = refs.length ? "" : "none";
    const manager = (model as Model & { widget_manager?: any }).widget_manager;
    for (const ref of refs) {
      if (!manager) {
        body.append(h("div", { class: "fw-muted", text: "This front end cannot embed widgets here; display the view in its own cell." }));
        return;
      }
      try {
        const child = await manager.get_model(ref.replace(/^IPY_MODEL_/, ""));
        const view = await manager.create_view(child);
        if (mine !== generation) {
          view.remove?.();
          return;
        }
        childViews.push(view);
        body.append(view.el);
        view.trigger?.("displayed");
      } catch (err) {
        body.append(h("div", { class: "fw-error", text: `Could not show the panel: ${String(err)}` }));
      }
    }
  };
  model.on("change:slot", drawSlot);
  const drawTitle = () => setText(title, String(model.get("slot_title") ?? ""));
  model.on("change:slot_title", drawTitle);
  void drawSlot();
  return () => {
    generation++;
    model.off("change:slot", drawSlot);
    model.off("change:slot_title", drawTitle);
    for (const v of childViews) v.remove?.();
    stopPrompt();
  };
}
