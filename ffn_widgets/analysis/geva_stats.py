"""Geva et al. (2021)'s two layer-level statistics, computed from a trigger index and the model.

1. Agreement: per layer, the fraction of memories whose value's top token (``W_U (g ⊙ v_i)``, as in
   :mod:`ffn_widgets.analysis.values`) equals the token that followed the key's top trigger prefix in the corpus —
   against chance, measured by pairing values with the triggers of randomly permuted neurons (the next
   tokens are far from uniform, so 1/vocab alone flatters the model), and 1/vocab for reference.
2. Composition: per layer, over corpus positions, how often the top token of the whole MLP output
   differs from the top token of every single memory (``sign(m_i)·W_U(g ⊙ v_i)``: a negative coefficient
   predicts the value's bottom token). Geva found it differs in at least 68% of examples.

    stats = fw.geva_stats(lm, index)
    stats.figure("agreement"); stats.figure("composition"); stats.to_frame()
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..memories.index import TriggerIndex
from ..model import LM, InputError
from ..model.hooks import hooked
from .values import value_top_tokens


@dataclass
class GevaStats:
    """Per-layer statistics (arrays over ``layers``, fractions in 0..1)."""

    layers: np.ndarray
    agreement: np.ndarray  # value top token == next token of the top trigger
    agreement_any: np.ndarray  # ... of any of the top ``triggers`` triggers
    chance: np.ndarray  # the same as ``agreement`` with neurons' triggers permuted
    chance_any: np.ndarray
    uniform_chance: float  # 1 / vocab
    composition: np.ndarray  # layer output's top token differs from every memory's top token
    examples: int  # corpus positions used for ``composition``
    triggers: int
    top_memories: int | None
    weights_version: int = -1  # the model state it was computed on (``LM.state_version``)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"layer": self.layers, "agreement": self.agreement,
                             f"agreement_top{self.triggers}": self.agreement_any, "chance": self.chance,
                             f"chance_top{self.triggers}": self.chance_any, "composition": self.composition})

    def figure(self, which: str = "agreement"):
        """Plotly figure of one statistic: ``"agreement"`` or ``"composition"``."""
        import plotly.graph_objects as go

        from .figure_layout import integer_ticks, sized, title

        layers = self.layers
        fig = go.Figure()
        if which == "agreement":
            for y, name, dash in ((self.agreement, "value top = next token of top trigger", None),
                                  (self.agreement_any, f"... of any of top {self.triggers}", None),
                                  (self.chance, "chance (permuted neurons)", "dot"),
                                  (self.chance_any, f"chance, any of top {self.triggers}", "dot")):
                fig.add_scatter(x=layers, y=100 * y, name=name, mode="lines+markers", line_dash=dash)
            reference(fig, layers, 100 * self.uniform_chance, "1/vocab")
            fig.update_layout(title=title("Do values predict what follows their keys' triggers?"),
                              yaxis_title="% of memories")
        elif which == "composition":
            fig.add_bar(x=layers, y=100 * self.composition, name="differs from every memory")
            reference(fig, layers, 68, "Geva 2021: ≥ 68%")
            scope = "all memories" if self.top_memories is None else f"the {self.top_memories} strongest memories"
            fig.update_layout(title=title(f"Layer output's top token differs from that of {scope}",
                                          f"{self.examples:,} positions"), yaxis_title="% of positions",
                              yaxis_range=[0, 100])
        else:
            raise InputError(f"which must be 'agreement' or 'composition', got {which!r}.")
        fig.update_layout(xaxis={"title": "layer", **integer_ticks(len(layers))})
        return sized(fig, 260, lines=1 if which == "agreement" else 2)


def reference(fig, layers, y: float, name: str) -> None:
    """A dashed reference level named in the legend (a label on the plot would sit on a bar or a point)."""
    fig.add_scatter(x=[layers[0] - 0.5, layers[-1] + 0.5], y=[y, y], mode="lines", name=name, hoverinfo="skip",
                    line={"dash": "dash", "color": "grey", "width": 1})


def geva_stats(lm: LM, index: TriggerIndex, texts=None, *, layers=None, triggers: int | None = None, examples: int = 500,
               top_memories: int | None = None, permutations: int = 20, seed: int = 0) -> GevaStats:
    """Both statistics for ``layers`` (default all). ``texts`` (default: the index's own sentences) supply
    up to ``examples`` positions for the composition statistic; ``top_memories`` restricts "every memory"
    to the strongest ``|m_i|·‖g ⊙ v_i‖`` ones per position (``None``: every non-zero coefficient).

    Cost: every value of a layer is projected on the vocabulary once (cached per model and layer), and
    each example position's MLP output once per layer."""
    if index.n_layers != lm.n_layers or index.d_mlp != lm.d_mlp:
        raise InputError(f"The index was mined on a model with {index.n_layers} layers x {index.d_mlp} neurons; "
                         f"this model has {lm.n_layers} x {lm.d_mlp}.")
    triggers = index.k if triggers is None else triggers
    if not isinstance(triggers, int) or not 1 <= triggers <= index.k:
        raise InputError(f"triggers must be an integer in 1..{index.k}, got {triggers!r}.")
    layers = list(range(lm.n_layers)) if layers is None else [lm.check_layer(layer) for layer in layers]
    tops, bottoms = zip(*(value_top_tokens(lm, layer) for layer in layers))
    agree, agree_any, chance, chance_any = (np.zeros(len(layers)) for _ in range(4))
    rng = np.random.default_rng(seed)
    for i, layer in enumerate(layers):
        nxt = index.next_token_ids(layer)[:, :triggers]
        agree[i], agree_any[i] = _agreement(tops[i], nxt)
        runs = [_agreement(tops[i], nxt[rng.permutation(lm.d_mlp)]) for _ in range(permutations)]
        chance[i], chance_any[i] = np.mean(runs, axis=0)
    composition, n = memory_composition(lm, texts if texts is not None else index.sentences, layers, examples,
                                        top_memories, [t[:, 0] for t in tops], [b[:, 0] for b in bottoms])
    return GevaStats(np.asarray(layers), agree, agree_any, chance, chance_any, 1 / lm.W_U.shape[0], composition,
                     n, triggers, top_memories, lm.state_version)


def _agreement(top: np.ndarray, next_ids: np.ndarray) -> tuple[float, float]:
    """(fraction with top-1 trigger's next token == value top token, fraction with any trigger's)."""
    first = next_ids[:, 0]
    has = first >= 0
    match = next_ids == top[:, :1]
    any_has = (next_ids >= 0).any(1)
    return (float(match[has, 0].mean()) if has.any() else 0.0,
            float(match[any_has].any(1).mean()) if any_has.any() else 0.0)


def memory_composition(lm: LM, texts, layers, examples: int, top_memories: int | None, top1, bottom1):
    """Per layer, the fraction of positions where the MLP output's top token is no memory's top token;
    ``top1``/``bottom1`` hold each layer's value top/bottom token ids ``[d_mlp]``. Returns (fractions, positions)."""
    W = lm.W_U.detach().float()  # everything below is computed on the unembedding's device
    gain, _, _ = lm.norm_scale(torch.ones(1, lm.d_model, device=W.device))
    top1 = [torch.as_tensor(np.asarray(t)).long().to(W.device) for t in top1]
    bottom1 = [torch.as_tensor(np.asarray(b)).long().to(W.device) for b in bottom1]
    norms = [(lm.values(layer).detach().float().to(W.device) * gain).norm(dim=1) for layer in layers]
    differs, seen = torch.zeros(len(layers)), 0
    sites = [(site, layer) for layer in layers for site in ("neurons", "mlp_out")]
    for text in texts:
        if seen >= examples:
            break
        ids = lm.encode(text)[: examples - seen]
        with torch.no_grad(), hooked(lm, sites) as got:
            lm.forward(ids[None], last_only=True)
        for i, layer in enumerate(layers):
            m = got["neurons", layer][0].float().to(W.device)  # [pos, d_mlp]
            out_top = ((got["mlp_out", layer][0].float().to(W.device) * gain) @ W.T).argmax(-1)  # [pos]
            preds = torch.where(m > 0, top1[i], bottom1[i])
            active = m != 0
            if top_memories is not None:
                keep = (m.abs() * norms[i]).topk(min(top_memories, lm.d_mlp), dim=-1).indices
                active = torch.zeros_like(active).scatter_(1, keep, True) & active
            differs[i] += (~((preds == out_top[:, None]) & active).any(-1)).sum().cpu()
        seen += len(ids)
    if seen == 0:
        raise InputError("No text to measure the composition statistic on.")
    return (differs / seen).numpy(), seen


@dataclass
class TokenDependence:
    """How much of a key's response its trigger token explains alone, per layer (median over triggers)."""

    layers: np.ndarray
    ratio: np.ndarray  # median of act(token after a neutral context) / act(in its corpus context)
    context: str

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"layer": self.layers, "token_alone_over_in_context": self.ratio})

    def figure(self):
        import plotly.graph_objects as go

        from .figure_layout import integer_ticks, sized, title

        fig = go.Figure(go.Scatter(x=self.layers, y=self.ratio, mode="lines+markers"))
        fig.update_layout(title=title("Shallow vs contextual keys",
                                      "activation from the trigger token alone / in context"),
                          xaxis={"title": "layer", **integer_ticks(len(self.layers))},
                          yaxis_title="median ratio<br>(1 = the token alone suffices)")
        return sized(fig, 260, lines=2)


def token_dependence(lm: LM, index: TriggerIndex, layers=None, neurons: int = 40, triggers: int = 3,
                     context: str = "In this text, the next word is", seed: int = 0) -> TokenDependence:
    """Geva's shallow-vs-semantic contrast, measured: for ``neurons`` random neurons per layer, the activation
    on each top trigger's last token placed after a neutral ``context``, over its activation in the corpus.
    Near 1: the key reads the token itself (shallow); near 0: it needs the sentence (contextual)."""
    layers = list(range(lm.n_layers)) if layers is None else [lm.check_layer(layer) for layer in layers]
    rng = np.random.default_rng(seed)
    offsets, token_ids = np.asarray(index.offsets), np.asarray(index.token_ids)
    picks, trig = {}, {}
    for layer in layers:
        picks[layer] = rng.choice(lm.d_mlp, min(neurons, lm.d_mlp), replace=False)
        sid = np.asarray(index.sentence_ids[layer])[picks[layer], :triggers]
        pos = np.asarray(index.positions[layer])[picks[layer], :triggers]
        trig[layer] = np.where(sid >= 0, token_ids[offsets[np.maximum(sid, 0)] + np.maximum(pos, 0)], -1)
    unique = np.unique(np.concatenate([t.ravel() for t in trig.values()]))
    unique = unique[unique >= 0]
    prefix = lm.encode(context)
    ids = torch.cat([prefix.expand(len(unique), -1), torch.as_tensor(unique, dtype=torch.long, device=prefix.device)[:, None]], 1)
    with torch.no_grad(), hooked(lm, [("neurons", layer) for layer in layers]) as got:
        lm.forward(ids.to(lm.device), last_only=True)
    ratio = np.zeros(len(layers))
    for i, layer in enumerate(layers):
        alone = got["neurons", layer][:, -1].float().cpu().numpy()  # [unique token, d_mlp]
        rows = np.searchsorted(unique, np.maximum(trig[layer], 0))
        in_context = np.asarray(index.values[layer])[picks[layer], :triggers]
        valid = (trig[layer] >= 0) & (in_context != 0)
        ratios = alone[rows, picks[layer][:, None]][valid] / in_context[valid]
        ratio[i] = float(np.median(ratios)) if ratios.size else np.nan
    return TokenDependence(np.asarray(layers), ratio, context)
