"""What the explorer and the standalone views send to the browser for one prompt (a
:class:`~ffn_widgets.analysis.prompt_summary.PromptSummary`), as binary arrays.

Everything a hover or a click needs is sent with the run, so those gestures never wait for the kernel:

- ``grids``: per (layer, token) the heatmap statistics as float16 (2 bytes each): the largest |activation|
  in the layer, and the summed contribution of the layer's MLP to the target logit;
- ``top``: per (layer, token) the top-k neurons by |activation| and by contribution (ids uint16, int32 past 65,536 neurons;
  activations and contributions float16), the same rankings as :func:`ffn_widgets.top_neurons`;
- ``lens``: logit lens after each block (``post``) and before each MLP (``mid``), the stages computed so far;
- ``pending``: the parts still being computed (``"top"``, ``"lens"``, ``"values"``), so the browser draws what
  it has and shows the rest as coming;
- ``values`` (a trait of its own, :func:`value_payload`): the value vectors' top tokens of neurons that
  appear in ``top``, the costly part on a new prompt.

The data grows as the parts are ready (:mod:`.prompt_views` streams them), each state update carrying all
parts so far. Token strings travel once per update, in a ``vocab`` table of the ids used.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..analysis.prompt_summary import PromptSummary
from ..model import LM
from .serialize import pack


def run_payload(lm: LM, c: PromptSummary, pending: list[str] | tuple = ()) -> dict:
    """The synced ``data`` dict for the parts of ``c`` computed so far (see the module docstring)."""
    run = c.run
    ids: set[int] = {c.target_id}
    data = {
        "prompt": run.prompt,
        "tokens": run.tokens,
        "n_layers": lm.n_layers,
        "d_mlp": lm.d_mlp,
        "target": {"id": c.target_id, "text": c.target_text},
        "predictions": [{"id": i, "text": text, "prob": p} for i, text, p in c.predictions],
        "pending": list(pending),
    }
    if c.max_act is not None:
        data["grids"] = {
            "max_act": pack(c.max_act, "float16"),
            "contrib": pack(c.layer_contrib, "float16"),
        }
    if c.top:
        data["top"] = {}
        for by, idx in c.top.items():
            data["top"][by] = {
                "ids": pack(idx, "uint16" if lm.d_mlp <= 65536 else "int32"),
                "act": pack(run.activations.gather(-1, idx), "float16"),
                "contrib": pack(c.contrib.gather(-1, idx), "float16"),
            }
    if c.lens_grids:
        id_type = "uint16" if lm.W_U.shape[0] <= 65536 else "int32"
        data["lens"] = {}
        for stage, grid in sorted(c.lens_grids.items(), reverse=True):  # post, mid
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
    return pack_values(lm, *c.listed_values(k, step))


def pack_values(lm: LM, pairs: torch.Tensor, tops: torch.Tensor) -> dict:
    """``pairs`` [n, 2] (layer, neuron) and their top token ids [n, k] as the ``values`` payload."""
    return {"neurons": pack(pairs.to(torch.int32), "int32"), "top": pack(tops.to(torch.int32), "int32"),
            "vocab": vocab_table(lm, tops.unique().tolist())}


# ---- the editor's and the stability monitor's rows ----------------------------------------------
def finite_or_none(v) -> float | None:
    """A number as JSON carries it: ``None`` for missing, NaN and infinities."""
    return None if v is None or not math.isfinite(float(v)) else float(v)


def entry_key(entry) -> str:
    """The browser's name for an edit-log entry (stable while the entry lives)."""
    return f"{id(entry):x}"


def comparison_rows(report) -> list[dict]:
    """An :class:`~ffn_widgets.editing.report.EditReport`'s prompts with p(true), p(new) and the top tokens
    before and after the edit."""
    def side(s: dict) -> dict:
        return {"p_true": finite_or_none(s["p_true"]), "p_new": finite_or_none(s["p_new"]),
                "top": [[str(t), finite_or_none(p)] for t, p in s["top"]]}

    return [{"kind": r["kind"], "prompt": r["prompt"], "true": r["true"], "new": r["new"],
             "before": side(r["before"]), "after": side(r["after"])} for r in report.rows]
