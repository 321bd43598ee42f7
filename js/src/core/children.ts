// Other widgets drawn inside a view (the explorer's panel slot, the editor under a causal trace). The model
// holds widget references ("IPY_MODEL_<id>"); each child's own view is created through the host's widget
// manager, so it stays a full widget talking to its own kernel object.
import { h } from "./dom";
import type { Model } from "./types";

export function childWidgets(model: Model, body: HTMLElement) {
  let generation = 0;
  let views: { remove?: () => void }[] = [];
  const removeAll = () => {
    for (const v of views) v.remove?.();
    views = [];
  };
  return {
    /** Replace what `body` shows by the views of `refs`. */
    async draw(refs: string[]) {
      const mine = ++generation;
      removeAll();
      body.replaceChildren();
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
          views.push(view);
          body.append(view.el);
          view.trigger?.("displayed");
        } catch (err) {
          body.append(h("div", { class: "fw-error", text: `Could not show the panel: ${String(err)}` }));
        }
      }
    },
    destroy() {
      generation++;
      removeAll();
    },
  };
}
