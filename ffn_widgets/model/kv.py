"""Forward passes with a key/value cache, across transformers versions, and cheap copies of caches.

transformers 5 renamed the forward keyword ``past_key_values`` to ``cache`` (the old name warns and goes in
5.40), and outputs carry ``cache`` instead of ``past_key_values``. Every cached forward of the package goes
through :func:`forward` and :func:`cache_of`, so the spelling lives here only.

    out = forward(lm.model, ids, last_only=True)     # logits of the last position only, where supported
    step = forward(lm.model, next_ids, cache_of(out))
    batch = shared(cache_of(out), rows=8)            # 8 rows viewing the same keys/values, no copy
"""
from __future__ import annotations

import copy
import inspect

import torch

_PARAMETERS: dict[type, frozenset[str]] = {}


def _parameters(model) -> frozenset[str]:
    cls = type(model)
    if cls not in _PARAMETERS:
        _PARAMETERS[cls] = frozenset(inspect.signature(model.forward).parameters)
    return _PARAMETERS[cls]


def forward(model, input_ids, cache=None, *, use_cache: bool = True, last_only: bool = False, **kwargs):
    """``model(input_ids)`` reading and filling ``cache``; ``last_only`` computes logits for the last position
    only (``logits_to_keep=1``) where the model supports it. Returns the model's output."""
    names = _parameters(model)
    if cache is not None:
        kwargs["cache" if "cache" in names else "past_key_values"] = cache
    if last_only and "logits_to_keep" in names:
        kwargs["logits_to_keep"] = 1
    return model(input_ids=input_ids, use_cache=use_cache, **kwargs)


def last_logits(model, input_ids, cache=None) -> torch.Tensor:
    """Float32 logits of the last position, ``[batch, 1, vocab]``, reading and filling ``cache``."""
    return forward(model, input_ids, cache, last_only=True).logits[:, -1:].float()


def cache_of(output):
    """The key/value cache an output carries, under either version's name (without tripping the warning)."""
    return output["cache"] if "cache" in output else output.get("past_key_values")


def shared(cache, rows: int | None = None, layers=None):
    """A cache object of its own whose layers view the tensors of ``cache`` (or of ``layers``, one per block),
    expanded to ``rows`` batch rows when given. Decoding appends by concatenation, so the viewed tensors are
    never written: one cached prefix serves many continuations."""
    if cache is None:
        return None
    out = copy.copy(cache)
    out.layers = [copy.copy(layer) for layer in (cache.layers if layers is None else layers)]
    if rows is not None:
        for layer in out.layers:
            if getattr(layer, "is_initialized", True) and getattr(layer, "keys", None) is not None:
                layer.keys = layer.keys.expand(rows, *layer.keys.shape[1:])
                layer.values = layer.values.expand(rows, *layer.values.shape[1:])
    return out
