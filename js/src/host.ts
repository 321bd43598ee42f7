// anywidget's two entry points for every ffn_widgets view: draw the frame, then the view the Python class names in
// its `view` trait (views/index.ts). widget.ts hands them to anywidget in its default export only (a named
// `render` export is deprecated there and logged once per view).
// The layers, imports pointing down only: views/ -> components/ -> core/.
import { channel, closeChannel, ensureStyle, h, Model, mountFrame, RenderProps } from "./core";
import { views } from "./views";

export function initialize({ model }: { model: Model }): () => void {
  channel(model); // message handlers (acks, custom messages) once per model, not per rendered view
  return () => closeChannel(model);
}

export function render({ model, el }: RenderProps): () => void {
  ensureStyle();
  const frame = mountFrame(model, el);
  const name = String(model.get("view") ?? "");
  const view = views[name];
  let cleanup: (() => void) | void;
  if (!view) {
    const known = Object.keys(views).sort().join(", ") || "none";
    frame.content.appendChild(h("div", { class: "fw-error", text: `Unknown view "${name}" (this bundle has: ${known}). Rebuild the front end with \`make js\`.` }));
  } else {
    try {
      cleanup = view({ model, el: frame.content });
    } catch (err) {
      frame.content.appendChild(h("div", { class: "fw-error", text: `The "${name}" view failed to draw: ${String(err)}` }));
    }
  }
  return () => {
    if (typeof cleanup === "function") cleanup();
    frame.cleanup();
  };
}
