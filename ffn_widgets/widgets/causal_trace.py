"""``CausalTrace``: ROME's three heatmaps (hidden state, MLP, attention), filled in as rows finish.

Tokens run down (the subject marked), layers across; hover a cell for p(target) ± its spread over noise
samples and the indirect effect. Clicking an MLP cell lists the neurons of that layer at that token ranked
by contribution to the target; clicking a neuron calls ``on_neuron_selected`` callbacks (the explorer
opens its card). The trace runs as a task on the kernel's event loop, one batched forward per step, so
the notebook stays responsive and the model is never used from two threads; outside a kernel
:meth:`CausalTrace.wait` computes it in place.

    tr = fw.CausalTrace(lm, "The Eiffel Tower is located in the city of", "The Eiffel Tower")
    tr                                   # streams; Cancel stops it
    tr.wait().figure()                   # the finished TraceSet as a plotly figure
    fw.CausalTrace(lm, prompt, corrupted_prompt="The Colosseum is located in the city of")  # patching
    tr.show_in(explorer)                 # in the explorer's panel; neuron clicks open neuron cards there
    tr.open_editor(layer=5)              # a ROME editor at that layer, the MLP row as its layer hint

With an MLP cell selected the view offers "Edit here…", which does :meth:`CausalTrace.open_editor`: the editor
opens in the explorer's panel when the trace is in one, else below the trace (and as ``tr.editor``).
"""
from __future__ import annotations

import time

import traitlets
from ipywidgets import DOMWidget, widget_serialization

from ..analysis.neurons import top_neurons
from ..model import LM, InputError
from ..model.recent import remember
from ..tracing.results import TraceSet, TraceStream
from ..tracing.setup import prepare_patch, prepare_trace
from .base import ViewWidget, describe, handles
from .runner import StepRunner
from .serialize import neuron_rows, pack


class CausalTrace(ViewWidget):
    view = traitlets.Unicode("causal_trace").tag(sync=True)
    grid = traitlets.Dict({}).tag(sync=True)
    neurons = traitlets.Dict({}).tag(sync=True)
    selected = traitlets.Dict({}).tag(sync=True)
    editor_slot = traitlets.List(traitlets.Instance(DOMWidget)).tag(sync=True, **widget_serialization)

    def __init__(self, lm: LM, prompt: str, subject: str | None = None, target=None,
                 corrupted_prompt: str | None = None, kind="all", samples: int = 10, noise: float | None = None,
                 window: int = 10, seed: int = 0, check_target: bool = True, start: bool = True, **kwargs):
        super().__init__(**kwargs)
        if (subject is None) == (corrupted_prompt is None):
            raise InputError("Give either a subject to noise (causal tracing) or a corrupted_prompt "
                             "(activation patching), not both.")
        self.lm, self.subject = lm, subject
        self._asked = (prompt, subject, target, corrupted_prompt, kind, samples, noise, window, seed, check_target)
        self.editor = None  # the Editor opened from this trace (open_editor)
        self._explorer = None
        self._runner = StepRunner(self._on_step, self._ended)
        self._last_progress = 0.0
        self.title = f"Causal trace: {prompt}"
        self._prepare()
        self.follow_weights(lm, "mark")
        if start:
            self.start()

    def _prepare(self) -> None:
        """The setup (clean run, noise scale) and a fresh stream, on the model as it is now."""
        prompt, subject, target, corrupted, kind, samples, noise, window, seed, check = self._asked
        if corrupted is None:
            self.setup = prepare_trace(self.lm, prompt, subject, target, samples, noise, seed, check)
        else:
            self.setup = prepare_patch(self.lm, prompt, corrupted, target, check)
        self.stream = TraceStream(self.lm, self.setup, kind, window, progress=False)
        self._steps = self.stream.steps()
        self._status, self._run = "waiting", None
        self.weights_version, self.stale = self.stream.weights_version, ""
        self._publish()

    def _recompute(self) -> None:
        """Trace again on the current weights (the Recompute button of a trace that describes earlier ones)."""
        self._runner.stop()
        self._prepare()
        self.start()

    # ---- running -------------------------------------------------------------------------------
    def start(self) -> None:
        """Schedule the trace on the running event loop (a Jupyter kernel); without one, :meth:`wait`."""
        if not self._runner.running and self._status == "waiting":
            if self.stream.weights_version != self.lm.state_version:  # prepared on earlier weights
                self._prepare()
            self._runner.start(self._job(), lm=self.lm, restart=self._restart)

    def _job(self):
        """The trace as the step runner drives it: one batched forward (or one finished row) per step."""
        for row in self._steps:
            yield {"row": row}

    def _restart(self):
        """The weights moved between two steps: a fresh setup and stream on the current model."""
        self._prepare()
        return self._job()

    def _on_step(self, info: dict) -> None:
        if info.get("stage") == "restart":
            self.progress = {"message": info["message"], "fraction": None}
            return
        self._status = "running"
        if info["row"] is None:
            self._report_progress()
        else:
            self._publish()

    def _ended(self, status: str, value) -> None:
        if status == "done":
            status = "cancelled" if self.stream.engine.cancelled else "done"
            if status == "done":  # neuron cards on this prompt join it (their trace share)
                remember(self.lm, "trace", self.stream.result())
        elif status == "failed":
            self.error = describe(value)
        self._status, self.progress = status, {}
        self._publish()

    def _advance(self) -> bool:
        """One step (one batched forward); False when finished, cancelled or failed."""
        self.start()
        return self._runner.advance()

    def wait(self) -> TraceSet:
        """Finish the trace here and now (continuing where the background task is) and return it."""
        self.start()
        self._runner.finish()
        return self.result

    def cancel(self) -> None:
        self.stream.cancel()
        if self._status == "waiting":
            self._advance()

    @property
    def status(self) -> str:
        return self._status

    @property
    def result(self) -> TraceSet:
        """What is computed so far (unfinished cells are NaN)."""
        return self.stream.result()

    def _report_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress < 0.1:
            return
        self._last_progress = now
        done, total = self.stream.forwards_done, max(1, self.stream.engine.n_forwards)
        self.progress = {"message": f"Tracing: {done} of {total} batched runs", "fraction": done / total}

    def _publish(self) -> None:
        s, e = self.setup, self.stream.engine
        p_clean = getattr(e, "p_clean", None)
        p_corrupt = float(e.p_corrupt.mean()) if hasattr(e, "p_corrupt") else None
        scores = {k: pack(p.mean(-1).T, "float32") for k, p in self.stream.probs.items()}
        spread = {k: pack(p.std(-1, correction=0).T, "float32") for k, p in self.stream.probs.items()}
        self.grid = {"tokens": s.tokens, "subject": list(s.subject), "kinds": list(self.stream.kinds),
                     "n_layers": self.lm.n_layers, "window": self.stream.window, "target": s.target,
                     "p_clean": p_clean, "p_corrupted": p_corrupt, "samples": s.samples,
                     "corrupted_prompt": s.corrupted_prompt, "status": self._status,
                     "finished": len(self.stream.finished), "scores": scores, "spread": spread}

    # ---- gestures ------------------------------------------------------------------------------
    @handles("cancel")
    def _on_cancel(self, msg):
        self.cancel()

    @handles("select_cell")
    def _on_select_cell(self, msg):
        kind, layer, token = msg.get("kind"), int(msg.get("layer", -1)), int(msg.get("token", -1))
        self.lm.check_layer(layer)
        if not 0 <= token < len(self.setup.tokens):
            raise InputError(f"token must be in 0..{len(self.setup.tokens) - 1}, got {token}.")
        self.selected = {"kind": kind, "layer": layer, "token": token}
        if kind == "mlp":
            self.show_neurons(layer, token)

    def show_neurons(self, layer: int, token: int, k: int = 10) -> None:
        """List the neurons at (layer, token) ranked by contribution to the traced target."""
        if self._run is None or self._run.weights_version != self.weights_version:
            self._run = self.lm.run(self.setup.prompt)
        r = top_neurons(self.lm, self._run, layer, token, k=k, by="contribution", target=self.setup.target_id)
        self.neurons = neuron_rows(r, target=self.setup.target)

    @handles("open_editor")
    def _on_open_editor(self, msg):
        layer = msg.get("layer")
        self.open_editor(None if layer is None else self.lm.check_layer(int(layer)))

    @handles("select_neuron")
    def _on_select_neuron(self, msg):
        layer, neuron = self.lm.check_unit((int(msg["layer"]), int(msg["neuron"])))
        self.selected = {**self.selected, "neuron": neuron, "neuron_layer": layer}
        self._neuron_selected(layer, neuron)

    def show_in(self, explorer, title: str | None = None) -> "CausalTrace":
        """Place this trace in an :class:`~ffn_widgets.Explorer`'s panel; neuron clicks here reach the
        explorer's ``on_neuron_selected`` callbacks (which open neuron cards)."""
        explorer.show(self, title or f"Causal trace of {self.setup.target!r}")
        self.on_neuron_selected(explorer.select_neuron)
        self._explorer = explorer
        return self

    # ---- editing where the trace points --------------------------------------------------------
    def layer_hint(self):
        """The MLP row of indirect effects (p restored − p corrupted) at the last subject token ``[n_layers]``
        (NaN where not computed yet), or None when the trace has no MLP kind."""
        if "mlp" not in self.stream.kinds:
            return None
        return self.result["mlp"].indirect[:, self.setup.subject[1] - 1]

    def open_editor(self, layer: int | None = None, **kwargs):
        """An :class:`~ffn_widgets.Editor` for this prompt and subject at ``layer`` (default: the selected MLP
        cell's layer), with :meth:`layer_hint` under its layer chooser. Shown in the explorer's panel when this
        trace is in one, else below the trace; kept as ``self.editor``."""
        from .editor import Editor

        if layer is None:
            layer = self.selected.get("layer") if self.selected.get("kind") == "mlp" else None
        where = "last subject token" if self.setup.corrupted_prompt is None else "last patched token"
        editor = Editor(self.lm, self.setup.prompt, subject=self.subject, layer=layer, layer_hint=self.layer_hint(),
                        hint_label=f"MLP indirect effect at the {where}", **kwargs)
        self.editor = editor
        if self._explorer is not None:
            editor.show_in(self._explorer)
        else:
            self.editor_slot = [editor]
        return editor

    def _result(self):
        return self.result
