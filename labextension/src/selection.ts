// The text a command acts on: the active cell editor's selection (CodeMirror keeps it while the palette or a
// menu has the focus), else the last document selection made inside that notebook (rendered markdown, outputs).
// The document's own selection moves into the palette's search box, so it is remembered per notebook.
import type { INotebookTracker, NotebookPanel } from "@jupyterlab/notebook";

export class SelectionTracker {
  private remembered = new WeakMap<NotebookPanel, string>();

  constructor(private tracker: INotebookTracker) {
    document.addEventListener("selectionchange", this.onChange);
  }

  dispose(): void {
    document.removeEventListener("selectionchange", this.onChange);
  }

  /** The selected text in `panel` ("" when nothing is selected). */
  read(panel: NotebookPanel): string {
    const editor = panel.content.activeCell?.editor;
    if (editor) {
      const range = editor.getSelection();
      const a = editor.getOffsetAt(range.start);
      const b = editor.getOffsetAt(range.end);
      if (a !== b) return editor.model.sharedModel.getSource().slice(Math.min(a, b), Math.max(a, b));
    }
    return this.remembered.get(panel) ?? "";
  }

  private onChange = (): void => {
    const sel = document.getSelection();
    const node = sel?.anchorNode;
    if (!sel || !node) return;
    const el = node instanceof Element ? node : node.parentElement;
    const panel = el ? this.tracker.find((p) => p.node.contains(el)) : undefined;
    if (!panel) return; // the palette, a dialog, a menu: keep what was selected in the notebook
    this.remembered.set(panel, sel.isCollapsed ? "" : sel.toString());
  };
}
