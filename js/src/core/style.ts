// The stylesheet of every view, injected once per page. Colours come from --jp-* variables with
// fallbacks, so JupyterLab's light/dark themes (and VS Code's) apply without a redraw.
// Waiting states move little: the sliding bar moves by transform in five steps a second, with no smooth
// layout animation and no shimmer, since the browser and the kernel often share a laptop's few cores (in
// headless Chromium a smooth margin slide took a sixth of a core, a shimmer over a heatmap three quarters).
const CSS = `
.fw-root { --fw-pos: #d8734f; --fw-neg: #5b8fca; }
[data-jp-theme-light="false"] .fw-root { --fw-pos: #ff9a76; --fw-neg: #7db6ff; }
.fw-root { font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: var(--jp-ui-font-size1, 13px);
  color: var(--jp-ui-font-color0, #1f2328); background: var(--jp-layout-color0, transparent); padding: 4px 0;
  position: relative; line-height: 1.4; }
.fw-root * { box-sizing: border-box; }
.fw-status:empty { display: none; }
.fw-error { border-left: 3px solid var(--jp-error-color1, #c62828); background: var(--jp-error-color3, #fdecea);
  color: var(--jp-ui-font-color0, #1f2328); padding: 6px 10px; margin: 4px 0; white-space: pre-wrap; border-radius: 2px;
  display: flex; gap: 8px; align-items: flex-start; }
.fw-error-text { flex: 1; }
.fw-stale { border-left: 3px solid var(--jp-warn-color1, #ef6c00); background: var(--jp-warn-color3, #fff3e0);
  color: var(--jp-ui-font-color0, #1f2328); padding: 6px 10px; margin: 4px 0; border-radius: 2px;
  display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.fw-stale-text { flex: 1; min-width: 12em; }
.fw-is-stale .fw-content { opacity: 0.55; }
.fw-error button { border: none; background: transparent; color: inherit; cursor: pointer; font-size: 14px; }
.fw-progress { display: flex; align-items: center; gap: 8px; color: var(--jp-ui-font-color1, #333); margin: 4px 0;
  animation: fw-appear 0s 0.3s both; }
@keyframes fw-appear { from { visibility: hidden; } to { visibility: visible; } }
.fw-progress-track { width: 160px; height: 4px; background: var(--jp-layout-color3, #ddd); border-radius: 2px; overflow: hidden; }
.fw-progress-fill { height: 100%; background: var(--jp-brand-color1, #1976d2); }
.fw-progress-fill.fw-indeterminate { width: 30%; animation: fw-slide 1.2s infinite steps(6); }
@keyframes fw-slide { from { transform: translateX(-100%); } to { transform: translateX(334%); } }
.fw-heatmap { position: relative; overflow-x: auto; max-width: 100%; }
.fw-root svg[viewBox] { max-width: 100%; height: auto; }
.fw-heatmap-canvas { display: block; cursor: crosshair; outline: none; }
.fw-heatmap-canvas:focus-visible { outline: 1px dashed var(--jp-brand-color1, #1976d2); }
.fw-tooltip { position: absolute; pointer-events: none; z-index: 10; padding: 5px 8px; border-radius: 4px;
  background: var(--jp-layout-color2, #f0f0f0); color: var(--jp-ui-font-color0, #111); border: 1px solid var(--jp-border-color1, #ccc);
  box-shadow: 0 2px 6px rgba(0,0,0,0.2); font-size: 12px; white-space: pre; max-width: 420px; }
.fw-tooltip-head { font-weight: 600; }
.fw-legend { display: inline-flex; flex-wrap: wrap; max-width: 100%; align-items: center; gap: 6px; font-size: 11px;
  color: var(--jp-ui-font-color1, #444); }
.fw-legend-bar { width: 160px; height: 10px; border: 1px solid var(--jp-border-color2, #ddd); }
.fw-legend-title { font-weight: 600; }
.fw-toolbar { display: flex; flex-wrap: wrap; gap: 10px 16px; align-items: center; margin: 4px 0 8px; }
.fw-toolbar label { display: inline-flex; gap: 6px; align-items: center; color: var(--jp-ui-font-color1, #444); }
.fw-root select, .fw-root input[type=text], .fw-root textarea { max-width: 100%; font: inherit; color: var(--jp-ui-font-color0, #111);
  background: var(--jp-input-background, var(--jp-layout-color1, #fff)); border: 1px solid var(--jp-border-color1, #ccc);
  border-radius: 3px; padding: 3px 6px; }
.fw-root button.fw-button { font: inherit; cursor: pointer; color: var(--jp-ui-font-color0, #111);
  background: var(--jp-layout-color2, #eee); border: 1px solid var(--jp-border-color1, #ccc); border-radius: 3px; padding: 3px 10px; }
.fw-seg { display: inline-flex; flex-wrap: wrap; max-width: 100%; border: 1px solid var(--jp-border-color1, #ccc); border-radius: 3px; overflow: hidden; }
.fw-seg button { font: inherit; border: none; padding: 3px 10px; cursor: pointer; background: var(--jp-layout-color1, #fff);
  color: var(--jp-ui-font-color1, #333); }
.fw-seg button + button { border-left: 1px solid var(--jp-border-color1, #ccc); }
.fw-seg button.fw-on { background: var(--jp-brand-color1, #1976d2); color: var(--jp-ui-inverse-font-color0, #fff); }
.fw-title { font-weight: 600; font-size: var(--jp-ui-font-size2, 15px); margin: 2px 0 6px; }
.fw-muted { color: var(--jp-ui-font-color2, #777); }
.fw-token { font-family: var(--jp-code-font-family, monospace); background: var(--jp-layout-color2, #eee);
  border-radius: 3px; padding: 0 3px; white-space: pre; }
.fw-table { border-collapse: collapse; font-size: 12px; max-width: 100%; }
.fw-table td:not(.fw-num) { overflow-wrap: anywhere; }
.fw-table th { overflow-wrap: break-word; }
.fw-table th { text-align: left; font-weight: 600; color: var(--jp-ui-font-color1, #444); padding: 3px 8px;
  border-bottom: 1px solid var(--jp-border-color1, #ccc); }
.fw-table td { padding: 2px 8px; border-bottom: 1px solid var(--jp-border-color3, #eee); vertical-align: middle; }
.fw-table td.fw-num { text-align: right; font-variant-numeric: tabular-nums; font-family: var(--jp-code-font-family, monospace); }
.fw-table tr.fw-clickable { cursor: pointer; }
.fw-table tr.fw-clickable:hover { background: var(--jp-layout-color2, #f3f3f3); }
.fw-table tr.fw-row-on { background: var(--jp-brand-color3, #e3f0fc); }
.fw-bar { display: inline-block; height: 8px; vertical-align: middle; border-radius: 1px; }
.fw-panel { border: 1px solid var(--jp-border-color2, #e0e0e0); border-radius: 4px; padding: 8px 10px; margin: 6px 0;
  background: var(--jp-layout-color0, transparent); }
.fw-panel-head { display: flex; flex-wrap: wrap; align-items: baseline; justify-content: space-between; gap: 8px; margin-bottom: 6px; }
.fw-grid2 { display: grid; grid-template-columns: minmax(0, 1fr); gap: 8px; }
.fw-prompt { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin-bottom: 6px; }
.fw-prompt input[type=text] { flex: 1; min-width: min(200px, 100%); font-family: var(--jp-code-font-family, monospace); }
.fw-dock-button { float: right; margin: 0 0 2px 6px; position: relative; z-index: 5; width: 22px; height: 20px; padding: 0;
  font-size: 13px; line-height: 18px; cursor: pointer; opacity: 0.45; color: var(--jp-ui-font-color1, #333);
  background: var(--jp-layout-color1, #fff); border: 1px solid var(--jp-border-color2, #ddd); border-radius: 3px; }
.fw-root:hover > .fw-dock-button, .fw-dock-button:focus-visible { opacity: 1; }
.fw-dock-button:hover { background: var(--jp-layout-color2, #eee); border-color: var(--jp-brand-color1, #1976d2); }
.fw-in-dock .fw-dock-button { display: none; }
.fw-dock { padding: 0 6px; min-width: 0; }
/* narrow boxes (core/narrow.ts: a docked view, a narrow notebook): less padding, smaller keys, tighter tables */
.fw-narrow .fw-panel { padding: 6px; }
.fw-narrow .fw-legend-bar { width: 96px; }
.fw-narrow .fw-table th, .fw-narrow .fw-table td { padding-left: 4px; padding-right: 4px; }
.fw-narrow .fw-table .fw-token { white-space: pre-wrap; overflow-wrap: anywhere; }
.fw-dock-section { font-weight: 600; font-size: var(--jp-ui-font-size0, 11px); text-transform: uppercase;
  letter-spacing: 0.05em; color: var(--jp-ui-font-color2, #777); margin: 10px 0 2px; }
.fw-dock-item, .fw-dock-model { background: var(--jp-layout-color1, #fff); }
.fw-dock-item > .fw-panel-head { flex-wrap: nowrap; align-items: center; border-bottom: 1px solid var(--jp-border-color2, #e0e0e0);
  padding-bottom: 4px; }
.fw-dock-title { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.fw-dock-body { overflow-x: auto; max-width: 100%; }
.fw-dock-empty { padding: 6px 0; }
.fw-dock-edits { margin: 4px 0 0; padding-left: 20px; }
.fw-dock-edit { margin: 3px 0; }
.fw-dock-edit > * { vertical-align: middle; }
.fw-dock-edit-text { margin-right: 6px; overflow-wrap: anywhere; }
.fw-dock-edit button.fw-button { padding: 0 8px; font-size: var(--jp-ui-font-size0, 11px); }
`;

/** Add a stylesheet to the page once: `id` names it, so later calls (other views, re-renders) do nothing. */
export function injectStyle(id: string, css: string): void {
  if (typeof document === "undefined" || document.getElementById(id)) return;
  const style = document.createElement("style");
  style.id = id;
  style.textContent = css;
  document.head.appendChild(style);
}

/** The shared stylesheet; views with rules of their own add them with `injectStyle`. */
export function ensureStyle(): void {
  injectStyle("ffn-widgets-style", CSS);
}
