"""Everything the explorer's views show for one prompt and target, computed once.

Per (layer, token): the largest |activation| in the layer and the summed contribution of the layer's MLP to
the target logit; the top-k neurons of each cell by |activation| and by contribution (the rankings of
:func:`~ffn_widgets.top_neurons`); the logit lens (top token per cell); the next-token predictions; and, on
demand, the value vectors' top tokens of every listed neuron (:meth:`PromptSummary.listed_values`).

    s = summarize(lm, "The Eiffel Tower is located in the city of")
    s.target_text, s.max_act.shape, s.top["contribution"].shape   # ' Paris', [30, 10], [30, 10, 8]
    s.figure("contrib")
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..model import LM, InputError, Run
from .lens import LensResult, logit_lens
from .neurons import contributions, layer_contributions
from .values import value_top_ids

RANKINGS = ("activation", "contribution")


@dataclass
class PromptSummary:
    run: Run
    target_id: int
    target_text: str
    predictions: list[tuple[int, str, float]]  # (id, text, probability) of the next token, best first
    lens: LensResult | None = None
    max_act: torch.Tensor | None = None  # [layer, pos] largest |activation|
    layer_contrib: torch.Tensor | None = None  # [layer, pos] the MLP's contribution to the target logit
    contrib: torch.Tensor | None = None  # [layer, pos, d_mlp] each neuron's contribution
    top: dict[str, torch.Tensor] = field(default_factory=dict)  # ranking -> neuron ids [layer, pos, k]

    def listed_values(self, lm: LM, k: int = 3, step=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(neurons [n, 2] as (layer, neuron), top token ids [n, k])`` of every neuron some cell lists;
        ``step(message, fraction)`` hears of progress (the costly part on a new prompt)."""
        pairs, tops = [], []
        for layer in range(lm.n_layers):
            if step is not None:
                step("Reading value vectors", layer / lm.n_layers)
            used = torch.unique(torch.cat([idx[layer].flatten() for idx in self.top.values()]))
            pairs.append(torch.stack([torch.full_like(used, layer), used], -1))
            tops.append(value_top_ids(lm, layer, used.tolist(), k))
        return torch.cat(pairs), torch.cat(tops)

    def figure(self, stat: str = "max_act", neuron: tuple[int, int] | None = None):
        """The activation heatmap (layers × tokens) of ``stat``: ``max_act``, ``contrib`` or ``neuron``
        (the activation of ``neuron`` = (layer, neuron) at its layer)."""
        import plotly.graph_objects as go

        from ..figure_layout import clip, integer_ticks, sized
        from ..figure_layout import title as figure_title

        run, n_layers = self.run, self.run.activations.shape[0]
        if stat == "contrib":
            z, title, scale = self.layer_contrib, f"MLP → logit of {self.target_text!r}", "RdBu_r"
        elif stat == "neuron" and neuron is not None:
            layer, n = neuron
            z = run.activations.new_full((n_layers, run.n_tokens), float("nan"))
            z[layer] = run.activations[layer, :, n]
            title, scale = f"activation of L{layer}.N{n}", "Blues"
        else:
            z = self.max_act if self.max_act is not None else run.activations.abs().amax(-1)
            title, scale = "max |activation| in the layer", "Blues"
        x = [f"{i}:{t}" for i, t in enumerate(run.tokens)]
        fig = go.Figure(go.Heatmap(z=z.detach().numpy(), x=x, y=list(range(n_layers)), colorscale=scale,
                                   zmid=0 if stat == "contrib" else None,
                                   colorbar={"title": {"text": title, "side": "right"}}))
        fig.update_layout(title=figure_title(f"{title}: {clip(run.prompt)!r}"), xaxis_title="token",
                          yaxis={"title": "layer", **integer_ticks(n_layers)})
        return sized(fig, 16 * n_layers)


def summarize(lm: LM, prompt: str | Run, target=None, k: int = 8, lens: bool = True,
              top: bool = True) -> PromptSummary:
    """Run the analyses for one prompt (or reuse a run) and one target (default: the model's top prediction)."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= lm.d_mlp:
        raise InputError(f"k (neurons per cell) must be an integer in 1..{lm.d_mlp}, got {k!r}.")
    run = prompt if isinstance(prompt, Run) else lm.run(prompt)
    tid, text = lm.resolve_target(target, run.logits[-1])
    out = PromptSummary(run, tid, text, predictions(lm, run))
    if lens:
        out.lens = logit_lens(lm, run, target=tid, k=1)  # the views show the top token only
    if top:
        out.max_act = run.activations.abs().amax(-1)
        out.layer_contrib = layer_contributions(lm, run, tid)
        out.contrib = torch.stack([torch.stack([contributions(lm, run, layer, pos, tid)
                                                for pos in range(run.n_tokens)]) for layer in range(lm.n_layers)])
        out.top["activation"] = run.activations.abs().topk(k, dim=-1).indices
        out.top["contribution"] = out.contrib.topk(k, dim=-1).indices
    return out


def predictions(lm: LM, run: Run, n: int = 10) -> list[tuple[int, str, float]]:
    """The ``n`` likeliest next tokens after the prompt: ``(id, text, probability)``."""
    top = torch.softmax(run.logits[-1].float(), -1).topk(n)
    return [(int(i), text, float(p)) for p, i, text in zip(top.values, top.indices, lm.token_strings(top.indices))]
