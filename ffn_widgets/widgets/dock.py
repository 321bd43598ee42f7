"""The FFN side panel: views docked beside the notebook, the kernel's models, and their edit logs.

    fw.dock(view)        # or view.dock(), or the dock button on any view
    fw.undock(view)

One :class:`Dock` per kernel. ipylab places it in the shell's right area (JupyterLab 4 and Notebook 7);
docked views are second views of the same widget models, so a docked slider still drives its bars and both
copies stay in step. The panel goes with the kernel: its widget models close when the kernel restarts.
The model list follows every ``LM`` of the process, and each edit log's changes refresh the panel at once.
"""
from __future__ import annotations

import time
import weakref

import traitlets
from ipywidgets import DOMWidget, widget_serialization

from ..model import LM, InputError
from ..model.lm import live_models, on_new_model
from .base import ViewWidget, handles

PANEL_TITLE = "FFN"
SHOW_PANEL = "ffn-widgets:show-panel"  # the package's JupyterLab extension's command (labextension/src/index.ts)


class Dock(ViewWidget):
    """The side panel's contents: docked views (newest last), then each model with its edit log."""

    view = traitlets.Unicode("dock").tag(sync=True)
    docked = traitlets.List(traitlets.Instance(DOMWidget)).tag(sync=True, **widget_serialization)
    models = traitlets.List([]).tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(title=PANEL_TITLE, **kwargs)
        self._watched: set[int] = set()
        self._placed = False
        me = weakref.ref(self)  # the model registry must not keep a closed panel alive
        on_new_model(lambda lm: me() is not None and me().refresh())
        self.refresh()

    # ---- docking -------------------------------------------------------------------------------
    def add(self, view: DOMWidget) -> None:
        if not isinstance(view, DOMWidget):
            raise InputError(f"Only widgets can be docked, e.g. fw.dock(fw.NeuronSliders(...)); got {type(view).__name__}.")
        if view is self:
            raise InputError("The side panel cannot be docked into itself.")
        if view not in self.docked:
            self.docked = [*self.docked, view]
        self.refresh()

    def remove(self, view: DOMWidget) -> None:
        self.docked = [v for v in self.docked if v is not view]

    @handles("undock")
    def _undock(self, msg):
        index = int(msg["index"])
        if not 0 <= index < len(self.docked):
            raise InputError("That view is no longer docked.")
        self.remove(self.docked[index])

    # ---- models and edit logs ------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild the model list (names, placement, edit log entries) from the live models."""
        rows = []
        for lm in live_models():
            if lm.serial not in self._watched:
                self._watched.add(lm.serial)
                me = weakref.ref(self)
                lm.edits.on_change(lambda _log: me() is not None and me().refresh())
            rows.append(model_row(lm))
        self.models = rows

    @handles("undo")
    def _undo(self, msg):
        lm = _model(int(msg["model"]))
        index = int(msg["entry"])
        if not 0 <= index < len(lm.edits):
            raise InputError("That edit is no longer in the log (it was undone or the log was reset).")
        lm.edits.undo(lm.edits[index])

    @handles("reset")
    def _reset(self, msg):
        _model(int(msg["model"])).edits.reset()

    @handles("refresh")
    def _refresh(self, msg):
        self.refresh()


def model_row(lm: LM) -> dict:
    """What the panel shows of one model: its name and shape, where it runs, and its edits, oldest first."""
    placement = "split by accelerate" if lm.is_split else str(lm.device)
    edits = []
    for i, e in enumerate(lm.edits):
        facts = [f"{f.get('subject', '?')} → {str(f.get('target', '?')).strip()}" for f in e.facts]
        edits.append({"index": i, "method": e.method, "facts": facts, "layers": list(e.layers),
                      "time": time.strftime("%H:%M:%S", time.localtime(e.time))})
    return {"serial": lm.serial, "name": lm.name, "summary": f"{lm.n_layers} layers · {lm.d_mlp} neurons/layer · "
            f"{str(lm.dtype).replace('torch.', '')} · {placement}", "edits": edits}


def _model(serial: int) -> LM:
    for lm in live_models():
        if lm.serial == serial:
            return lm
    raise InputError("That model is no longer loaded in the kernel.")


_DOCK: Dock | None = None
_FRONTEND = None


def panel() -> Dock:
    """The kernel's side panel (created on first use)."""
    global _DOCK
    if _DOCK is None or _DOCK.comm is None:  # none yet, or closed (e.g. by Widget.close_all)
        _DOCK = Dock()
    return _DOCK


def dock(view: DOMWidget) -> Dock:
    """Show ``view`` in the FFN side panel (opened in the right area if it is not there yet)."""
    d = panel()
    d.add(view)
    if d._placed and _FRONTEND is not None and _FRONTEND._ready_event.is_set():
        _show(_FRONTEND)  # placed earlier: bring it to the front again
    _place(d)
    return d


def undock(view: DOMWidget) -> None:
    if _DOCK is not None:
        _DOCK.remove(view)


def _place(d: Dock) -> None:
    """Put the panel in the shell's right area once, through ipylab (its front end adds widget views to the
    JupyterLab / Notebook 7 shell). Outside those hosts nothing happens and the panel can be displayed as a
    plain widget instead."""
    global _FRONTEND
    if d._placed:
        return
    try:
        from ipylab import JupyterFrontEnd, Panel
    except ImportError:
        raise InputError("Docking needs ipylab (pip install ipylab); or display fw.panel() in a cell.") from None
    holder = Panel([d])
    holder.title.label = PANEL_TITLE
    holder.title.caption = "ffn_widgets: docked views, models and edits"
    holder.title.closable = False  # closed, it could not come back (placed once per kernel); collapse it instead
    if _FRONTEND is None:
        _FRONTEND = JupyterFrontEnd()
    frontend = _FRONTEND

    def add():
        # once: ipylab calls its ready callbacks again on every page load, and its shell model puts back what it
        # holds by itself (one copy per kernel; the extension shows them in one tab); opened at a docking only
        frontend.on_ready(add, remove=True)
        if not getattr(holder, "_in_shell", False):
            holder._in_shell = True
            frontend.shell.add(holder, "right", {"rank": 900})
            _show(frontend)

    if frontend._ready_event.is_set():
        add()
    else:
        frontend.on_ready(add)  # the front end answers after this cell: ipylab delivers then
    d._placed = True


def _show(frontend) -> None:
    """Select the panel's tab: ipylab can only expand the right area (showing whichever tab was last there),
    so the package's extension selects the panel itself, in JupyterLab and Notebook 7."""
    if SHOW_PANEL in frontend.commands.list_commands():
        frontend.commands.execute(SHOW_PANEL, {"quiet": True})
    else:
        frontend.shell.expand_right()


ViewWidget.docking = staticmethod(dock)  # view.dock() and every view's dock button
