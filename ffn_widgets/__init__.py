"""ffn_widgets: see and edit how a transformer's feed-forward layers store facts, live in a notebook.

    import ffn_widgets as fw
    lm = fw.load_model()                                   # SmolLM2-135M-Instruct, offline
    run = lm.run("The Eiffel Tower is located in the city of")
    fw.logit_lens(lm, run.prompt, target=" Paris").figure()
    fw.Explorer(lm, run.prompt)                            # the all-in-one widget

Analyses are importable without any widget machinery; widgets are loaded lazily on first use.
"""
from importlib import import_module

from .model import DEFAULT_MODEL, LM, Edit, InputError, Intervention, ModelNotFoundError, Run, load_model

__version__ = "0.1.0"

# name -> module that defines it; imported on first attribute access (keeps `import ffn_widgets` light)
_LAZY = {name: module for module, names in {
    "analysis.lens": ["logit_lens", "LensResult"],
    "analysis.values": ["value_tokens", "ValueTokens", "value_top_tokens"],
    "analysis.neurons": ["top_neurons", "NeuronRanking", "contributions"],
    "analysis.neuron_card": ["neuron_card", "NeuronCardData"],
    "analysis.geva_stats": ["geva_stats", "GevaStats", "token_dependence"],
    "analysis.scaling": ["SliderEngine", "Prediction"],
    "analysis.knowledge": ["knowledge_neurons", "KnowledgeNeurons", "knowledge_experiment", "KnowledgeExperiment"],
    "tracing.results": ["causal_trace", "patch_trace", "TraceResult", "TraceSet", "TraceStream"],
    "tracing.average": ["trace_many", "trace_many_steps", "TraceAverage"],
    "memories.corpus": ["load_corpus", "Corpus"],
    "memories.mining": ["mine_triggers"],
    "memories.index": ["TriggerIndex", "Trigger", "load_triggers", "cached_triggers"],
    "data.facts": ["load_facts", "fact_target"],
    "editing.rome": ["rome_edit", "RomeEdit", "RomeSettings", "default_layer"],
    "editing.stats": ["key_statistics"],
    "editing.memit": ["memit_edit", "alphaedit_edit", "BatchEdit", "MemitSettings"],
    "editing.report": ["edit_report"],
    "editing.evaluate": ["evaluate_edits", "edit_layer_sweep"],
    "editing.stability": ["edit_stability", "stability_steps", "stability_facts", "StabilityRun", "Collapse"],
    "widgets.explorer": ["Explorer"],
    "widgets.prompt_views": ["ActivationHeatmap", "LogitLens"],
    "widgets.neuron_list": ["NeuronList"],
    "widgets.neuron_card": ["NeuronCard"],
    "widgets.sliders": ["NeuronSliders"],
    "widgets.causal_trace": ["CausalTrace"],
    "widgets.stability": ["StabilityMonitor"],
    "editing.compare": ["compare_methods", "MethodComparison", "measured_runs", "runs_figure", "runs_table"],
    "widgets.editor": ["Editor"],
    "widgets.localize": ["Localize"],
    "widgets.trace_average": ["AveragedTrace"],
    "widgets.dock": ["dock", "undock", "panel", "Dock"],
    "editing.localization": ["localize", "localize_many", "Localization", "LocalizationSet"],
    "model.lm": ["current_model", "live_models"],
    "widgets.export": ["export_html"],
    "sharded.session": ["cluster", "Cluster", "ClusterError"],
}.items() for name in names}


def _jupyter_labextension_paths():
    """For `jupyter labextension develop`: an editable install has no share/ copy of the built extension."""
    return [{"src": "labextension", "dest": "ffn-widgets"}]


_SUBMODULES = ("lessons",)  # whole modules, imported on first use: fw.lessons.check(...)


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'ffn_widgets' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


__all__ = ["load_model", "LM", "Run", "Intervention", "Edit", "InputError", "ModelNotFoundError", "DEFAULT_MODEL", *_LAZY,
           *_SUBMODULES]
