"""What the explorer and the standalone views send to the browser for one prompt (a
:class:`~ffn_widgets.analysis.prompt_summary.PromptSummary`), as binary arrays.

Everything a hover or a click needs is sent with the run, so those gestures never wait for the kernel:

- ``grids``: per (layer, token) the heatmap statistics as float16 (2 bytes each): the largest |activation|
  in the layer, and the summed contribution of the layer's MLP to the target logit;
- ``top``: per (layer, token) the top-k neurons by |activation| and by contribution (ids uint16, int32 past 65,536 neurons;
  activations and contributions float16), the same rankings as :func:`ffn_widgets.top_neurons`;
- ``lens``: logit lens after each block (``post``) and before each MLP (``mid``);
- ``values``: the value vectors' top tokens of every neuron that appears in ``top``; sent as a second
  step (:func:`value_payload`), because it is the costly part on a new prompt.

Token strings travel once, in a ``vocab`` table of the ids used.
"""
from __future__ import annotations

import numpy as np
import torch

from ..analysis.prompt_summary import PromptSummary
from ..model import LM
from .serialize import pack


def run_payload(lm: LM, c: PromptSummary) -> dict:
    """The synced ``data`` dict for one computed prompt (see the module docstring)."""
    run = c.run
    ids: set[int] = {c.target_id}
    data = {
        "prompt": run.prompt,
        "tokens": run.tokens,
        "n_layers": lm.n_layers,
        "d_mlp": lm.d_mlp,
        "target": {"id": c.target_id, "text": c.target_text},
        "predictions": [{"id": i, "text": text, "prob": p} for i, text, p in c.predictions],
    }
    if c.top:
        data["grids"] = {
            "max_act": pack(c.max_act, "float16"),
            "contrib": pack(c.layer_contrib, "float16"),
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


def value_payload(lm: LM, c: PromptSummary, k: int = 3, step=None) -> dict:
    """Top tokens of every neuron in ``c.top``: ``neurons`` int32 [n, 2] (layer, neuron), ``top`` int32
    [n, k], and the vocab table for them."""
    pairs, tops = c.listed_values(lm, k, step)
    return {"neurons": pack(pairs.to(torch.int32), "int32"), "top": pack(tops.to(torch.int32), "int32"),
            "vocab": vocab_table(lm, tops.unique().tolist())}
