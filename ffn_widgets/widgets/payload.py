"""What the explorer and the standalone views send to the browser for one prompt, as binary arrays.

Everything a hover or a click needs is sent with the run, so those gestures never wait for the kernel:

- ``grids``: per (layer, token) the heatmap statistics as float16 (2 bytes each): the largest |activation|
  in the layer, and the summed contribution of the layer's MLP to the target logit;
- ``top``: per (layer, token) the top-k neurons by |activation| and by contribution (ids uint16, int32 past 65,536 neurons;
  activations and contributions float16), the same rankings as :func:`ffn_widgets.top_neurons`;
- ``lens``: logit lens after each block (``post``) and before each MLP (``mid``);
- ``values``: the value vectors' top tokens of every neuron that appears in ``top``; sent as a second
  step (:func:`value_payload`) and cached per LM, because it is the costly part on a new prompt.

Token strings travel once, in a ``vocab`` table of the ids used.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..analysis.lens import LensResult, logit_lens
from ..analysis.neurons import contributions, layer_contributions
from ..analysis.values import value_top_ids
from ..model import LM, InputError, Run
from .serialize import pack


@dataclass
class Computed:
    """The analyses behind one payload (kept by the widget for figures and later gestures)."""

    run: Run
    target_id: int
    target_text: str
    lens: LensResult | None = None
    contrib: torch.Tensor | None = None  # [layer, pos, d_mlp]
    top: dict[str, torch.Tensor] = field(default_factory=dict)  # by -> ids [layer, pos, k]


def compute(lm: LM, prompt: str | Run, target=None, k: int = 8, lens: bool = True, top: bool = True) -> Computed:
    """Run the analyses for one prompt (or reuse a run) and one target."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= lm.d_mlp:
        raise InputError(f"k (neurons per cell) must be an integer in 1..{lm.d_mlp}, got {k!r}.")
    run = prompt if isinstance(prompt, Run) else lm.run(prompt)
    tid, text = lm.resolve_target(target, run.logits[-1])
    out = Computed(run, tid, text)
    if lens:
        out.lens = logit_lens(lm, run, target=tid, k=1)  # the views show the top token only
    if top:
        out.contrib = torch.stack([torch.stack([contributions(lm, run, layer, pos, tid)
                                                for pos in range(run.n_tokens)]) for layer in range(lm.n_layers)])
        out.top["activation"] = run.activations.abs().topk(k, dim=-1).indices
        out.top["contribution"] = out.contrib.topk(k, dim=-1).indices
    return out


def predictions(lm: LM, run: Run, n: int = 10) -> list[dict]:
    probs = torch.softmax(run.logits[-1].float(), -1)
    top = probs.topk(n)
    return [{"id": int(i), "text": text, "prob": float(p)}
            for p, i, text in zip(top.values, top.indices, lm.token_strings(top.indices))]


def run_payload(lm: LM, c: Computed) -> dict:
    """The synced ``data`` dict for one computed prompt (see the module docstring)."""
    run = c.run
    ids: set[int] = {c.target_id}
    data = {
        "prompt": run.prompt,
        "tokens": run.tokens,
        "n_layers": lm.n_layers,
        "d_mlp": lm.d_mlp,
        "target": {"id": c.target_id, "text": c.target_text},
        "predictions": predictions(lm, run),
    }
    if c.top:
        data["grids"] = {
            "max_act": pack(run.activations.abs().amax(-1), "float16"),
            "contrib": pack(layer_contributions(lm, run, c.target_id), "float16"),
        }
        data["top"] = {}
        for by, idx in c.top.items():
            data["top"][by] = {
                "ids": pack(idx, "uint16" if lm.d_mlp <= 65536 else "int32"),
                "act": pack(run.activations.gather(-1, idx), "float16"),
                "contrib": pack(c.contrib.gather(-1, idx), "float16"),
            }
    if c.lens is not None:
        id_type = "uint16" if lm.W_U.shape[0] <= 65536 else "int32"
        data["lens"] = {}
        for stage in ("post", "mid"):
            grid = getattr(c.lens, stage)
            top1 = grid.top_ids[..., 0]
            ids.update(int(i) for i in top1.unique())
            data["lens"][stage] = {
                "prob": pack(grid.probs, "float16"),
                "rank": pack(grid.ranks.clamp(max=65535).to(torch.int32), "uint16"),  # 65535 = "65535 or worse"
                "top": pack(top1.to(torch.int32), id_type),
                "top_prob": pack(grid.top_probs[..., 0], "float16"),
            }
    ids.update(p["id"] for p in data["predictions"])
    data["vocab"] = vocab_table(lm, ids)
    return data


def vocab_table(lm: LM, ids) -> dict:
    ids = sorted(int(i) for i in ids)
    return {"ids": pack(np.array(ids, dtype=np.int64), "int32"), "text": lm.token_strings(ids)}


def value_payload(lm: LM, c: Computed, k: int = 3, step=None) -> dict:
    """Top tokens of every neuron in ``c.top``: ``neurons`` int32 [n, 2] (layer, neuron), ``top`` int32
    [n, k], and the vocab table for them."""
    pairs, tops = [], []
    for layer in range(lm.n_layers):
        if step is not None:
            step("Reading value vectors", layer / lm.n_layers)
        used = torch.unique(torch.cat([idx[layer].flatten() for idx in c.top.values()]))
        pairs.append(torch.stack([torch.full_like(used, layer), used], -1))
        tops.append(value_top_ids(lm, layer, used.tolist(), k))
    pairs_t, tops_t = torch.cat(pairs), torch.cat(tops)
    return {"neurons": pack(pairs_t.to(torch.int32), "int32"), "top": pack(tops_t.to(torch.int32), "int32"),
            "vocab": vocab_table(lm, tops_t.unique().tolist())}
