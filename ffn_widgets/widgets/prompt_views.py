"""Views of one prompt: ``ActivationHeatmap``, ``LogitLens`` and the state they share with the explorer.

Editing the prompt (``widget.prompt = ...`` or the prompt box) reruns the model, and a selected cell moves to
the new prompt's last token (where the next-token prediction is read); changing the target
recomputes contributions and the lens from the cached run. All data for hovering and clicking is sent
with the run (see :mod:`.payload`), so those gestures stay in the browser.

A new prompt paints at once: the heatmap goes out after the one forward pass, and the neuron tables, the
logit lens (the stage shown; the other when it is asked for) and the value vectors' top tokens follow as
separate state updates, computed a chunk per event-loop turn in a kernel (:class:`.runner.StepRunner`), so
gestures are answered in between and a newer prompt replaces the parts still coming for an older one.
A stream started by a cell (``fw.Explorer(...)``, ``ex.prompt = ...``) is finished when that cell ends, so
run-all and headless runs (nbclient, nbconvert) save complete widgets; outside a kernel everything is
computed before the assignment returns, and :meth:`PromptView.wait` finishes a stream at once.

    fw.ActivationHeatmap(lm, "The Eiffel Tower is located in the city of")
    fw.LogitLens(lm, "The Eiffel Tower is located in the city of", target=" Paris").figure()
"""
from __future__ import annotations

import time
import weakref

import torch
import traitlets

from ..analysis.neurons import NeuronRanking, top_neurons
from ..analysis.prompt_summary import STAGES, PromptSummary, start_summary
from ..analysis.values import value_top_ids
from ..model import LM, InputError
from .base import ViewWidget, describe, handles
from .payload import pack_values, run_payload
from ..model.watch import WeightsChanged
from .runner import StepRunner
from .serialize import pack

STATS = ("max_act", "contrib", "neuron")
VALUE_K = 3  # value-vector tokens per listed neuron


class PromptView(ViewWidget):
    """Shared state of the prompt views; subclasses choose the ``view`` and which analyses to send."""

    prompt = traitlets.Unicode("").tag(sync=True)
    target = traitlets.Unicode("").tag(sync=True)  # "" = the model's own top prediction
    data = traitlets.Dict({}).tag(sync=True)
    values = traitlets.Dict({}).tag(sync=True)
    neuron = traitlets.Dict({}).tag(sync=True)  # {"layer", "neuron", "acts"} of the selected neuron
    cell = traitlets.Dict({}).tag(sync=True)  # {"layer", "token"} clicked in the heatmap
    stat = traitlets.Unicode("max_act").tag(sync=True)
    rank_by = traitlets.Unicode("contribution").tag(sync=True)
    lens_stage = traitlets.Unicode("post").tag(sync=True)
    lens_value = traitlets.Unicode("prob").tag(sync=True)

    _with_lens = True
    _with_top = True

    def __init__(self, lm: LM, prompt: str, target: str | int | None = None, k: int = 8, **kwargs):
        if not isinstance(lm, LM):
            raise InputError(f"Pass a model loaded with fw.load_model(), got {type(lm).__name__}.")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= lm.d_mlp:
            raise InputError(f"k (neurons per cell) must be an integer in 1..{lm.d_mlp}, got {k!r}.")
        super().__init__(**kwargs)
        self.lm, self.k = lm, k
        self.computed: PromptSummary | None = None
        self._runner = StepRunner(self._streamed, self._stream_ended)
        self._pending: list[str] = []  # parts of the current prompt still coming
        self._sent_values: set[tuple[int, int]] = set()
        self._progress_sent = 0.0
        lm.encode(prompt)  # bad prompts fail here, before any widget is shown
        self.target = "" if target is None else (target if isinstance(target, str) else lm.resolve_target(target)[1])
        self.prompt = prompt  # runs the model (observer)
        self.follow_weights(lm, "recompute")
        if self.computed is None or self.error:
            raise InputError(self.error or "The model could not be run on this prompt.")

    # ---- recomputation ----------------------------------------------------------------------
    @traitlets.observe("prompt")
    def _prompt_changed(self, change):
        if not getattr(self, "_reverting", False) and not self._refresh(rerun=True):
            self._keep_consistent("prompt", change["old"])

    @traitlets.observe("target")
    def _target_changed(self, change):
        if self.computed is not None and not getattr(self, "_reverting", False) and not self._refresh(rerun=False):
            self._keep_consistent("target", change["old"])

    @traitlets.observe("lens_stage")
    def _lens_stage_changed(self, change):
        """The other stage of the lens is computed when it is first shown (a stream going on does it itself)."""
        c = getattr(self, "computed", None)  # None while the constructor sets the traits
        if c is None or not self._with_lens or self._runner.running or self._shown_stage() in self._sent_stages():
            return
        if c.run.weights_version != self.lm.state_version:  # what is on screen is of earlier weights: all anew
            self._refresh(rerun=True)
            return
        with self.reporting():
            self._pending = [*self._pending, "lens"]
            self._publish(c)
            if self._runner.start(self._lens_part(c), lm=self.lm):
                _finish_when_the_cell_ends(self)
            else:
                self._runner.finish()

    def _keep_consistent(self, name: str, old: str) -> None:
        """After a failed rerun the old picture stays, so the prompt/target go back to what it shows
        (the error message says what was wrong with the new value)."""
        if self.error and self.computed is not None:
            self._reverting = True
            try:
                setattr(self, name, old)
            finally:
                self._reverting = False

    @traitlets.validate("stat")
    def _valid_stat(self, proposal):
        if proposal["value"] not in STATS:
            raise traitlets.TraitError(f"stat must be one of {', '.join(STATS)}, got {proposal['value']!r}.")
        return proposal["value"]

    def _refresh(self, rerun: bool) -> bool:
        """Send the heatmap from one forward pass, then stream the other parts (:meth:`_stream`); False if the
        new prompt or target failed before anything was sent (the old picture stays)."""
        sent = False
        with self.reporting():
            started = time.time()
            self.progress = {"message": "Running the model" if rerun else "Recomputing for the new target",
                             "fraction": None, "started": started}
            reuse = not rerun and self.computed is not None and self.computed.run.weights_version == self.lm.state_version
            source = self.computed.run if reuse else self.prompt  # a run of earlier weights is never reused
            c = start_summary(self.lm, source, self.target or None, grids=self._with_top)
            self._runner.stop()  # the parts still coming for the old prompt or target: the newest wins
            self.computed, self._sent_values = c, set()
            self._pending = [part for part, on in (("top", self._with_top), ("lens", self._with_lens)) if on]
            with self.hold_sync():  # one message: the heatmap, the moved selection, the neuron's activations
                if self.cell and rerun:
                    # a new prompt: the selection follows its last token, where the next token is read
                    self.cell = {"layer": self.cell.get("layer", self.lm.n_layers - 1), "token": c.run.n_tokens - 1}
                self._publish(c)
                if self.neuron:
                    self._send_neuron(self.neuron["layer"], self.neuron["neuron"])
                self.progress = {"message": "Neuron tables and logit lens", "fraction": None, "started": started}
            sent = True
            self.weights_version, self.stale = c.run.weights_version, ""
            if self._runner.start(self._stream(c), lm=self.lm):
                _finish_when_the_cell_ends(self)
            else:
                self._runner.finish()  # no event loop (a script, a test): everything before returning
        return sent

    def _recompute(self) -> None:
        """The weights moved: the heatmap from a fresh forward, then the other parts streamed again."""
        self._refresh(rerun=True)

    def _stream(self, c: PromptSummary):
        """The parts after the heatmap, each published when ready: tables, the selected cell's value tokens,
        the lens stage shown, then every listed neuron's value tokens, a layer per step."""
        if self._with_top:
            c.rank_neurons(self.k)
            self._pending.remove("top")
            self._publish(c)
            yield {"message": "Value tokens of the selected cell"}
            self._cell_values(c)
            yield {"message": "Logit lens"}
        yield from self._lens_part(c)
        if self._with_top:
            n, pairs, tops = self.lm.n_layers, [], []
            for layer in range(n):
                yield from self._lens_part(c)  # a stage switched to meanwhile goes first
                self._cell_values(c)  # and so do the rows of a cell clicked meanwhile
                listed = c.listed(layer)
                pairs.append(torch.stack([torch.full_like(listed, layer), listed], -1))
                tops.append(value_top_ids(self.lm, layer, listed.tolist(), VALUE_K))
                yield {"message": "Reading value vectors", "fraction": (layer + 1) / n}
            self.values = pack_values(self.lm, torch.cat(pairs), torch.cat(tops))  # = value_payload(lm, c)
        yield from self._lens_part(c)

    def _lens_part(self, c: PromptSummary):
        """The lens stage shown, unless it was sent already."""
        stage = self._shown_stage()
        if not self._with_lens or stage in self._sent_stages():
            return
        name = "after each block" if stage == "post" else "before each MLP"
        for fraction in c.lens_steps(stage):
            yield {"message": f"Logit lens ({name})", "fraction": fraction}
        self._pending = [p for p in self._pending if p != "lens"]
        self._publish(c)

    def _shown_stage(self) -> str:
        return "mid" if self.lens_stage == "mid" else "post"

    def _sent_stages(self) -> set[str]:
        return set((self.data or {}).get("lens") or {})

    def _publish(self, c: PromptSummary) -> None:
        self.data = run_payload(self.lm, c, self._pending)

    def _cell_values(self, c: PromptSummary) -> None:
        """Send the value tokens of the selected cell's neurons, if some are missing: the rows on screen."""
        layer, pos = self.cell.get("layer"), self.cell.get("token")
        if not isinstance(layer, int) or not isinstance(pos, int) or not c.top:
            return
        if not (0 <= layer < self.lm.n_layers and 0 <= pos < c.run.n_tokens):
            return
        pairs = {(layer, int(i)) for i in c.listed(layer, pos)}
        if not pairs <= self._sent_values:
            self._send_values(self._sent_values | pairs)

    def _send_values(self, pairs: set[tuple[int, int]]) -> None:
        """``values`` for these (layer, neuron) pairs, in (layer, neuron) order like :func:`.payload.value_payload`."""
        by_layer: dict[int, list[int]] = {}
        for layer, n in sorted(pairs):
            by_layer.setdefault(layer, []).append(n)
        tops = [value_top_ids(self.lm, layer, ns, VALUE_K) for layer, ns in by_layer.items()]
        top = torch.cat(tops) if tops else torch.empty(0, VALUE_K, dtype=torch.long)
        self.values = pack_values(self.lm, torch.tensor(sorted(pairs), dtype=torch.long).reshape(-1, 2), top)
        self._sent_values = set(pairs)

    def _streamed(self, info: dict) -> None:
        """Progress of the stream once it has run half a second, then at most five messages a second: a
        stream is mostly shorter, and each message costs the browser a repaint beside the computing kernel."""
        now = time.time()
        started = self.progress.get("started", now)
        if now - started < 0.5 or now - self._progress_sent < 0.2:
            return
        self._progress_sent = now
        self.progress = {"message": info.get("message", ""), "fraction": info.get("fraction"), "started": started}

    def _stream_ended(self, status: str, value) -> None:
        if isinstance(value, WeightsChanged):  # an edit landed mid-stream: start again on the new weights
            self.recompute()
            return
        with self.hold_sync():
            self.progress = {}
            if status == "failed":
                self.error = describe(value)
                if self._pending and self.computed is not None:
                    self._pending = []
                    self._publish(self.computed)

    def wait(self, both_lens_stages: bool = False) -> None:
        """Compute the parts still coming here and now (a script that reads ``data`` right after a change);
        ``both_lens_stages`` sends the lens stage not shown too (a page saved without a kernel to ask)."""
        self._runner.finish()
        c = self.computed
        if both_lens_stages and self._with_lens and c is not None and self._sent_stages() != set(STAGES):
            for stage in STAGES:
                for _ in c.lens_steps(stage):
                    pass
            self._publish(c)

    def settle(self) -> None:
        """Before an export: every part and both lens stages, so a click in the saved page finds what the kernel
        would have sent."""
        self.wait(both_lens_stages=True)

    # ---- gestures ---------------------------------------------------------------------------
    @handles("set_prompt")
    def _on_set_prompt(self, msg):
        self.prompt = str(msg.get("prompt", ""))

    @handles("set_target")
    def _on_set_target(self, msg):
        target = msg.get("target", "")
        if isinstance(target, int):
            target = self.lm.resolve_target(target)[1]
        self.target = str(target)

    @handles("select_neuron")
    def _on_select_neuron(self, msg):
        self.select_neuron(int(msg["layer"]), int(msg["neuron"]))

    def select_neuron(self, layer: int, neuron: int) -> None:
        """Show this neuron's activations in the heatmap and tell the ``on_neuron_selected`` callbacks."""
        self.lm.check_unit((layer, neuron))
        self._send_neuron(layer, neuron)
        self.stat = "neuron"
        self._neuron_selected(layer, neuron)

    def _send_neuron(self, layer: int, neuron: int) -> None:
        acts = self.computed.run.activations[layer, :, neuron]
        self.neuron = {"layer": layer, "neuron": neuron, "acts": pack(acts, "float32")}

    # ---- exports ----------------------------------------------------------------------------
    @property
    def run(self):
        return self.computed.run

    def top_neurons(self, layer: int | None = None, position: int | None = None, by: str | None = None,
                    k: int | None = None) -> NeuronRanking:
        """The neuron list of a cell (default: the clicked one, else the last token of the top layer)."""
        layer = self.cell.get("layer", self.lm.n_layers - 1) if layer is None else layer
        position = self.cell.get("token", -1) if position is None else position
        return top_neurons(self.lm, self.computed.run, layer, position, k=k or self.k, by=by or self.rank_by,
                           target=self.computed.target_id)

    def heatmap_figure(self, stat: str | None = None):
        """The activation heatmap as a plotly figure (tokens × layers, coloured by the statistic)."""
        neuron = (self.neuron["layer"], self.neuron["neuron"]) if self.neuron else None
        return self.computed.figure(stat or self.stat, neuron)


_UNFINISHED: weakref.WeakSet = weakref.WeakSet()
_HOOKED: list = []


def _finish_when_the_cell_ends(view: PromptView) -> None:
    """Finish ``view``'s stream after the running cell (IPython's ``post_run_cell``): the heatmap is on screen
    already and the parts follow as they are computed, and a notebook run headless saves them all. A stream
    started from the browser between cells runs as a task and is usually done before the next cell ends."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None:
        return
    _UNFINISHED.add(view)
    if not _HOOKED:
        ip.events.register("post_run_cell", _finish_streams)
        _HOOKED.append(ip)


def _finish_streams(result=None) -> None:
    for view in list(_UNFINISHED):
        _UNFINISHED.discard(view)
        view.wait()


class ActivationHeatmap(PromptView):
    """Tokens × layers coloured by a statistic; click a cell for its top neurons (no kernel round trip)."""

    view = traitlets.Unicode("heatmap").tag(sync=True)
    _with_lens = False

    def __init__(self, lm: LM, prompt: str, target: str | int | None = None, stat: str = "max_act", k: int = 8,
                 **kwargs):
        super().__init__(lm, prompt, target, k, stat=stat, **kwargs)

    def figure(self, stat: str | None = None):
        return self.heatmap_figure(stat)


class LogitLens(PromptView):
    """Layers × positions: each cell's top token, coloured by the target's probability or rank."""

    view = traitlets.Unicode("lens").tag(sync=True)
    _with_top = False

    def __init__(self, lm: LM, prompt: str, target: str | int | None = None, stage: str = "post",
                 value: str = "prob", **kwargs):
        if stage not in ("post", "mid"):
            raise InputError(f"stage must be 'post' (after each block) or 'mid' (before each MLP), got {stage!r}.")
        if value not in ("prob", "rank"):
            raise InputError(f"value must be 'prob' or 'rank', got {value!r}.")
        super().__init__(lm, prompt, target, lens_stage=stage, lens_value=value, **kwargs)

    @property
    def lens(self):
        return self.computed.lens

    def figure(self, stage: str | None = None, value: str | None = None):
        return self.computed.lens.figure(stage or self.lens_stage, value or self.lens_value)
