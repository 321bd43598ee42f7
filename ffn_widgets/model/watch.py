"""The one rule behind every view that shows what the weights compute: it hears when the model changes.

A model's *state version* (:attr:`LM.state_version`) moves when a weight is written by any route (an edit,
undo, reset, ``lm.edits.load``, a write through ``.data``, ``load_state_dict``, a dtype change: the weights
version sees them all) and when an ``lm.intervene`` block starts or ends. :class:`StateWatch` tells the
registered views when that number moved since it last told them. It is asked to look

- after every write through the edit log (the Editor's Apply, the side panel's Undo, ``rome_edit``...),
- after every notebook cell (a write through ``.data`` or an ``intervene`` block in a cell), and
- before a view answers a gesture (a script without a kernel).

While an edit is being computed (``with watch.editing():``: MEMIT writes its layers one by one into a
temporary copy, stability runs write and take out edits) nobody is told and running jobs wait: the edit goes
first, and what runs beside it restarts on the weights it leaves (:class:`~ffn_widgets.widgets.runner.StepRunner`).

A job that pauses between two steps *inside* such a block (a localisation measuring a temporary edit, a stability
run, a MEMIT batch, the key statistics of the weights as loaded) *holds* the weights (:attr:`StateWatch.held_by`):
on leaving the block it puts back the edit log it started from, so a write from elsewhere made in between would be
lost. The rule is the same as above, **the edit goes first**: a write through the edit log (apply, undo, reset,
load, forget) first makes the holding job let go (:meth:`StateWatch.make_way`: the job is closed, its blocks put
the log back exactly), then lands; the job starts again on the new weights, or stops and says why. Other jobs
wait while the weights are held, and view gestures are refused with a message naming the job (what they would
show is a temporary model).
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from contextlib import contextmanager
from types import SimpleNamespace

from .errors import InputError

_ALL: "weakref.WeakSet[StateWatch]" = weakref.WeakSet()


class WeightsChanged(InputError):
    """The model changed while a job read it: its earlier steps describe other weights, so it stopped."""


def same_model(lm, version: int, what: str = "This job") -> None:
    """Raise :class:`WeightsChanged` if ``lm`` moved since ``version`` (jobs look before every step)."""
    if lm.state_version != version:
        raise WeightsChanged(f"{what} stopped: the model changed while it ran (an edit, undo or weight write landed "
                             "between two of its steps), and its result would mix two models. Run it again.")
_CELL_HOOK = []


class StateWatch:
    def __init__(self, lm):
        self._lm = weakref.ref(lm)
        self._callbacks: list = []  # weak references: a view that is gone stops listening
        self.seen = lm.state_version
        self.editing_depth = 0
        self.held_by: str | None = None  # a paused job that holds the weights in between (what it is)
        self.holder: object = None  # and the runner that drives it
        _ALL.add(self)

    @property
    def busy(self) -> bool:
        """An edit is being computed: the weights are in between."""
        return self.editing_depth > 0

    def check_free(self, what: str = "This change") -> None:
        """Raise :class:`InputError` while a paused job holds the weights in between (see the module docstring)."""
        if self.held_by is not None:
            raise InputError(f"{what} has to wait: {self.held_by} is working on a temporary state of this model's "
                             "weights (an edit being computed or measured), so what it would show now is not the "
                             "model. Try again when that job has finished, or cancel it.")

    def make_way(self) -> None:
        """A write from elsewhere is about to land: the job holding the weights lets go first (see above)."""
        holder = self.holder
        if holder is not None:
            holder.preempt()

    def add(self, callback: Callable[..., object]) -> None:
        """Call ``callback(version, same_as)`` whenever the state version moves; ``same_as`` is the version
        whose weights it equals bit for bit (after ``original()``/``without()`` put them back), else None.
        Bound methods are held weakly: a view that is gone stops listening."""
        ref = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else (lambda: callback)
        self._callbacks.append(ref)
        _install_cell_hook()

    def remove(self, callback: Callable[..., object]) -> None:
        """Stop calling ``callback`` (a view that is closed)."""
        self._callbacks = [ref for ref in self._callbacks if ref() is not None and ref() != callback]

    def notify(self, same_as: int | None = None) -> int:
        """Tell every listener if the state moved since the last time; the current version."""
        lm = self._lm()
        if lm is None:
            return -1
        version = lm.state_version
        if self.busy or version == self.seen:
            return version
        self.seen = version
        alive = []
        for ref in self._callbacks:
            callback = ref()
            if callback is not None:
                alive.append(ref)
                callback(version, same_as)
        self._callbacks = alive
        return version

    @contextmanager
    def editing(self, restores: bool = False):
        """Hold every notice while an edit is computed; one notice at the end if the state moved.
        ``restores`` (also settable on the yielded object): the body puts every weight back bit for bit, so
        views keep what they show."""
        lm = self._lm()
        clean = lm is not None and not self.busy and lm.state_version == self.seen
        before, hold = self.seen, SimpleNamespace(restores=restores)
        self.editing_depth += 1
        try:
            yield hold
        finally:
            self.editing_depth -= 1
            if not self.busy:
                self.notify(same_as=before if hold.restores and clean else None)


def notify_all(*_args) -> None:
    """After a notebook cell: every model whose state moved tells its views."""
    for watch in list(_ALL):
        watch.notify()


def _install_cell_hook() -> None:
    if _CELL_HOOK:
        return
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the kernel
        return
    shell = get_ipython()
    if shell is None:
        return
    shell.events.register("post_run_cell", notify_all)
    _CELL_HOOK.append(shell)
