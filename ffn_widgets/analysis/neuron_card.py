"""Everything a neuron card shows, computed without any widget: key side, value side, agreement, prompt.

    card = fw.neuron_card(lm, 20, 1234, index=index, prompt="The Eiffel Tower is located in the city of")
    card.triggers[0].text, card.value.top[:3], card.agreement, card.prompt_acts
    card.figure(); card.to_frame()

- Key side: the neuron's top trigger prefixes from a :class:`TriggerIndex` and its activation histogram.
- Value side: the value vector's top promoted / suppressed tokens (:func:`ffn_widgets.value_tokens`).
- Agreement: which triggers were followed in the corpus by one of the value's top tokens.
- Prompt: the neuron's activation at each token and its contribution ``m_i·(W_U g v_i)[t]/σ`` to the target.
- Joined, when known (:mod:`.neuron_joins`): its knowledge-neuron score for the fact (``knowledge=``, or the newest
  :func:`~ffn_widgets.knowledge_neurons` of this prompt the kernel computed on these weights), its share of the
  MLP's indirect effect in a causal trace (``trace=``, or the newest trace of this prompt), and what the edits
  in ``lm.edits`` did to its value vector.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..memories.index import Trigger, TriggerIndex, bin_of
from ..model import LM, InputError
from .neurons import contributions
from .values import ValueTokens, value_tokens


@dataclass
class NeuronCardData:
    layer: int
    neuron: int
    value: ValueTokens
    triggers: list[Trigger] = field(default_factory=list)
    histogram: np.ndarray | None = None  # counts per bin (see trigger_index.histogram_edges)
    index_info: dict | None = None  # corpus, tokens mined, dtype of the index
    matches: list[int] = field(default_factory=list)  # trigger ranks whose next token is a value top token
    top_match: bool = False  # value's top token == next token of the top trigger
    prompt: str | None = None
    tokens: list[str] = field(default_factory=list)
    prompt_acts: np.ndarray | None = None  # [pos]
    contributions: np.ndarray | None = None  # [pos] to the target
    target: str | None = None
    target_id: int | None = None
    knowledge: dict | None = None  # neuron_joins.knowledge_score (+ "source": "given" or "kernel")
    trace: dict | None = None  # neuron_joins.trace_share (+ "source")
    edit: dict | None = None  # neuron_joins.edit_effect
    weights_version: int = -1  # the model state it was computed on (``LM.state_version``)

    @property
    def agreement(self) -> str:
        """One sentence on whether keys and value agree (Geva's test for this one memory)."""
        if not self.triggers:
            return "No trigger examples (no index given)."
        with_next = sum(t.next_token_id is not None for t in self.triggers)
        return (f"{len(self.matches)} of {with_next} trigger examples are followed by one of the value's top "
                f"{len(self.value.top_ids)} tokens; the value's top token {'is' if self.top_match else 'is not'} "
                "the token after the top trigger.")

    def prompt_bins(self) -> list[int]:
        return [] if self.prompt_acts is None else [bin_of(a) for a in self.prompt_acts]

    def to_frame(self):
        """The trigger examples, with whether each one's next token is among the value's top tokens."""
        import pandas as pd

        return pd.DataFrame([{"rank": t.rank, "activation": t.activation, "prefix": t.text, "token": t.token,
                              "next_token": t.next_token, "value_agrees": t.rank in self.matches}
                             for t in self.triggers])

    def figure(self):
        """Histogram (log count) with the prompt's activations marked, beside the value's token logits."""
        from plotly.subplots import make_subplots

        from .figure_layout import MIN_PLOT_PX, log_ticks, sized, title
        from ..memories.index import bin_labels

        tokens = [repr(t) for t, _ in self.value.top] + [repr(t) for t, _ in self.value.bottom]
        fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.06,
                            subplot_titles=("activations over the corpus", "value vector in vocabulary space"))
        if self.histogram is not None:
            fig.add_bar(x=bin_labels(), y=np.where(self.histogram > 0, self.histogram, np.nan), row=1, col=1,
                        name="count", marker_color="#4c78a8")
            fig.update_yaxes(type="log", **log_ticks(self.histogram.max(), max(MIN_PLOT_PX, 20 * len(tokens))),
                             row=1, col=1)
            for a in [] if self.prompt_acts is None else self.prompt_acts[-1:]:
                # by index: plotly.js reads a numeric-looking category name ("0.00977") as a position
                fig.add_vline(x=bin_of(a), line_color="#e45756", row=1, col=1)
        logits = [v for _, v in self.value.top] + [v for _, v in self.value.bottom]
        fig.add_bar(x=logits, y=tokens, orientation="h", row=1, col=2, name="logit",
                    marker_color=["#2a7ab8"] * len(self.value.top) + ["#c0392b"] * len(self.value.bottom))
        # the tokens go right of their panel, where automargin makes room for any length
        fig.update_yaxes(autorange="reversed", side="right", row=1, col=2)
        fig.update_xaxes(title_text="activation (signed log bins)", row=1, col=1)
        fig.update_xaxes(title_text="logit per unit activation", row=1, col=2)
        fig.update_layout(title=title(f"Neuron L{self.layer}.N{self.neuron}"), showlegend=False)
        return sized(fig, 20 * len(tokens), panel_titles=True, bottom=110)


def neuron_card(lm: LM, layer: int, neuron: int, index: TriggerIndex | None = None, prompt: str | None = None,
                target: str | int | None = None, k: int = 10, n_triggers: int | None = None,
                run=None, knowledge=None, trace=None, join: bool = True) -> NeuronCardData:
    """The card's contents for one neuron. ``target`` defaults to the model's own next-token prediction;
    ``run`` (an ``lm.run`` of ``prompt``) can be passed to reuse a forward pass. ``knowledge`` (a
    :class:`~ffn_widgets.KnowledgeNeurons`) and ``trace`` (a trace or trace set) are joined; without them the
    kernel's newest ones for this prompt are (``join=False``: none, and no edit check)."""
    lm.check_unit((layer, neuron))
    card = NeuronCardData(layer, neuron, value_tokens(lm, layer, neuron, k=k), weights_version=lm.state_version)
    if index is not None:
        if (index.n_layers, index.d_mlp) != (lm.n_layers, lm.d_mlp):
            raise InputError(f"The trigger index is for a model with {index.n_layers} layers x {index.d_mlp} "
                             f"neurons; this one has {lm.n_layers} x {lm.d_mlp}.")
        card.triggers = index.top(layer, neuron, n_triggers)
        card.histogram = index.histogram(layer, neuron)[0]
        card.index_info = {"corpus": index.manifest["corpus"]["name"], "tokens": index.tokens_mined,
                           "dtype": index.dtype, "complete": index.complete, "model": index.manifest["model"]}
        top = set(card.value.top_ids)
        card.matches = [t.rank for t in card.triggers if t.next_token_id in top]
        card.top_match = bool(card.triggers) and card.triggers[0].next_token_id == card.value.top_ids[0]
    if prompt is not None or run is not None:
        run = run if run is not None else lm.run(prompt, capture=("neurons", "resid_post"))
        card.prompt, card.tokens = run.prompt, list(run.tokens)
        card.prompt_acts = run.activations[layer, :, neuron].numpy().astype(np.float32)
        card.target_id, card.target = lm.resolve_target(lm.continuation(run.prompt, target), run.logits[-1])
        card.contributions = np.array([float(contributions(lm, run, layer, p, card.target_id)[neuron])
                                       for p in range(run.n_tokens)], dtype=np.float32)
    if join:
        _join(lm, card, knowledge, trace, k)
    return card


def _join(lm: LM, card: NeuronCardData, knowledge, trace, k: int) -> None:
    """Given results must fit (their errors raise); ones recalled from the kernel are joined if they do."""
    from ..model.recent import recall
    from .neuron_joins import edit_effect, knowledge_score, one_trace, trace_share

    unit = (card.layer, card.neuron)
    for name, given, kind, compute in (("knowledge", knowledge, "knowledge", knowledge_score),
                                       ("trace", trace, "trace", trace_share)):
        source = "given"
        if given is None and card.prompt is not None:
            given = recall(lm, kind, lambda r: (r if kind == "knowledge" else one_trace(r)).prompt == card.prompt)
            source = "kernel"
        if given is None:
            continue
        try:
            setattr(card, name, {**compute(lm, *unit, given), "source": source})
        except InputError:
            if source == "given":
                raise
    card.edit = edit_effect(lm, *unit, k=k)


__all__ = ["NeuronCardData", "neuron_card"]

