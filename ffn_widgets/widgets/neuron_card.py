"""``NeuronCard``: one neuron as a key-value memory — its corpus triggers, activation histogram, value
tokens, whether the two agree, and what it does on the current prompt; joined to it, what else the kernel
knows (its knowledge-neuron score, its share of a causal trace's MLP effect, what edits did to its value),
and a slider that scales it and shows the prediction change.

    index = fw.mine_triggers(lm, fw.load_corpus())
    fw.NeuronCard(lm, 20, 1234, index=index, prompt="The Eiffel Tower is located in the city of")
    fw.NeuronCard(lm, 20, 1234, prompt=prompt, knowledge=kn, trace=trace)   # or found in the kernel
    card.scale(0.0)                           # what the prediction does with the neuron off
    fw.NeuronCard.follow(explorer, index)     # a card opens in the explorer's slot on every neuron click

The science lives in :func:`ffn_widgets.analysis.neuron_card.neuron_card`; this class only serialises it. Corpus and
model text travel as JSON strings and are inserted in the browser with ``textContent``.
"""
from __future__ import annotations

import math

import traitlets

from ..analysis.neuron_card import NeuronCardData, neuron_card
from ..analysis.neuron_joins import scaled_prediction
from ..analysis.scaling import SliderEngine
from ..memories.index import TriggerIndex, bin_labels
from ..model import LM, InputError
from .base import ViewWidget, handles
from .serialize import pack
from .sliders import SCALE_RANGE


class NeuronCard(ViewWidget):
    view = traitlets.Unicode("neuron_card").tag(sync=True)
    card = traitlets.Dict({}).tag(sync=True)
    scaled = traitlets.Dict({}).tag(sync=True)  # the slider's answer: neuron_joins.scaled_prediction + seq
    scale_range = traitlets.List(list(SCALE_RANGE)).tag(sync=True)

    def __init__(self, lm: LM, layer: int, neuron: int, index: TriggerIndex | None = None,
                 prompt: str | None = None, target: str | int | None = None, k: int = 10, run=None,
                 knowledge=None, trace=None, **kwargs):
        """``run`` (an ``lm.run`` of ``prompt``, e.g. the explorer's) saves the prompt's forward pass;
        ``knowledge`` / ``trace`` are joined to every neuron shown (see :func:`neuron_card`)."""
        super().__init__(**kwargs)
        self.lm, self.index, self.k = lm, index, k
        self.knowledge, self.trace = knowledge, trace
        self.prompt, self.target = (run.prompt if run is not None else prompt), target
        self._run = run
        self._engine: tuple | None = None  # (prompt, target, weights version, SliderEngine)
        self.data: NeuronCardData | None = None
        self.set_neuron(layer, neuron)
        self.follow_weights(lm, "recompute")

    # ---- the Python API ------------------------------------------------------------------
    def set_neuron(self, layer: int, neuron: int) -> None:
        """Show another neuron (the prompt's forward pass is reused while the weights stay the same)."""
        stale_run = self._run is not None and self._run.weights_version != self.lm.state_version
        if self.prompt is not None and (self._run is None or stale_run):
            self._run = self.lm.run(self.prompt, capture=("neurons", "resid_post"))
        self.data = neuron_card(self.lm, layer, neuron, self.index, target=self.target, k=self.k, run=self._run,
                                knowledge=self.knowledge, trace=self.trace)
        with self.hold_sync():
            self.card = {**serialise(self.data), "n_layers": self.lm.n_layers, "d_mlp": self.lm.d_mlp}
            self.scaled = {}
            self.title = f"L{layer}.N{neuron}"

    def scale(self, scale: float, seq: int = -1) -> dict:
        """The prediction on the prompt with this neuron's activation ×``scale`` at every position (the slider)."""
        if self.prompt is None:
            raise InputError("The slider needs a prompt: give the card prompt=... .")
        try:
            scale = float(scale)
        except (TypeError, ValueError):
            raise InputError(f"The scale must be a number, got {scale!r}.") from None
        if not math.isfinite(scale):
            raise InputError(f"The scale must be a finite number, got {scale!r}.")
        self.scaled = {**scaled_prediction(self._slider_engine(), self.data.layer, self.data.neuron, scale),
                       "seq": int(seq)}
        return self.scaled

    def _slider_engine(self) -> SliderEngine:
        """One engine per prompt, target and weights (it keeps the prompt's clean states)."""
        key = (self.prompt, self.data.target_id, self.lm.state_version)
        if self._engine is None or self._engine[:3] != key:
            self._engine = (*key, SliderEngine(self.lm, self.prompt, self.data.target_id, k=5))
        return self._engine[3]

    def set_prompt(self, prompt: str | None, target: str | int | None = None) -> None:
        """Show the same neuron on another prompt (``None``: no prompt section)."""
        run = None if prompt is None else self.lm.run(prompt, capture=("neurons", "resid_post"))
        self.prompt, self.target, self._run = prompt, target, run
        self.set_neuron(self.data.layer, self.data.neuron)

    @classmethod
    def follow(cls, explorer, index: TriggerIndex | None = None, **kwargs) -> "NeuronCard | None":
        """Open a card in ``explorer``'s slot whenever a neuron is selected there; one card is reused,
        following the explorer's prompt and target."""
        state = {"card": None}

        def open_card(layer: int, neuron: int) -> None:
            run, target = explorer.run, getattr(explorer, "target", None) or None
            card = state["card"]
            if card is None:
                card = state["card"] = cls(explorer.lm, layer, neuron, index=index, target=target, run=run, **kwargs)
            else:
                card.prompt, card.target, card._run = run.prompt, target, run
                card.set_neuron(layer, neuron)
            explorer.show(card, f"Neuron L{layer}.N{neuron}")

        explorer.on_neuron_selected(open_card)
        return state["card"]

    def _recompute(self) -> None:
        """The weights moved: value tokens, activations and joins of the same neuron anew."""
        self.set_neuron(self.data.layer, self.data.neuron)

    def _result(self):
        return self.data

    # ---- gestures ------------------------------------------------------------------------
    @handles("set_neuron")
    def _on_set_neuron(self, msg):
        try:
            layer, neuron = int(msg["layer"]), int(msg["neuron"])
        except (KeyError, TypeError, ValueError):
            raise InputError("Layer and neuron must be whole numbers.") from None
        with self.busy(f"Loading L{layer}.N{neuron}…"):
            self.set_neuron(layer, neuron)

    @handles("scale")
    def _on_scale(self, msg):
        self.scale(msg.get("scale"), int(msg.get("seq", -1)))


def serialise(d: NeuronCardData) -> dict:
    """The card as a synced dict: text as JSON strings, arrays as binary buffers."""
    out = {
        "layer": d.layer, "neuron": d.neuron, "agreement": d.agreement,
        "value": {"top": [[t, float(v)] for t, v in d.value.top], "bottom": [[t, float(v)] for t, v in d.value.bottom]},
        "triggers": [{"rank": t.rank, "before": t.before, "token": t.token, "next": t.next_token,
                      "activation": t.activation, "agrees": t.rank in d.matches, "sentence": t.sentence_text}
                     for t in d.triggers],
        "index": d.index_info,
    }
    if d.histogram is not None:
        out["histogram"] = {"counts": pack(d.histogram.astype("int64").clip(max=2 ** 31 - 1), "int32"),
                            "labels": bin_labels(), "prompt_bins": d.prompt_bins()}
    if d.prompt_acts is not None:
        out["prompt"] = {"tokens": d.tokens, "acts": pack(d.prompt_acts, "float32"),
                         "contrib": pack(d.contributions, "float32"), "target": d.target, "text": d.prompt}
    for name in ("knowledge", "trace", "edit"):  # plain JSON (numbers, text); NaN as None
        if getattr(d, name) is not None:
            out[name] = _plain(getattr(d, name))
    return out


def _plain(v):
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
