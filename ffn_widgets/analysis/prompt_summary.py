"""Everything the explorer's views show for one prompt and target, computed in parts.

The parts cost very different amounts, so the views paint them as they come (:mod:`ffn_widgets.widgets.prompt_views`):

- the heatmap grids come with the forward pass: per (layer, token) the largest |activation| in the layer and
  the summed contribution of the layer's MLP to the target logit (:func:`start_summary`);
- the top-k neurons of each cell by |activation| and by contribution, the rankings of
  :func:`~ffn_widgets.top_neurons` (:meth:`PromptSummary.rank_neurons`: one product per layer);
- the logit lens, one stage at a time (:meth:`PromptSummary.lens_steps`): a vocabulary-sized product per
  layer × token, a few forwards' worth each;
- the value vectors' top tokens of every listed neuron (:meth:`PromptSummary.listed_values`): the costly part
  while the per-model cache is cold.

:func:`summarize` computes them all at once.

    s = summarize(lm, "The Eiffel Tower is located in the city of")
    s.target_text, s.max_act.shape, s.top["contribution"].shape   # ' Paris', [30, 10], [30, 10, 8]
    s.figure("contrib")
"""
from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import torch

from ..model import LM, InputError, Run
from .lens import LensGrid, LensResult, lens_grid_steps
from .neurons import _direction, layer_contributions
from .values import value_top_ids

RANKINGS = ("activation", "contribution")
STAGES = ("post", "mid")


@dataclass
class PromptSummary:
    lm: LM = field(repr=False)
    run: Run
    target_id: int
    target_text: str
    predictions: list[tuple[int, str, float]]  # (id, text, probability) of the next token, best first
    max_act: torch.Tensor | None = None  # [layer, pos] largest |activation|
    layer_contrib: torch.Tensor | None = None  # [layer, pos] the MLP's contribution to the target logit
    contrib: torch.Tensor | None = None  # [layer, pos, d_mlp] each neuron's contribution
    top: dict[str, torch.Tensor] = field(default_factory=dict)  # ranking -> neuron ids [layer, pos, k]
    lens_grids: dict[str, LensGrid] = field(default_factory=dict)  # the stages computed so far (top-1 token)

    # ---- parts ------------------------------------------------------------------------------
    def rank_neurons(self, k: int = 8) -> None:
        """Fill ``contrib`` and ``top``: one ``[d_mlp, d_model] @ [d_model, pos]`` product per layer (the
        same numbers as :func:`~ffn_widgets.analysis.neurons.contributions` cell by cell)."""
        lm, run = self.lm, self.run
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= lm.d_mlp:
            raise InputError(f"k (neurons per cell) must be an integer in 1..{lm.d_mlp}, got {k!r}.")
        dirs = torch.stack([_direction(lm, run, pos, self.target_id) for pos in range(run.n_tokens)])  # [pos, d]
        contrib = torch.empty_like(run.activations)
        with torch.no_grad():
            for layer in range(lm.n_layers):
                values = lm.values(layer)
                per_unit = values.float() @ dirs.to(values.device).T  # [d_mlp, pos]
                contrib[layer] = run.activations[layer] * per_unit.T.cpu()
        self.contrib = contrib
        self.top = {"activation": run.activations.abs().topk(k, dim=-1).indices,
                    "contribution": contrib.topk(k, dim=-1).indices}

    def lens_steps(self, stage: str) -> Generator[float, None, LensGrid]:
        """Compute one lens stage in chunks (yielding the fraction done); a stage already computed is kept."""
        if stage not in self.lens_grids:
            self.lens_grids[stage] = yield from lens_grid_steps(self.lm, self.run, stage, self.target_id, k=1)
        return self.lens_grids[stage]

    @property
    def lens(self) -> LensResult:
        """Both stages of the logit lens (the views show the top token only); missing stages are computed."""
        for stage in STAGES:
            for _ in self.lens_steps(stage):
                pass
        return LensResult(self.run.tokens, self.target_text, self.target_id, self.lens_grids["post"],
                          self.lens_grids["mid"], self.run.weights_version)

    def listed(self, layer: int, position: int | None = None) -> torch.Tensor:
        """Sorted ids of the neurons some table lists at ``layer`` (at one position, or any)."""
        tables = [idx[layer] if position is None else idx[layer, position] for idx in self.top.values()]
        return torch.unique(torch.cat([t.flatten() for t in tables])) if tables else torch.empty(0, dtype=torch.long)

    def listed_values(self, k: int = 3, step=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(neurons [n, 2] as (layer, neuron), top token ids [n, k])`` of every neuron some cell lists;
        ``step(message, fraction)`` hears of progress (the costly part on a new prompt)."""
        pairs, tops = [], []
        for layer in range(self.lm.n_layers):
            if step is not None:
                step("Reading value vectors", layer / self.lm.n_layers)
            used = self.listed(layer)
            pairs.append(torch.stack([torch.full_like(used, layer), used], -1))
            tops.append(value_top_ids(self.lm, layer, used.tolist(), k))
        return torch.cat(pairs), torch.cat(tops)

    # ---- exports ----------------------------------------------------------------------------
    def figure(self, stat: str = "max_act", neuron: tuple[int, int] | None = None):
        """The activation heatmap (layers × tokens) of ``stat``: ``max_act``, ``contrib`` or ``neuron``
        (the activation of ``neuron`` = (layer, neuron) at its layer)."""
        import plotly.graph_objects as go

        from .figure_layout import clip, integer_ticks, sized
        from .figure_layout import title as figure_title

        run, n_layers = self.run, self.run.activations.shape[0]
        if stat == "contrib":
            z = self.layer_contrib if self.layer_contrib is not None else layer_contributions(self.lm, run, self.target_id)
            title, scale = f"MLP → logit of {self.target_text!r}", "RdBu_r"
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


def start_summary(lm: LM, prompt: str | Run, target=None, grids: bool = True) -> PromptSummary:
    """What one forward pass gives at once: the run, the target (default: the model's top prediction), the
    next-token predictions and, with ``grids``, the heatmap's two statistics."""
    run = prompt if isinstance(prompt, Run) else lm.run(prompt)
    tid, text = lm.resolve_target(lm.continuation(run.prompt, target), run.logits[-1])
    out = PromptSummary(lm, run, tid, text, predictions(lm, run))
    if grids:
        out.max_act = run.activations.abs().amax(-1)
        out.layer_contrib = layer_contributions(lm, run, tid)
    return out


def summarize(lm: LM, prompt: str | Run, target=None, k: int = 8, lens: bool = True,
              top: bool = True) -> PromptSummary:
    """Every part for one prompt (or a run) and one target (default: the model's top prediction)."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= lm.d_mlp:
        raise InputError(f"k (neurons per cell) must be an integer in 1..{lm.d_mlp}, got {k!r}.")
    out = start_summary(lm, prompt, target, grids=top)
    if top:
        out.rank_neurons(k)
    if lens:
        out.lens  # noqa: B018 - computes both stages
    return out


def predictions(lm: LM, run: Run, n: int = 10) -> list[tuple[int, str, float]]:
    """The ``n`` likeliest next tokens after the prompt: ``(id, text, probability)``."""
    top = torch.softmax(run.logits[-1].float(), -1).topk(n)
    return [(int(i), text, float(p)) for p, i, text in zip(top.values, top.indices, lm.token_strings(top.indices))]
