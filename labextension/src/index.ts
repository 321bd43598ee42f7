// The ffn_widgets JupyterLab 4 / Notebook 7 extension: commands on selected text, in the command palette and
// the notebook's context menu. They run in the active notebook's kernel after a silent check that ffn_widgets
// is imported there and a model is loaded. Each kernel's dock view is placed by ipylab from the kernel
// (ffn_widgets/widgets/dock.py); this extension gathers them into one FFN tab per window (panels.ts), asks the
// kernel to dock an explorer, selects the tab when the kernel docks a view (ipylab can only expand the right area,
// not pick a tab in it), and drops a kernel's dock when that kernel restarts (its views are dead then).
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from "@jupyterlab/application";
import { Dialog, ICommandPalette, InputDialog, showDialog } from "@jupyterlab/apputils";
import { INotebookTracker, NotebookActions, type NotebookPanel } from "@jupyterlab/notebook";
import { Widget } from "@lumino/widgets";
import { kernelState, runSilently } from "./kernel";
import { findPanel, PanelHost, removePanelsWithTheirKernel, widen } from "./panels";
import { SelectionTracker } from "./selection";
import {
  cardCode, cleanSelection, dockedExplorerCode, explorerCode, guessSubject, type KernelState, neuronRangeError,
  notReadyReason, parseNeuron, SETUP_CODE, traceCode,
} from "./text";

export const PLUGIN_ID = "ffn-widgets:plugin";
export const CommandIDs = {
  explore: "ffn-widgets:explore-selection",
  exploreDocked: "ffn-widgets:explore-selection-docked",
  trace: "ffn-widgets:causal-trace-selection",
  card: "ffn-widgets:open-neuron-card",
  showPanel: "ffn-widgets:show-panel",
};
const CATEGORY = "FFN widgets";
const FROM_MENU = { origin: "context-menu" };

/** A dialog whose text is inserted as text (a selection or a kernel error can hold markup), with optional code. */
function say(title: string, text: string, code?: string): Promise<unknown> {
  const node = document.createElement("div");
  node.className = "fw-lab-dialog";
  const p = document.createElement("p");
  p.textContent = text;
  node.append(p);
  if (code) {
    const pre = document.createElement("pre");
    pre.textContent = code;
    node.append(pre);
  }
  return showDialog({ title, body: new Widget({ node }), buttons: [Dialog.okButton({ label: "OK" })] });
}

function short(text: string, n = 60): string {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: "ffn_widgets commands on selected text: explore, causal trace, neuron card",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, palette: ICommandPalette | null) => {
    const selection = new SelectionTracker(tracker);
    const host = new PanelHost(app, tracker);
    removePanelsWithTheirKernel(host, tracker);
    const current = (): NotebookPanel | null => tracker.currentWidget;
    const selected = (): string => {
      const panel = current();
      return panel ? cleanSelection(selection.read(panel)) : "";
    };

    /** The kernel's state when it can run a command; otherwise a dialog says what to run first. */
    const ready = async (panel: NotebookPanel, label: string): Promise<KernelState | null> => {
      const state = await kernelState(panel);
      if (typeof state === "string") {
        await say(`${label}: no kernel to run in`, state);
        return null;
      }
      const reason = notReadyReason(state);
      if (reason) {
        await say(`${label}: ffn_widgets is not ready`, `${reason} Run this in a cell first, then try again:`, SETUP_CODE);
        return null;
      }
      return state;
    };

    const needSelection = async (label: string): Promise<string | null> => {
      const text = selected();
      if (!text) await say(label, "Select some text in a cell or an output of this notebook first (the prompt to use).");
      return text || null;
    };

    const insertAndRun = async (panel: NotebookPanel, code: string) => {
      NotebookActions.insertBelow(panel.content);
      panel.content.activeCell?.model.sharedModel.setSource(code);
      await NotebookActions.run(panel.content, panel.sessionContext);
    };

    const withNotebook = (run: (panel: NotebookPanel) => Promise<void>) => async () => {
      const panel = current();
      if (panel) await run(panel);
    };
    const hasNotebook = () => current() !== null;
    const selectionCommand = { isEnabled: hasNotebook, isVisible: (args: any) => args?.origin !== FROM_MENU.origin || !!selected() };

    app.commands.addCommand(CommandIDs.explore, {
      label: "Explore selection",
      caption: "An ffn_widgets explorer on the selected text, in a new cell below",
      ...selectionCommand,
      execute: withNotebook(async (panel) => {
        const prompt = await needSelection("Explore selection");
        if (prompt && (await ready(panel, "Explore selection"))) await insertAndRun(panel, explorerCode(prompt));
      }),
    });

    app.commands.addCommand(CommandIDs.exploreDocked, {
      label: "Explore selection in the side panel",
      caption: "An ffn_widgets explorer on the selected text, docked in the FFN side panel (no new cell)",
      ...selectionCommand,
      execute: withNotebook(async (panel) => {
        const label = "Explore selection in the side panel";
        const prompt = await needSelection(label);
        if (!prompt || !(await ready(panel, label))) return;
        const error = await runSilently(panel, dockedExplorerCode(prompt));
        if (error) await say(`${label}: the kernel said`, error);
      }),
    });

    app.commands.addCommand(CommandIDs.trace, {
      label: "Causal trace of selection",
      caption: "A causal trace (ROME) of the selected prompt; asks which subject to corrupt",
      ...selectionCommand,
      execute: withNotebook(async (panel) => {
        const label = "Causal trace of selection";
        const prompt = await needSelection(label);
        if (!prompt || !(await ready(panel, label))) return;
        const answer = await InputDialog.getText({
          title: label, label: `Subject to corrupt in “${short(prompt)}”`, text: guessSubject(prompt), okLabel: "Trace",
        });
        const subject = answer.button.accept ? (answer.value ?? "").trim() : "";
        if (!subject) return;
        if (!prompt.includes(subject)) {
          await say(label, `The subject must be a part of the prompt; “${short(subject)}” is not in “${short(prompt)}”.`);
          return;
        }
        await insertAndRun(panel, traceCode(prompt, subject));
      }),
    });

    app.commands.addCommand(CommandIDs.card, {
      label: "Open neuron card…",
      caption: "The card of one neuron (layer:neuron), with the selected text as its prompt if any",
      isEnabled: hasNotebook,
      execute: withNotebook(async (panel) => {
        const label = "Open neuron card";
        const prompt = selected();
        const state = await ready(panel, label);
        if (!state) return;
        const model = state.models[state.models.length - 1];
        let text = "";
        for (;;) {
          const answer = await InputDialog.getText({
            title: label, label: `Layer:neuron of ${model.name}, e.g. 12:345 or L12.N345`, text, placeholder: "12:345",
            okLabel: "Open",
          });
          if (!answer.button.accept) return;
          text = (answer.value ?? "").trim();
          const address = parseNeuron(text);
          const error = address
            ? neuronRangeError(address.layer, address.neuron, model)
            : `“${short(text)}” is not a neuron address: write layer:neuron, e.g. 12:345 or L12.N345.`;
          if (address && !error) {
            await insertAndRun(panel, cardCode(address.layer, address.neuron, prompt || undefined));
            return;
          }
          await say(label, error ?? "");
        }
      }),
    });

    app.commands.addCommand(CommandIDs.showPanel, {
      label: "Show the FFN side panel",
      caption: "Select the side panel of docked ffn_widgets views, models and edits",
      execute: async (args) => {
        const panel = await findPanel(host, tracker);
        if (panel) {
          app.shell.activateById(panel.id);
          widen(app, panel);
        }
        else if (!args.quiet) await say("FFN side panel", "Nothing is docked yet: dock a view with view.dock(), fw.dock(view) or its ⇥ button.");
      },
    });
    palette?.addItem({ command: CommandIDs.showPanel, category: CATEGORY });

    const ids = [CommandIDs.explore, CommandIDs.exploreDocked, CommandIDs.trace, CommandIDs.card];
    for (const command of ids) palette?.addItem({ command, category: CATEGORY });
    // one group after JupyterLab's own notebook items (the log console sits at rank 60), between two separators
    app.contextMenu.addItem({ type: "separator", selector: ".jp-Notebook", rank: 70 });
    ids.forEach((command, i) => app.contextMenu.addItem({ command, args: FROM_MENU, selector: ".jp-Notebook", rank: 70 + (i + 1) / 10 }));
    app.contextMenu.addItem({ type: "separator", selector: ".jp-Notebook", rank: 71 });
  },
};

export default plugin;
