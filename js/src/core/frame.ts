// The frame around every view: the kernel's error message, progress and stale-weights notice, above the view's own
// content, and the button that docks the view in the FFN side panel (JupyterLab and Notebook 7 only: the kernel
// places the panel there through ipylab; other hosts have no side panel to put it in).
import { h, setText } from "./dom";
import { watchNarrow } from "./narrow";
import type { Model } from "./types";

export const DOCK_TITLE = "Dock in the FFN side panel";

/** Whether the page is a JupyterLab 4 or Notebook 7 application (whose shell, the Lumino widget #main, has a
 * right side area); not VS Code, Colab, or a saved HTML page. */
export function inJupyterShell(): boolean {
  return typeof document !== "undefined" && !!document.querySelector(".jp-LabShell, #main.lm-Widget");
}

export function mountFrame(model: Model, el: HTMLElement): { content: HTMLElement; cleanup: () => void } {
  const errorText = h("span", { class: "fw-error-text" });
  const dismiss = h("button", { text: "×", title: "Dismiss", attrs: { "aria-label": "Dismiss error" } });
  const error = h("div", { class: "fw-error", attrs: { role: "alert" } }, [errorText, dismiss]);
  const progressText = h("span", { class: "fw-progress-text" });
  const fill = h("div", { class: "fw-progress-fill" });
  const progress = h("div", { class: "fw-progress", attrs: { role: "status" } }, [
    h("div", { class: "fw-progress-track" }, [fill]),
    progressText,
  ]);
  // a view whose numbers describe earlier weights says so at once, with one click to compute them again
  const staleText = h("span", { class: "fw-stale-text" });
  const recompute = h("button", { class: "fw-stale-button", text: "Recompute", title: "Compute again on the current weights" });
  const stale = h("div", { class: "fw-stale", attrs: { role: "status" } }, [staleText, recompute]);
  const status = h("div", { class: "fw-status" });
  const content = h("div", { class: "fw-content" });
  const root = h("div", { class: "fw-root" }, [status, content]);
  // the dock view has no dock button; views shown inside the dock (.fw-in-dock) hide theirs by CSS
  if (model.get("view") !== "dock" && inJupyterShell()) {
    const dock = h("button", { class: "fw-dock-button", text: "⇥", title: DOCK_TITLE, attrs: { "aria-label": DOCK_TITLE } });
    dock.addEventListener("click", () => model.send({ type: "dock" }));
    root.prepend(dock); // floated right: the view's first row makes room for it instead of lying under it
  }
  el.appendChild(root);
  const stopNarrow = watchNarrow(root);

  const showError = () => {
    const msg = String(model.get("error") ?? "");
    setText(errorText, msg);
    if (msg && !error.parentNode) status.prepend(error);
    if (!msg && error.parentNode) error.remove();
  };
  const showProgress = () => {
    const p = model.get("progress") ?? {};
    const msg = typeof p.message === "string" ? p.message : "";
    if (!msg) {
      progress.remove();
      return;
    }
    setText(progressText, msg);
    const f = typeof p.fraction === "number" ? Math.min(1, Math.max(0, p.fraction)) : null;
    fill.classList.toggle("fw-indeterminate", f === null);
    fill.style.width = f === null ? "" : `${(f * 100).toFixed(1)}%`;
    if (!progress.parentNode) status.appendChild(progress);
  };
  const showStale = () => {
    const msg = String(model.get("stale") ?? "");
    setText(staleText, msg);
    if (msg && !stale.parentNode) status.prepend(stale);
    if (!msg && stale.parentNode) stale.remove();
    root.classList.toggle("fw-is-stale", !!msg);
  };
  // the weights version the numbers describe, readable on the page (tests, and a user inspecting two copies)
  const showVersion = () => {
    const v = model.get("weights_version");
    if (typeof v === "number" && v >= 0) root.dataset.weightsVersion = String(v);
    else delete root.dataset.weightsVersion;
  };
  recompute.addEventListener("click", () => model.send({ type: "recompute" }));
  dismiss.addEventListener("click", () => {
    model.set("error", "");
    model.save_changes();
  });
  model.on("change:error", showError);
  model.on("change:progress", showProgress);
  model.on("change:stale", showStale);
  model.on("change:weights_version", showVersion);
  showError();
  showProgress();
  showStale();
  showVersion();
  return {
    content,
    cleanup: () => {
      model.off("change:error", showError);
      model.off("change:progress", showProgress);
      model.off("change:stale", showStale);
      model.off("change:weights_version", showVersion);
      stopNarrow();
      root.remove();
    },
  };
}
