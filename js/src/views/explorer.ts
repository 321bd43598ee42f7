// The explorer: every prompt view, plus a slot where another widget (neuron card, sliders, causal trace, editor)
// is drawn (core/children.ts: each child stays a full widget talking to its own kernel object).
import { childWidgets, h, RenderProps, setText } from "../core";
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
  const children = childWidgets(model, body);
  const drawSlot = () => {
    const refs: string[] = (model.get("slot") ?? []).map(String);
    setText(title, String(model.get("slot_title") ?? ""));
    panel.style.display = refs.length ? "" : "none";
    void children.draw(refs);
  };
  model.on("change:slot", drawSlot);
  const drawTitle = () => setText(title, String(model.get("slot_title") ?? ""));
  model.on("change:slot_title", drawTitle);
  drawSlot();
  return () => {
    children.destroy();
    model.off("change:slot", drawSlot);
    model.off("change:slot_title", drawTitle);
    stopPrompt();
  };
}
