"""ffn_widgets: see and edit how a transformer's feed-forward layers store facts, live in a notebook.

    import ffn_widgets as fw
    lm = fw.load_model()                                   # SmolLM2-135M-Instruct, offline
    run = lm.run("The Eiffel Tower is located in the city of")
    fw.logit_lens(lm, run.prompt, target=" Paris").figure()
    fw.Explorer(lm, run.prompt)                            # the all-in-one widget

Analyses are importable without any widget machinery; widgets are loaded lazily on first use.
"""
from importlib import import_module

from .model import DEFAULT_MODEL, Edit, InputError, LM, ModelNotFoundError, Run, load_model

__version__ = "0.1.0"

# name -> module that defines it; imported on first attribute access (keeps `import ffn_widgets` light)
_LAZY = {
    "logit_lens": "lens", "LensResult": "lens",
    "value_tokens": "values", "ValueTokens": "values",
    "load_facts": "facts",
    "top_neurons": "neurons", "NeuronRanking": "neurons", "contributions": "neurons",
    "Explorer": "widgets.explorer", "ActivationHeatmap": "widgets.prompt_views", "LogitLens": "widgets.prompt_views",
    "NeuronList": "widgets.neuron_list",
    "load_corpus": "corpus", "Corpus": "corpus",
    "mine_triggers": "triggers", "TriggerIndex": "trigger_index", "Trigger": "trigger_index",
    "load_triggers": "trigger_index",
    "geva_stats": "geva", "GevaStats": "geva", "token_dependence": "geva",
    "neuron_card": "cards", "NeuronCardData": "cards", "NeuronCard": "widgets.neuron_card",
    "SliderEngine": "sliders", "Prediction": "sliders",
    "knowledge_neurons": "knowledge", "KnowledgeNeurons": "knowledge", "knowledge_experiment": "knowledge",
    "KnowledgeExperiment": "knowledge", "NeuronSliders": "widgets.sliders",
    "causal_trace": "tracing", "patch_trace": "tracing", "TraceResult": "tracing", "TraceSet": "tracing",
    "TraceStream": "tracing", "trace_many": "trace_average", "TraceAverage": "trace_average",
    "CausalTrace": "widgets.causal_trace",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ffn_widgets' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["load_model", "LM", "Run", "Edit", "InputError", "ModelNotFoundError", "DEFAULT_MODEL", *_LAZY]
