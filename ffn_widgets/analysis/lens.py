"""Logit lens: what each layer's residual stream would predict if the model stopped there.

Every state goes through the model's own final norm and unembedding (``lm.unembed``), so the lens of the
last block's output *is* the model's output. Two stages per layer: ``post`` (after the block) and ``mid``
(the residual without this layer's MLP, ``resid_post - mlp_out``), so ``post - mid`` shows the MLP's own
push on the prediction (Geva et al. 2022).

A multi-token target is scored by its first token (``p(first token)``): the lens reads one position.

    lens = fw.logit_lens(lm, "The Eiffel Tower is located in the city of", target=" Paris")
    lens.probs[:, -1]        # p(" Paris") at the last position after each layer
    lens.figure()
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model import LM, Run


@dataclass
class LensGrid:
    """One stage of the lens. Shapes: ``[n_layers, n_tokens]`` and ``[n_layers, n_tokens, k]``."""

    probs: torch.Tensor | None  # target probability (None without a target)
    ranks: torch.Tensor | None  # target rank, 0 = top
    top_ids: torch.Tensor
    top_probs: torch.Tensor
    top_tokens: list[list[list[str]]]


@dataclass
class LensResult:
    tokens: list[str]
    target: str | None
    target_id: int | None
    post: LensGrid
    mid: LensGrid

    @property
    def probs(self) -> torch.Tensor | None:
        return self.post.probs

    @property
    def ranks(self) -> torch.Tensor | None:
        return self.post.ranks

    def figure(self, stage: str = "post", value: str = "prob"):
        """Layers × positions heatmap: colour = target probability (or rank), text = top token."""
        import plotly.graph_objects as go

        from ..figure_layout import integer_ticks, sized
        from ..figure_layout import title as figure_title

        grid = self._grid(stage)
        layers = list(range(grid.top_ids.shape[0]))
        text = [[row[0] for row in layer] for layer in grid.top_tokens]
        if self.target_id is None or value == "top":
            z, title = grid.top_probs[..., 0], "top-1 probability"
        elif value == "rank":
            z, title = torch.log10(grid.ranks.float() + 1), f"log10(rank+1) of {self.target!r}"
        else:
            z, title = grid.probs, f"p({self.target!r})"
        x = [f"{i}:{t}" for i, t in enumerate(self.tokens)]
        fig = go.Figure(go.Heatmap(z=z.numpy(), x=x, y=layers, text=text, texttemplate="%{text}",
                                   colorscale="Blues", colorbar={"title": {"text": title, "side": "right"}},
                                   hovertemplate="layer %{y}, %{x}<br>top: %{text}<br>value %{z:.3f}<extra></extra>"))
        stage_name = "after each block" if stage == "post" else "before each MLP"
        fig.update_layout(title=figure_title(f"Logit lens ({stage_name})"), xaxis_title="position",
                          yaxis={"title": "layer", **integer_ticks(len(layers))})
        return sized(fig, 18 * len(layers))

    def to_frame(self, stage: str = "post"):
        import pandas as pd

        grid = self._grid(stage)
        rows = []
        for layer in range(grid.top_ids.shape[0]):
            for pos, token in enumerate(self.tokens):
                row = {"layer": layer, "position": pos, "token": token,
                       "top_token": grid.top_tokens[layer][pos][0], "top_prob": float(grid.top_probs[layer, pos, 0])}
                if grid.probs is not None:
                    row.update(target_prob=float(grid.probs[layer, pos]), target_rank=int(grid.ranks[layer, pos]))
                rows.append(row)
        return pd.DataFrame(rows)

    def _grid(self, stage: str) -> LensGrid:
        if stage not in ("post", "mid"):
            raise ValueError(f"stage must be 'post' (after the block) or 'mid' (before the MLP), got {stage!r}.")
        return self.post if stage == "post" else self.mid


def logit_lens(lm: LM, prompt: str | Run, target: str | int | None = None, k: int = 5) -> LensResult:
    """Per layer × position: top-k tokens, and the target's probability and rank, after each block and
    before each MLP. ``prompt`` may be a :class:`Run` already computed (no new forward pass)."""
    run = prompt if isinstance(prompt, Run) else lm.run(prompt, capture=("mlp_out", "resid_post"))
    target_id = None if target is None else lm.target_ids(target)[0]
    post = _grid(lm, run.resid_post, target_id, k)
    mid = _grid(lm, run.resid_mid, target_id, k)
    text = None if target is None else target if isinstance(target, str) else lm.token_strings([target_id])[0]
    return LensResult(run.tokens, text, target_id, post, mid)


def _grid(lm: LM, resid: torch.Tensor, target_id: int | None, k: int, chunk_rows: int = 256) -> LensGrid:
    """Unembed ``[layer, pos, d_model]`` in row chunks: one large matmul is much faster than one per layer,
    and chunking keeps the ``[rows, vocab]`` probabilities from growing with the prompt."""
    n_layers, n_pos, _ = resid.shape
    flat = resid.reshape(n_layers * n_pos, -1)
    probs, ranks, top_ids, top_probs = [], [], [], []
    for start in range(0, flat.shape[0], chunk_rows):
        p = torch.softmax(lm.unembed(flat[start:start + chunk_rows]), dim=-1)  # [rows, vocab]
        tp, ti = p.topk(k, dim=-1)
        top_ids.append(ti)
        top_probs.append(tp)
        if target_id is not None:
            pt = p[:, target_id]
            probs.append(pt)
            ranks.append((p > pt[:, None]).sum(-1))
    shape = (n_layers, n_pos)
    top_ids_t = torch.cat(top_ids).reshape(*shape, k)
    top_tokens = [[lm.token_strings(pos) for pos in layer] for layer in top_ids_t]
    return LensGrid(torch.cat(probs).reshape(shape) if probs else None,
                    torch.cat(ranks).reshape(shape) if ranks else None,
                    top_ids_t, torch.cat(top_probs).reshape(*shape, k), top_tokens)
