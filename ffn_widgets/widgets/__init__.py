"""anywidget views. ``ViewWidget`` is the platform (see ``base.py``); each module here is one view and
holds no science: it calls an analysis and packs the result (``serialize.pack``, ``payload``)."""
from . import dock  # noqa: F401  (sets ViewWidget.docking)
from .base import ViewWidget, bundle_built, handles
from .explorer import Explorer
from .neuron_list import NeuronList
from .prompt_views import ActivationHeatmap, LogitLens, PromptView
from .serialize import pack, unpack

__all__ = ["ViewWidget", "handles", "bundle_built", "pack", "unpack", "Explorer", "ActivationHeatmap", "LogitLens",
           "NeuronList", "PromptView"]
