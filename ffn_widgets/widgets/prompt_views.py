"""Views of one prompt: ``ActivationHeatmap``, ``LogitLens`` and the state they share with the explorer.

Editing the prompt (``widget.prompt = ...`` or the prompt box) reruns the model, and a selected cell moves to
the new prompt's last token (where the next-token prediction is read); changing the target
recomputes contributions and the lens from the cached run. All data for hovering and clicking is sent
with the run (see :mod:`.payload`), so those gestures stay in the browser.

    fw.ActivationHeatmap(lm, "The Eiffel Tower is located in the city of")
    fw.LogitLens(lm, "The Eiffel Tower is located in the city of", target=" Paris").figure()
"""
from __future__ import annotations

import traitlets

from ..analysis.neurons import NeuronRanking, top_neurons
from ..analysis.prompt_summary import PromptSummary, summarize
from ..model import LM, InputError
from .base import ViewWidget, handles
from .payload import run_payload, value_payload
from .serialize import pack

STATS = ("max_act", "contrib", "neuron")


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
        super().__init__(**kwargs)
        self.lm, self.k = lm, k
        self.computed: PromptSummary | None = None
        lm.encode(prompt)  # bad prompts fail here, before any widget is shown
        self.target = "" if target is None else (target if isinstance(target, str) else lm.resolve_target(target)[1])
        self.prompt = prompt  # runs the model (observer)
        if self.computed is None or self.error:
            raise InputError(self.error or "The model could not be run on this prompt.")

    # ---- recomputation ----------------------------------------------------------------------
    @traitlets.observe("prompt")
    def _prompt_changed(self, change):
        if not getattr(self, "_reverting", False):
            self._refresh(rerun=True)
            self._keep_consistent("prompt", change["old"])

    @traitlets.observe("target")
    def _target_changed(self, change):
        if self.computed is not None and not getattr(self, "_reverting", False):
            self._refresh(rerun=False)
            self._keep_consistent("target", change["old"])

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

    def _refresh(self, rerun: bool) -> None:
        with self.reporting(), self.busy("Running the model" if rerun else "Recomputing for the new target") as step:
            source = self.prompt if rerun or self.computed is None else self.computed.run
            run = self.lm.run(source) if isinstance(source, str) else source
            step("Logit lens and contributions")
            c = summarize(self.lm, run, self.target or None, self.k, lens=self._with_lens, top=self._with_top)
            self.computed = c
            with self.hold_sync():  # the browser gets the moved selection together with the new tokens
                if self.cell and rerun:
                    # a new prompt: the selection follows its last token, where the next token is read
                    self.cell = {"layer": self.cell.get("layer", self.lm.n_layers - 1), "token": run.n_tokens - 1}
                self.data = run_payload(self.lm, c)
            if self.neuron:
                self._send_neuron(self.neuron["layer"], self.neuron["neuron"])
            if self._with_top:
                self.values = value_payload(self.lm, c, step=step)

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
