"""``ViewWidget``: the one anywidget class every view derives from.

The front end is a single ESM bundle (``ffn_widgets/static/widget.js``, built from ``js/`` by ``make js``);
the traitlet ``view`` tells it which view to draw. The platform gives every view, for free:

- ``error``: a message shown in the widget. Gesture handlers and :meth:`ViewWidget.reporting` blocks put
  any exception there instead of losing it in the kernel log (ipywidgets swallows observer errors).
- ``progress``: ``{"message": str, "fraction": float | None}`` while something slow runs (see :meth:`busy`).
- gestures: the JS side sends ``{"type": name, ...}``; a method decorated with ``@handles(name)`` (or a
  function given to ``widget.handle(name)``) receives the message dict. When the message carries an
  ``_ack`` id the kernel answers ``{"type": "_ack", "id": ...}`` once it is done, which is how the JS
  coalescer (``sendLatest`` in ``js/src/core/messages.ts``) keeps only the newest slider/hover value in flight.

Example::

    class Counter(ViewWidget):
        view = Unicode("counter").tag(sync=True)
        count = Int(0).tag(sync=True)

        @handles("add")
        def _add(self, msg):
            self.count += int(msg["by"])
"""
from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager

import anywidget
import traitlets

from .bundle import NOT_BUILT_ESM, BUNDLE, bundle_built

def handles(name: str):
    """Mark a method as the handler of JS messages ``{"type": name, ...}``."""

    def mark(method):
        method._handles_message = name
        return method

    return mark


class ViewWidget(anywidget.AnyWidget):
    """Base of every ffn_widgets view; see the module docstring for the contract."""

    _esm = BUNDLE if bundle_built() else NOT_BUILT_ESM
    view = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    progress = traitlets.Dict({}).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    weights_version = traitlets.Int(-1).tag(sync=True)  # the model state what is shown was computed on
    stale = traitlets.Unicode("").tag(sync=True)  # why what is shown describes earlier weights ("": it does not)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._handlers: dict[str, Callable[[dict], object]] = {}
        for cls in reversed(type(self).__mro__):
            for attr in vars(cls).values():
                name = getattr(attr, "_handles_message", None)
                if name is not None:
                    self._handlers[name] = attr.__get__(self, type(self))
        self._neuron_callbacks: list[Callable[[int, int], object]] = []
        self.on_msg(self._on_message)

    # ---- what the view shows, as an analysis result ------------------------------------------
    def _result(self):
        """The analysis result this view draws (views that show one override this)."""
        raise NotImplementedError(f"{type(self).__name__} has no static export.")

    def figure(self, *args, **kwargs):
        """The view as a static plotly figure (for slides and papers): its result's ``figure()``."""
        return self._result().figure(*args, **kwargs)

    def to_frame(self):
        """The view's numbers as a pandas DataFrame: its result's ``to_frame()``."""
        return self._result().to_frame()

    def settle(self) -> None:
        """Land what the view still streams before a static copy is taken (:func:`.export.export_html`); views
        that stream override this. Long jobs (a causal trace, an edit) are not waited for."""

    def to_html(self, path, title: str | None = None):
        """This view as one self-contained HTML file that works offline without a kernel
        (:func:`ffn_widgets.widgets.export.export_html`); returns the path."""
        from .export import export_html

        return export_html([self], path, title=title)

    def _repr_mimebundle_(self, **kwargs):
        """anywidget's bundle plus a static ``text/html`` still of a few kB, shown where no widget manager
        draws the view (nbconvert of a notebook saved without widget state, GitHub): :mod:`ffn_widgets.widgets.snapshot`."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        from .snapshot import snapshot_html

        data, metadata = bundle
        return {**data, "text/html": snapshot_html(self)}, metadata

    # ---- following the weights ------------------------------------------------------------------
    def follow_weights(self, lm, on_change: str) -> None:
        """Keep this view true to ``lm``: when its state moves, ``"recompute"`` (cheap views) calls
        :meth:`_recompute` at once, ``"mark"`` (expensive views) shows that what is on screen describes
        earlier weights, with a Recompute button (the ``recompute`` message). The README's table says which."""
        self._followed, self._on_weights = lm, on_change
        self.weights_version = lm.state_version
        lm.watch.add(self._weights_moved)

    def close(self) -> None:
        """Close the widget and stop following the weights (a closed view computes nothing more)."""
        followed = getattr(self, "_followed", None)
        if followed is not None:
            followed.watch.remove(self._weights_moved)
        super().close()

    def _weights_moved(self, version: int, same_as: int | None = None) -> None:
        if version == self.weights_version:
            return
        if same_as is not None and same_as == self.weights_version:
            self.weights_version = version  # the same weights bit for bit (an edit's "before" measured)
            return
        if self._on_weights == "recompute":
            with self.reporting():
                self.recompute()
        else:
            self.stale = ("These results describe earlier weights: the model changed since (an edit, undo or "
                          "write). Recompute to see the current model.")

    def recompute(self) -> None:
        """Compute what this view shows again, on the model as it is now."""
        self.weights_version = self._followed.state_version
        self.stale = ""
        self._recompute()

    def _recompute(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not follow a model.")

    def check_weights(self) -> None:
        """Look whether the followed model moved (gestures do this first; cells and edits tell us anyway)."""
        lm = getattr(self, "_followed", None)
        if lm is not None:
            lm.watch.notify()
            if lm.state_version != self.weights_version and not lm.watch.busy:
                self._weights_moved(lm.state_version)

    def check_free(self) -> None:
        """Refuse a gesture while another view's job holds the weights in between (:mod:`ffn_widgets.model.watch`):
        what it would show is a temporary model."""
        lm = getattr(self, "_followed", None)
        if lm is not None and lm.watch.holder is not getattr(self, "_runner", None):
            lm.watch.check_free("This view")

    @handles("recompute")
    def _on_recompute(self, msg):
        self.recompute()

    # ---- the side panel ------------------------------------------------------------------------
    docking: Callable | None = None  # the side panel's dock function; :mod:`.dock` sets it (it builds on this class)

    def dock(self):
        """Show this view in the FFN side panel too (a second, live view of the same widget)."""
        return ViewWidget.docking(self)  # set when the widgets package loads (its __init__ imports .dock)

    @handles("dock")
    def _dock_message(self, msg):
        self.dock()

    # ---- neuron selection --------------------------------------------------------------------
    def on_neuron_selected(self, callback: Callable[[int, int], object]) -> None:
        """Call ``callback(layer, neuron)`` whenever the user picks a neuron here (errors show in the widget)."""
        self._neuron_callbacks.append(callback)

    def _neuron_selected(self, layer: int, neuron: int) -> None:
        for callback in list(self._neuron_callbacks):
            callback(layer, neuron)

    # ---- gestures ----------------------------------------------------------------------------
    def handle(self, name: str, fn: Callable[[dict], object] | None = None):
        """Register ``fn(msg)`` for JS messages of type ``name``; usable as a decorator."""
        if fn is None:
            return lambda f: self.handle(name, f)
        self._handlers[name] = fn
        return fn

    def dispatch(self, msg: dict) -> bool:
        """Run the handler of ``msg["type"]`` with errors reported in the widget; True if it succeeded.
        The kernel calls this for every message from the browser; tests call it directly."""
        if not isinstance(msg, dict):
            self.error = f"Malformed message from the front end: {msg!r}"
            return False
        kind = msg.get("type")
        ok = False
        try:
            handler = self._handlers.get(kind)
            if handler is None:
                known = ", ".join(sorted(self._handlers)) or "none"
                raise ValueError(f"This widget has no handler for message type {kind!r} (known: {known}).")
            with self.reporting():
                if kind != "cancel":  # Cancel always gets through (it is how a held model is let go)
                    self.check_free()
                if kind not in ("recompute", "cancel"):
                    self.check_weights()
                handler(msg)
                ok = not self.error  # an observer the handler triggered may have reported an error
        except Exception as exc:  # noqa: BLE001 - the unknown-type error belongs in the widget too
            self.error = describe(exc)
        finally:
            if "_ack" in msg:
                self.send({"type": "_ack", "id": msg["_ack"], "ok": ok})
        return ok

    def _on_message(self, _widget, content, buffers):
        if isinstance(content, dict) and buffers:
            content = {**content, "_buffers": buffers}
        self.dispatch(content)

    # ---- errors and progress -----------------------------------------------------------------
    @contextmanager
    def reporting(self):
        """Run a block; on an exception show it in ``error`` (and re-raise nothing). Clears old errors."""
        self.error = ""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - shown to the user, who is the one who can act on it
            self.error = describe(exc)
            self.progress = {}

    @contextmanager
    def busy(self, message: str, fraction: float | None = None):
        """Show ``message`` as progress while the block runs; :meth:`step` updates it."""
        self.progress = {"message": message, "fraction": fraction, "started": time.time()}
        try:
            yield self.step
        finally:
            self.progress = {}

    def step(self, message: str, fraction: float | None = None) -> None:
        started = self.progress.get("started", time.time())
        self.progress = {"message": message, "fraction": fraction, "started": started}


def describe(exc: BaseException) -> str:
    """The text users see for an error: input errors as they are, others with their type."""
    from ..model import InputError

    if isinstance(exc, InputError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
