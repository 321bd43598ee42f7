"""Logit lens: what each layer's residual stream would predict if the model stopped there.

Every state goes through the model's own final norm and unembedding (the head's weights read a vocabulary
slice at a time, see :func:`lens_grid_steps`), so the lens of the last block's output *is* the model's output.
Two stages per layer: ``post`` (after the block) and ``mid`` (the residual without this layer's MLP,
``resid_post - mlp_out``), so ``post - mid`` shows the MLP's own push on the prediction (Geva et al. 2022).

A multi-token target is scored by its first token (``p(first token)``): the lens reads one position.

    lens = fw.logit_lens(lm, "The Eiffel Tower is located in the city of", target=" Paris")
    lens.probs[:, -1]        # p(" Paris") at the last position after each layer
    lens.figure()
"""
from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import torch

from ..model import LM, Run
from ..model.long_runs import run_steps


@dataclass
class LensGrid:
    """One stage of the lens. Shapes: ``[n_layers, n_tokens]`` and ``[n_layers, n_tokens, k]``."""

    probs: torch.Tensor | None  # target probability (None without a target)
    ranks: torch.Tensor | None  # target rank: tokens with a larger logit, 0 = top
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
    weights_version: int = -1  # the model state it was computed on (``LM.state_version``)

    @property
    def probs(self) -> torch.Tensor | None:
        return self.post.probs

    @property
    def ranks(self) -> torch.Tensor | None:
        return self.post.ranks

    def figure(self, stage: str = "post", value: str = "prob"):
        """Layers × positions heatmap: colour = target probability (or rank), text = top token."""
        import plotly.graph_objects as go

        from .figure_layout import integer_ticks, sized
        from .figure_layout import title as figure_title

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
    target = lm.continuation(run.prompt, target)
    target_id = None if target is None else lm.target_ids(target)[0]
    text = None if target is None else target if isinstance(target, str) else lm.token_strings([target_id])[0]
    return LensResult(run.tokens, text, target_id, lens_grid(lm, run, "post", target_id, k),
                      lens_grid(lm, run, "mid", target_id, k), run.weights_version)


def lens_grid(lm: LM, run: Run, stage: str, target_id: int | None = None, k: int = 5) -> LensGrid:
    """One stage of the lens (``post`` or ``mid``) of a computed run: each stage costs a vocabulary-sized
    product per layer × token, so a view that shows one stage computes only that one."""
    steps = lens_grid_steps(lm, run, stage, target_id, k)
    return run_steps(steps)


def lens_grid_steps(lm: LM, run: Run, stage: str, target_id: int | None = None,
                    k: int = 5) -> Generator[float, None, LensGrid]:
    """:func:`lens_grid` in slices, yielding the fraction done after each (a widget streams the lens and
    answers gestures in between); returns the :class:`LensGrid`."""
    if stage not in ("post", "mid"):
        raise ValueError(f"stage must be 'post' (after the block) or 'mid' (before the MLP), got {stage!r}.")
    resid = run.resid_post if stage == "post" else run.resid_mid
    n_layers, n_pos, _ = resid.shape
    flat = resid.reshape(n_layers * n_pos, -1)
    head = lm.unembed_module
    weights = [head.weight, *lm.final_norm.parameters()] if isinstance(head, torch.nn.Linear) else []
    in_memory = bool(weights) and all(w.device.type != "meta" for w in weights)  # not offloaded by accelerate
    scan = _by_vocab(lm, head, flat, target_id, k) if in_memory else _by_rows(lm, flat, target_id, k)
    probs, ranks, top_ids, top_probs = yield from scan
    shape = (n_layers, n_pos)
    top_ids = top_ids.reshape(*shape, k)
    top_tokens = [[lm.token_strings(pos) for pos in layer] for layer in top_ids]
    return LensGrid(None if probs is None else probs.reshape(shape), None if ranks is None else ranks.reshape(shape),
                    top_ids, top_probs.reshape(*shape, k), top_tokens)


def _slice(rows: int, width: int, vocab: int) -> int:
    """Vocabulary ids per slice, a multiple of 256 (matrix kernels slow down on ragged sizes): at most about
    2 MB of float32 weights and 4 MB of logits, which stay near the CPU while they are multiplied and
    reduced (the products 1.5 times faster than with 8 MB slices on the default model's lens)."""
    return min(vocab, max(256, min((1 << 19) // max(1, width), (1 << 20) // max(1, rows)) // 256 * 256))


class _Scan:
    """Reductions of ``[rows, vocab]`` logits seen a vocabulary slice at a time, so no ``[rows, vocab]``
    softmax is ever written: a running top-k, log-sum-exp (``p = exp(logit - lse)``) and the target's rank
    (tokens with a larger logit: exact, where rounded probabilities can tie). A slice is sorted only for
    the rows whose largest logit beats their k-th best so far, after the first few slices a handful."""

    def __init__(self, n: int, vocab: int, size: int, k: int, target_id: int | None, device):
        self.size = size
        self.starts = list(range(0, vocab, self.size))
        if target_id is not None:  # the target's slice first: its logit is compared as computed there
            first = target_id // self.size * self.size
            self.starts.remove(first)
            self.starts.insert(0, first)
        self.k, self.target_id, self.vocab = k, target_id, vocab
        self.m = torch.full((n,), float("-inf"), device=device)
        self.total = torch.zeros(n, device=device)
        self.top_v = torch.full((n, k), float("-inf"), device=device)
        self.top_i = torch.zeros((n, k), dtype=torch.long, device=device)
        self.ranks = torch.zeros(n, dtype=torch.long, device=device)
        self.target = None

    def add(self, logits: torch.Tensor, start: int) -> None:
        """Fold in ``logits`` [rows, slice] of the vocabulary ids ``start ...``."""
        if self.target is None and self.target_id is not None:
            self.target = logits[:, self.target_id - start:self.target_id - start + 1].clone()
        if self.target is not None:
            self.ranks += (logits > self.target).sum(-1, dtype=torch.int32)  # no int64 copy of the mask
        top = logits.amax(-1)
        rows = (top > self.top_v[:, -1]).nonzero()[:, 0]
        if len(rows):
            v, i = logits.index_select(0, rows).topk(min(self.k, logits.shape[1]), dim=-1)
            best, pick = torch.cat([self.top_v[rows], v], -1).topk(self.k, dim=-1)
            self.top_v[rows] = best
            self.top_i[rows] = torch.cat([self.top_i[rows], i + start], -1).gather(-1, pick)
        m = torch.maximum(self.m, top)
        self.total = self.total * torch.exp(self.m - m) + (logits - m[:, None]).exp_().sum(-1)
        self.m = m

    def result(self):
        """``(target probs | None, target ranks | None, top ids [rows, k], top probs [rows, k])`` on the CPU."""
        lse = self.m + torch.log(self.total)
        top_probs = torch.exp(self.top_v - lse[:, None]).cpu()
        if self.target is None:
            return None, None, self.top_i.cpu(), top_probs
        return torch.exp(self.target[:, 0] - lse).cpu(), self.ranks.cpu(), self.top_i.cpu(), top_probs


def _by_vocab(lm: LM, head: torch.nn.Linear, flat: torch.Tensor, target_id: int | None, k: int,
              size: int | None = None, steps: int = 12):
    """Every row at once, a slice of the unembedding at a time: the ``[vocab, d_model]`` matrix is read once
    and each block of logits is reduced while it is in cache (three times faster than row chunks through
    the whole vocabulary on a CPU). The same logits as ``lm.unembed``: the final norm, then the head.
    Yields about ``steps`` times."""
    norm = lm.final_norm
    with torch.no_grad():
        x = norm(flat.to(next(norm.parameters(), head.weight).device, lm.dtype)).to(head.weight.device)
    vocab, width = head.weight.shape
    scan = _Scan(x.shape[0], vocab, size or _slice(x.shape[0], width, vocab), k, target_id, x.device)
    every = -(-len(scan.starts) // steps)
    cap = getattr(lm.config, "final_logit_softcapping", None)  # as lm.unembed applies it
    for done, start in enumerate(scan.starts, 1):
        end = min(scan.vocab, start + scan.size)
        with torch.no_grad():
            bias = None if head.bias is None else head.bias[start:end]
            logits = torch.nn.functional.linear(x, head.weight[start:end], bias).float()
        scan.add(torch.tanh(logits / cap) * cap if cap else logits, start)
        if done % every == 0 or done == len(scan.starts):
            yield done / len(scan.starts)
    return scan.result()


def _by_rows(lm: LM, flat: torch.Tensor, target_id: int | None, k: int, chunk_rows: int = 64):
    """Through ``lm.unembed`` a chunk of rows at a time (any unembedding: one whose weights accelerate keeps
    offloaded too), reduced in the same slices as :func:`_by_vocab`."""
    out = []
    for start in range(0, flat.shape[0], chunk_rows):
        logits = lm.unembed(flat[start:start + chunk_rows])  # [rows, vocab] float32
        vocab = logits.shape[1]
        size = _slice(flat.shape[0], flat.shape[1], vocab)
        scan = _Scan(logits.shape[0], vocab, size, k, target_id, logits.device)
        for s in scan.starts:
            scan.add(logits[:, s:s + scan.size], s)
        out.append(scan.result())
        yield min(1.0, (start + chunk_rows) / flat.shape[0])
    probs, ranks, top_ids, top_probs = zip(*out)
    return (None if probs[0] is None else torch.cat(probs), None if ranks[0] is None else torch.cat(ranks),
            torch.cat(top_ids), torch.cat(top_probs))
