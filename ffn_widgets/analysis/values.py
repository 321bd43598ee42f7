"""Value projections (Geva et al. 2021): what a neuron's value vector writes, read in vocabulary space.

The value v_i (column i of the down projection) is projected through the final norm's gain and the
unembedding, ``W_U (g ⊙ v_i)`` — the direction it pushes the logits per unit of activation. Top tokens are
what the memory promotes when the neuron fires positively; bottom tokens what it suppresses.

    fw.value_tokens(lm, layer=20, neuron=123, k=10).top   # [(token, logit), ...]
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np
import torch

from ..model import LM
from ..model.loading import cache_dir


@dataclass
class ValueTokens:
    layer: int
    neuron: int
    top: list[tuple[str, float]]
    bottom: list[tuple[str, float]]
    top_ids: list[int]
    bottom_ids: list[int]
    weights_version: int = -1  # the model state it was computed on (``LM.state_version``)

    def figure(self):
        import plotly.graph_objects as go

        tokens = [repr(t) for t, _ in self.top] + [repr(t) for t, _ in self.bottom]
        logits = [v for _, v in self.top] + [v for _, v in self.bottom]
        colours = ["#2a7ab8"] * len(self.top) + ["#c0392b"] * len(self.bottom)
        from .figure_layout import sized, title

        fig = go.Figure(go.Bar(x=logits, y=tokens, orientation="h", marker_color=colours))
        fig.update_layout(title=title(f"Value vector of L{self.layer}.N{self.neuron} in vocabulary space"),
                          xaxis_title="logit per unit activation", yaxis={"autorange": "reversed"})
        return sized(fig, 20 * len(tokens), min_plot_px=120)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{"side": "promoted", "token": t, "logit": v} for t, v in self.top]
                            + [{"side": "suppressed", "token": t, "logit": v} for t, v in self.bottom])


def value_logits(lm: LM, layer: int, neurons=None) -> torch.Tensor:
    """``[n, vocab]`` logits per unit activation of the given neurons' values (all by default), on the
    unembedding's device."""
    values = lm.values(layer)
    if neurons is not None:
        values = values[torch.as_tensor(neurons, dtype=torch.long, device=values.device)]
    return vector_logits(lm, values)


def vector_logits(lm: LM, vectors: torch.Tensor) -> torch.Tensor:
    """``[n, vocab]`` logits per unit of any ``[n, d_model]`` vectors written into the residual stream, read as
    value vectors are (a value as loaded, before an edit, say)."""
    W_U = lm.W_U
    gain, _, _ = lm.norm_scale(torch.ones(1, lm.d_model, device=W_U.device))
    with torch.no_grad():
        return (vectors.to(W_U.device).float() * gain) @ W_U.float().T


def value_tokens(lm: LM, layer: int, neuron: int, k: int = 10) -> ValueTokens:
    """Top promoted and suppressed tokens of one neuron's value vector."""
    lm.check_unit((layer, neuron))
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    logits = value_logits(lm, layer, [neuron])[0]
    top = logits.topk(k)
    bottom = (-logits).topk(k)
    tok = lm.token_strings
    return ValueTokens(layer, neuron,
                       list(zip(tok(top.indices), top.values.tolist())),
                       list(zip(tok(bottom.indices), (-bottom.values).tolist())),
                       top.indices.tolist(), bottom.indices.tolist(), lm.state_version)


def value_top_ids(lm: LM, layer: int, neurons, k: int = 3) -> torch.Tensor:
    """``[n, k]`` top promoted token ids of the given neurons' values, remembered per neuron until the
    weights change (the explorer asks for the few neurons it lists, prompt after prompt)."""
    known = lm.memo(("value_top_ids", layer, k), dict)
    neurons = [int(n) for n in neurons]
    missing = sorted({n for n in neurons if n not in known})
    if missing:
        known.update(zip(missing, value_logits(lm, layer, missing).topk(k, dim=-1).indices.tolist()))
    return torch.tensor([known[n] for n in neurons], dtype=torch.int64).reshape(len(neurons), k)


def value_top_tokens(lm: LM, layer: int, k: int = 10, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Top and bottom ``k`` token ids of every value vector of a layer, ``[neuron, k]`` each (int32).

    Projecting all values through the unembedding costs a vocab x d_model product per neuron, so the result
    is cached on disk under the weights' fingerprint (written atomically) and in memory per weights version."""
    lm.check_layer(layer)
    return lm.memo(("value_top_tokens", layer, k), lambda: _value_top_tokens_on_disk(lm, layer, k, chunk))


def _value_top_tokens_on_disk(lm: LM, layer: int, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    path = cache_dir() / "values" / lm.fingerprint / f"layer{layer:03d}-k{k}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            return data["top"], data["bottom"]
    top = np.zeros((lm.d_mlp, k), np.int32)
    bottom = np.zeros_like(top)
    for start in range(0, lm.d_mlp, chunk):
        logits = value_logits(lm, layer, range(start, min(start + chunk, lm.d_mlp)))
        top[start:start + chunk] = logits.topk(k, dim=-1).indices.cpu().numpy()
        bottom[start:start + chunk] = (-logits).topk(k, dim=-1).indices.cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        np.savez(f, top=top, bottom=bottom)
    os.replace(tmp, path)
    return top, bottom
