// The one FFN side panel of a JupyterLab window. Each kernel places its own dock view in the shell through ipylab
// (ffn_widgets/widgets/dock.py), and ipylab puts it back on every page load; this extension gathers them into a
// single "FFN" tab that shows the active notebook's kernel's dock (one per kernel: a newer copy replaces an older
// one), so kernels and reloads never add tabs. The tab exists while some kernel has a dock, opens when a view is
// docked (the show-panel command) and is otherwise left collapsed. A kernel's dock goes when that kernel
// restarts, dies, is replaced or its notebook closes (its views are dead widgets then). Each dock view names its
// kernel (data-kernel on .fw-dock, js/src/views/dock.ts).
import type { JupyterFrontEnd } from "@jupyterlab/application";
import type { INotebookTracker, NotebookPanel } from "@jupyterlab/notebook";
import { Panel, Widget } from "@lumino/widgets";

export const HOST_ID = "ffn-widgets-panel";
const AREAS = ["right", "left"];

const kernelOf = (w: Widget): string | undefined => w.node.querySelector<HTMLElement>(".fw-dock")?.dataset.kernel;

export class PanelHost {
  private host: Panel | null = null;
  private placeholder = document.createElement("div");

  constructor(private app: JupyterFrontEnd, private tracker: INotebookTracker) {
    this.placeholder.className = "fw-host-empty";
    this.placeholder.textContent = "Nothing is docked from this notebook's kernel. Dock a view with view.dock(), " +
      "fw.dock(view) or its ⇥ button.";
    // ipylab adds and draws a kernel's dock asynchronously: gather it as soon as its .fw-dock appears
    let queued = false; // one look per frame, however many nodes changed
    new MutationObserver(() => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        this.gather();
      });
    }).observe(document.body, { childList: true, subtree: true });
    tracker.currentChanged.connect(() => this.follow());
  }

  /** The kernels' docks: gathered ones, and any still sitting in a side area of their own. */
  docks(kernel?: string): Widget[] {
    const found = this.host ? [...this.host.widgets].filter((w) => w.node.querySelector(".fw-dock")) : [];
    for (const area of AREAS) {
      for (const w of this.app.shell.widgets(area as any)) {
        if (w !== this.host && w.node.querySelector(".fw-dock")) found.push(w);
      }
    }
    return found.filter((w) => kernel === undefined || kernelOf(w) === kernel);
  }

  get panel(): Panel | null {
    return this.host;
  }

  /** Move every dock ipylab placed into the one tab (created on the first), dropping older copies. */
  gather(): void {
    for (const area of AREAS) {
      for (const w of [...this.app.shell.widgets(area as any)]) {
        if (w === this.host || !w.node.querySelector(".fw-dock")) continue;
        const host = this.ensureHost();
        const kernel = kernelOf(w);
        for (const old of [...host.widgets]) {
          if (old !== w && (old.id === w.id || (kernel && kernelOf(old) === kernel))) old.dispose();
        }
        const wasCurrent = (this.app.shell as any).currentWidget === w;
        host.addWidget(w); // Lumino takes it out of the side bar: its own tab goes
        w.removeClass("jp-SideAreaWidget");
        if (wasCurrent) this.app.shell.activateById(HOST_ID);
      }
    }
    this.follow();
  }

  /** Show the dock of the active notebook's kernel (a console or an editor in front keeps the last one). */
  follow(): void {
    if (!this.host) return;
    const docks = [...this.host.widgets].filter((w) => w.node.querySelector(".fw-dock"));
    const kernel = currentKernel(this.tracker);
    const shown = docks.find((w) => kernelOf(w) === kernel) ?? (kernel ? undefined : docks[docks.length - 1]);
    for (const w of docks) w.setHidden(w !== shown);
    this.placeholder.style.display = shown ? "none" : "";
  }

  /** A kernel's docks are gone: its tab goes when no kernel has one. */
  remove(kernel: string): void {
    for (const w of this.docks(kernel)) w.dispose();
    if (this.host && ![...this.host.widgets].some((w) => w.node.querySelector(".fw-dock"))) {
      this.host.dispose();
      this.host = null;
    }
    this.follow();
  }

  private ensureHost(): Panel {
    if (this.host && !this.host.isDisposed) return this.host;
    const host = new Panel();
    host.id = HOST_ID;
    host.addClass("jp-SideAreaWidget");
    host.addClass("fw-host");
    host.title.label = "FFN";
    host.title.caption = "ffn_widgets: docked views, models and edits of the active notebook's kernel";
    host.title.closable = false;
    host.node.appendChild(this.placeholder);
    this.app.shell.add(host, "right", { rank: 900 }); // added, not opened: a docking opens it (show-panel)
    this.host = host;
    return host;
  }
}

function currentKernel(tracker: INotebookTracker): string | undefined {
  return tracker.currentWidget?.sessionContext.session?.kernel?.id;
}

/** Wait (ipylab adds and draws a dock asynchronously) until the active notebook's kernel's dock is in the tab;
 * null after `timeoutMs`. */
export async function findPanel(host: PanelHost, tracker: INotebookTracker, timeoutMs = 5000): Promise<Panel | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    host.gather();
    const kernel = currentKernel(tracker);
    if (host.panel && host.docks(kernel).length) return host.panel;
    if (Date.now() > deadline) return host.panel && !kernel ? host.panel : null;
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

/** Remove a notebook's kernel's dock when the kernel restarts, dies, is changed, or the notebook closes. */
export function removePanelsWithTheirKernel(host: PanelHost, tracker: INotebookTracker): void {
  const remove = (kernel: string | undefined) => {
    if (kernel) host.remove(kernel);
  };
  const watch = (panel: NotebookPanel) => {
    const ctx = panel.sessionContext;
    let kernel = ctx.session?.kernel?.id;
    ctx.kernelChanged.connect((_, change) => {
      remove(change.oldValue?.id);
      kernel = change.newValue?.id;
      host.follow();
    });
    ctx.statusChanged.connect((_, status) => {
      if (status === "restarting" || status === "autorestarting" || status === "dead") remove(ctx.session?.kernel?.id ?? kernel);
    });
    panel.disposed.connect(() => remove(kernel));
  };
  tracker.forEach(watch);
  tracker.widgetAdded.connect((_, panel) => watch(panel));
}
