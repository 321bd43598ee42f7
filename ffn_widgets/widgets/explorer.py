"""``Explorer``: one prompt, every layer's MLP at a glance — the all-in-one view.

A prompt box, the target selector, the activation heatmap (layers × tokens; click a cell for its top
neurons), the logit lens, and a slot where other views (neuron card, sliders, causal trace, editor) are
placed with :meth:`Explorer.show`. Each part also exists on its own (:mod:`.prompt_views`, :mod:`.neuron_list`).
A new prompt shows its heatmap after one forward pass; the tables, the lens and the value tokens follow as
they are ready (see :mod:`.prompt_views`).

    ex = fw.Explorer(lm, "The Eiffel Tower is located in the city of")
    ex.on_neuron_selected(lambda layer, neuron: ex.show(fw.NeuronCard(lm, layer, neuron), f"L{layer}.N{neuron}"))
    ex
"""
from __future__ import annotations

import traitlets
from ipywidgets import DOMWidget, widget_serialization

from ..model import LM, InputError
from .prompt_views import PromptView


class Explorer(PromptView):
    """Prompt box, target, activation heatmap + neuron list, logit lens, and a slot for another view."""

    view = traitlets.Unicode("explorer").tag(sync=True)
    slot = traitlets.List(traitlets.Instance(DOMWidget)).tag(sync=True, **widget_serialization)
    slot_title = traitlets.Unicode("").tag(sync=True)

    def __init__(self, lm: LM, prompt: str, target: str | int | None = None, k: int = 8, **kwargs):
        super().__init__(lm, prompt, target, k, **kwargs)

    def show(self, widget: DOMWidget | None, title: str = "") -> None:
        """Place another view in the explorer's panel slot (``None`` empties it). The view stays a normal
        widget: its own gestures go to its own kernel object."""
        if widget is not None and not isinstance(widget, DOMWidget):
            raise InputError(f"show() takes a widget such as fw.NeuronCard(...), got {type(widget).__name__}.")
        with self.hold_sync():
            self.slot = [] if widget is None else [widget]
            self.slot_title = "" if widget is None else str(title)

    @property
    def shown(self) -> DOMWidget | None:
        return self.slot[0] if self.slot else None

    def figure(self, stat: str | None = None):
        """The activation heatmap as shown (or with another statistic) as a plotly figure."""
        return self.heatmap_figure(stat)

    def lens_figure(self, stage: str | None = None, value: str | None = None):
        return self.computed.lens.figure(stage or self.lens_stage, value or self.lens_value)
