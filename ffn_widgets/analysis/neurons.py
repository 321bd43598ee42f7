"""Which neurons matter at one (layer, token): by activation, or by contribution to a target token.

Contribution (Geva et al. 2022, "direct logit attribution"): neuron i adds m_i·v_i to the residual
stream; its effect on the target's logit is ``m_i · (W_U (g ⊙ P v_i))[t] / σ`` where g is the final norm's
gain, P centres the vector for LayerNorm models (identity for RMSNorm), and σ is the final norm's scale
*frozen at the model's last residual state at that position*. With σ frozen, the contributions of all
components sum to the target logit (minus bias terms), which is why this linearisation is the standard one.

    ranking = fw.top_neurons(lm, prompt, layer=18, by="contribution", target=" Paris")
    ranking.to_frame()
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model import LM, InputError, Run
from .values import value_logits


def _direction(lm: LM, run: Run, position: int, target_id: int) -> torch.Tensor:
    """``[d_model]`` vector d with contribution(x) = x · d for anything x added at ``position``."""
    final = run.resid_post[-1, position]
    gain, inv_sigma, centres = lm.norm_scale(final)
    d = lm.W_U[target_id].detach().float().to(final.device) * gain * inv_sigma
    return d - d.mean() if centres else d  # (P x)·d = x·(P d) for the centring projection P


def contributions(lm: LM, run: Run, layer: int, position: int, target_id: int) -> torch.Tensor:
    """``[d_mlp]``: each neuron's contribution m_i·(W_U v_i)[t] to the target logit (see module doc)."""
    lm.check_layer(layer)
    d = _direction(lm, run, position, target_id)
    with torch.no_grad():
        values = lm.values(layer)
        per_unit = values.float() @ d.to(values.device)  # [d_mlp]
    return run.activations[layer, position] * per_unit.to(run.activations.device)


def layer_contributions(lm: LM, run: Run, target_id: int) -> torch.Tensor:
    """``[n_layers, n_tokens]``: summed contribution of each layer's MLP output to the target logit."""
    out = torch.empty(lm.n_layers, run.n_tokens)
    for pos in range(run.n_tokens):
        out[:, pos] = run.mlp_out[:, pos] @ _direction(lm, run, pos, target_id)
    return out


@dataclass
class NeuronRanking:
    layer: int
    position: int
    token: str
    by: str
    neurons: list[int]
    activations: list[float]
    contributions: list[float] | None
    value_top: list[list[str]]  # each neuron's top promoted tokens
    weights_version: int = -1  # the model state it was computed on (``LM.state_version``)

    def to_frame(self):
        import pandas as pd

        data = {"neuron": self.neurons, "activation": self.activations}
        if self.contributions is not None:
            data["contribution"] = self.contributions
        data["value_top_tokens"] = [", ".join(repr(t) for t in toks) for toks in self.value_top]
        return pd.DataFrame(data)

    def figure(self):
        import plotly.graph_objects as go

        values = self.contributions if self.by == "contribution" else self.activations
        labels = [f"N{n}" for n in self.neurons]
        from .figure_layout import clip, sized, title

        fig = go.Figure(go.Bar(x=values, y=labels, orientation="h",
                               hovertext=[", ".join(t) for t in self.value_top]))
        fig.update_layout(title=title(f"Top neurons at layer {self.layer}, token {self.position} "
                                      f"{clip(self.token, 30)!r} by {self.by}"),
                          xaxis_title=self.by, yaxis={"autorange": "reversed"})
        return sized(fig, 20 * len(labels), min_plot_px=120)


def top_neurons(lm: LM, prompt: str | Run, layer: int, position: int = -1, k: int = 10,
                by: str = "activation", target: str | int | None = None, value_k: int = 5) -> NeuronRanking:
    """The k neurons at (layer, position) with the largest |activation| or largest contribution to the
    target (default target: the model's top prediction at that position)."""
    if by not in ("activation", "contribution"):
        raise InputError(f"by must be 'activation' or 'contribution', got {by!r}.")
    run = prompt if isinstance(prompt, Run) else lm.run(prompt)
    lm.check_layer(layer)
    if not -run.n_tokens <= position < run.n_tokens:
        raise InputError(f"position must be in {-run.n_tokens}..{run.n_tokens - 1}, got {position}.")
    position %= run.n_tokens
    acts = run.activations[layer, position]
    target_id, _ = lm.resolve_target(target, run.logits[position])
    contrib = contributions(lm, run, layer, position, target_id)
    score = acts.abs() if by == "activation" else contrib
    idx = score.topk(min(k, lm.d_mlp)).indices
    top_ids = value_logits(lm, layer, idx).topk(value_k, dim=-1).indices
    return NeuronRanking(layer, position, run.tokens[position], by, idx.tolist(), acts[idx].tolist(),
                         contrib[idx].tolist(), [lm.token_strings(row) for row in top_ids], run.weights_version)
