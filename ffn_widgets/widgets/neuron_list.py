"""``NeuronList``: the top neurons at one (layer, token), by |activation| or by contribution to a target,
with each value vector's top tokens. Clicking a row selects the neuron (``on_neuron_selected``).

    fw.NeuronList(lm, "The Eiffel Tower is located in the city of", layer=20, by="contribution")
"""
from __future__ import annotations

import traitlets

from ..analysis.neurons import NeuronRanking, top_neurons
from ..model import LM, InputError
from .base import ViewWidget, handles
from .serialize import neuron_rows


class NeuronList(ViewWidget):
    view = traitlets.Unicode("neurons").tag(sync=True)
    layer = traitlets.Int(0).tag(sync=True)
    position = traitlets.Int(-1).tag(sync=True)
    by = traitlets.Unicode("activation").tag(sync=True)
    rows = traitlets.Dict({}).tag(sync=True)
    selected = traitlets.Dict({}).tag(sync=True)

    def __init__(self, lm: LM, prompt: str, layer: int, position: int = -1, by: str = "activation",
                 target: str | int | None = None, k: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.lm, self.k, self.target = lm, k, target
        self.run_ = lm.run(prompt)
        self.ranking: NeuronRanking | None = None
        self.layer, self.position, self.by = lm.check_layer(layer), position, by
        self._refresh(raise_errors=True)

    @traitlets.observe("layer", "position", "by")
    def _changed(self, change):
        if getattr(self, "ranking", None) is not None:
            self._refresh()

    def _refresh(self, raise_errors: bool = False) -> None:
        if raise_errors:
            self._compute()
            return
        with self.reporting():
            self._compute()

    def _compute(self) -> None:
        r = top_neurons(self.lm, self.run_, self.layer, self.position, k=self.k, by=self.by, target=self.target)
        self.ranking = r
        target = self.lm.resolve_target(self.target, self.run_.logits[r.position])[1]
        self.rows = neuron_rows(r, by=r.by, tokens=self.run_.tokens, target=target)

    @handles("set_by")
    def _on_set_by(self, msg):
        if msg.get("by") not in ("activation", "contribution"):
            raise InputError(f"by must be 'activation' or 'contribution', got {msg.get('by')!r}.")
        self.by = msg["by"]

    @handles("select_neuron")
    def _on_select(self, msg):
        layer, neuron = self.lm.check_unit((int(msg["layer"]), int(msg["neuron"])))
        self.selected = {"layer": layer, "neuron": neuron}
        self._neuron_selected(layer, neuron)

    def _result(self):
        return self.ranking
