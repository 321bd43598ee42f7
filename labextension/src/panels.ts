// The FFN side panels in the shell. The kernel places its panel through ipylab; when that kernel restarts, dies,
// is replaced or its notebook closes, the panel's views are dead widgets, so it is removed here (ipylab keeps it).
// Each panel's dock view names its kernel (data-kernel on .fw-dock, js/src/views/dock.ts).
import type { JupyterFrontEnd } from "@jupyterlab/application";
import type { INotebookTracker, NotebookPanel } from "@jupyterlab/notebook";
import type { Widget } from "@lumino/widgets";

const AREAS = ["right", "left"];

/** The side-area widgets holding a dock view (of one kernel, when `kernel` is given). */
export function dockPanels(app: JupyterFrontEnd, kernel?: string): Widget[] {
  const found: Widget[] = [];
  for (const area of AREAS) {
    for (const w of app.shell.widgets(area)) {
      const dock = w.node.querySelector<HTMLElement>(".fw-dock");
      if (dock && (kernel === undefined || dock.dataset.kernel === kernel)) found.push(w);
    }
  }
  return found;
}

/** Wait (ipylab adds and draws the panel asynchronously) for a dock panel; null after `timeoutMs`. */
export async function findPanel(app: JupyterFrontEnd, timeoutMs = 5000): Promise<Widget | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [panel] = dockPanels(app);
    if (panel || Date.now() > deadline) return panel ?? null;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const widened = new WeakSet<Widget>();

/** Give a panel room for a view (sliders, a heatmap) the first time it is shown, if the side area is narrow.
 * JupyterLab has no public API for the side area's width: its shell's split panel is used when present
 * (Notebook 7 has none: nothing happens there); later the user's own resizing is left alone. */
export function widen(app: JupyterFrontEnd, panel: Widget, px = 440): void {
  if (widened.has(panel)) return;
  widened.add(panel);
  const split = (app.shell as any)._hsplitPanel;
  if (!split?.relativeSizes || !split.node || panel.node.clientWidth >= px) return;
  const sizes: number[] = split.relativeSizes();
  const total = split.node.clientWidth;
  if (sizes.length !== 3 || !total) return;
  const want = Math.min(px / total, 0.45);
  const grow = want - sizes[2];
  if (grow <= 0 || sizes[1] - grow < 0.3) return;
  split.setRelativeSizes([sizes[0], sizes[1] - grow, want]);
}

/** Remove the panels of a notebook's kernel when it restarts, dies, is changed, or the notebook closes. */
export function removePanelsWithTheirKernel(app: JupyterFrontEnd, tracker: INotebookTracker): void {
  const remove = (kernel: string | undefined) => {
    if (kernel) for (const w of dockPanels(app, kernel)) w.dispose();
  };
  const watch = (panel: NotebookPanel) => {
    const ctx = panel.sessionContext;
    let kernel = ctx.session?.kernel?.id;
    ctx.kernelChanged.connect((_, change) => {
      remove(change.oldValue?.id);
      kernel = change.newValue?.id;
    });
    ctx.statusChanged.connect((_, status) => {
      if (status === "restarting" || status === "autorestarting" || status === "dead") remove(ctx.session?.kernel?.id ?? kernel);
    });
    panel.disposed.connect(() => remove(kernel));
  };
  tracker.forEach(watch);
  tracker.widgetAdded.connect((_, panel) => watch(panel));
}
