"""The hook core: capture and intervene on named sites with plain torch hooks, always removed.

Sites, per layer (shapes ``[batch, pos, ...]``):

- ``resid_pre``  block input (residual stream before the block)            ``[.., d_model]``
- ``attn_out``   what attention adds to the residual stream                 ``[.., d_model]``
- ``neurons``    the MLP neuron activations m = input of the down projection ``[.., d_mlp]``
- ``mlp_out``    what the MLP adds to the residual stream                   ``[.., d_model]``
- ``resid_post`` block output                                               ``[.., d_model]``

Interventions are :class:`Intervention` values handed to the same hooks (scale / set / add / any function), so
neuron sliders, activation patching and causal tracing share one mechanism. Example::

    with hooked(lm, capture=[("neurons", 3)], edits=[Intervention("neurons", 3, "scale", 0.0, index=[42])]) as got:
        lm.model(ids)
    got["neurons", 3]   # the *edited* activations as the down projection saw them
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from .errors import InputError

SITES = ("resid_pre", "attn_out", "neurons", "mlp_out", "resid_post")
_OPS = ("scale", "set", "add", "fn")


@dataclass(frozen=True)
class Intervention:
    """One intervention at ``(site, layer)``.

    ``op`` is ``scale`` (x·value), ``set`` (value), ``add`` (x+value) or ``fn`` (value(x) -> x).
    ``rows``, ``positions`` and ``index`` (the last dimension: neuron or feature) select where; ``None``
    means all. ``value`` is a number or a tensor broadcastable to ``[rows, positions, index]``.
    """

    site: str
    layer: int
    op: str
    value: Any
    index: Any = None
    positions: Any = None
    rows: Any = None

    def __post_init__(self):
        if self.site not in SITES:
            raise ValueError(f"Unknown site {self.site!r}; sites are {', '.join(SITES)}.")
        if self.op not in _OPS:
            raise ValueError(f"Unknown op {self.op!r}; ops are {', '.join(_OPS)}.")
        if self.op != "fn" and not _finite(self.value):  # NaN or ±inf would fill every later number with NaN
            raise InputError(f"An intervention's value must be finite, got {self.value!r} ({self.op} at "
                             f"{self.site} of layer {self.layer}).")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "fn":
            return self.value(x)
        if self.rows is None and self.positions is None and self.index is None:
            if self.op == "scale":
                return x * self.value
            if self.op == "add":
                return x + self.value
            return torch.as_tensor(self.value, dtype=x.dtype, device=x.device).expand_as(x).clone()
        b, t, d = x.shape
        r = _arange_or(self.rows, b, x.device)[:, None, None]
        p = _arange_or(self.positions, t, x.device)[None, :, None]
        i = _arange_or(self.index, d, x.device)[None, None, :]
        x = x.clone()
        value = self.value
        if torch.is_tensor(value):
            value = value.to(dtype=x.dtype, device=x.device)
        if self.op == "scale":
            x[r, p, i] = x[r, p, i] * value
        elif self.op == "add":
            x[r, p, i] = x[r, p, i] + value
        else:
            x[r, p, i] = torch.broadcast_to(torch.as_tensor(value, dtype=x.dtype, device=x.device),
                                            x[r, p, i].shape)
        return x


Edit = Intervention  # the name before weight edits came; activation interventions are Interventions


def _arange_or(sel, n: int, device) -> torch.Tensor:
    if sel is None:
        return torch.arange(n, device=device)
    if isinstance(sel, slice):
        return torch.arange(n, device=device)[sel]
    out = torch.as_tensor(sel, device=device, dtype=torch.long).reshape(-1)
    return torch.where(out < 0, out + n, out)


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output, new):
    return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new


@contextmanager
def hooked(lm, capture: Iterable[tuple[str, int]] = (), edits: Iterable[Intervention] = (), detach: bool = True):
    """Install capture and edit hooks on ``lm.model`` for the ``with`` body; remove them on exit.

    Yields a dict ``{(site, layer): tensor}`` filled during the forward passes run inside. With
    ``detach=False`` the captured tensors keep their autograd graph (for attributions).
    """
    edits = list(edits)
    capture = set(capture)
    by_site: dict[tuple[str, int], list[Intervention]] = {}
    for e in edits:
        lm.check_layer(e.layer)
        by_site.setdefault((e.site, e.layer), []).append(e)
    for site, layer in capture:
        if site not in SITES:
            raise ValueError(f"Unknown site {site!r}; sites are {', '.join(SITES)}.")
        lm.check_layer(layer)
    store: dict[tuple[str, int], torch.Tensor] = {}
    handles = []
    batch_shape: dict[int, torch.Size] = {}  # some families (OPT) run the MLP on [batch*pos, d]

    def transform(key, x: torch.Tensor) -> torch.Tensor:
        flat = x.dim() == 2
        if flat:
            x = x.view(*batch_shape[key[1]], x.shape[-1])
        for e in by_site.get(key, ()):
            x = e.apply(x)
        if key in capture:
            store[key] = x.detach() if detach else x
        return x.reshape(-1, x.shape[-1]) if flat else x

    def record_shape(layer):
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            batch_shape[layer] = hidden.shape[:2]
        return hook

    def pre_hook(key, arg_name):
        def hook(module, args, kwargs):
            if args:
                new = transform(key, args[0])
                return (new,) + tuple(args[1:]), kwargs
            kwargs = dict(kwargs)
            kwargs[arg_name] = transform(key, kwargs[arg_name])
            return args, kwargs
        return hook

    def post_hook(key):
        def hook(module, args, output):
            x = _first(output)
            new = transform(key, x)
            return None if new is x else _replace_first(output, new)
        return hook

    try:
        for layer in sorted({layer for _, layer in set(by_site) | capture} if lm.flat_mlp else ()):
            handles.append(lm.blocks[layer].register_forward_pre_hook(record_shape(layer), with_kwargs=True))
        for key in sorted(set(by_site) | capture, key=lambda k: (k[1], SITES.index(k[0]))):
            site, layer = key
            module = lm.site_module(site, layer)
            if site == "resid_pre":
                h = module.register_forward_pre_hook(pre_hook(key, "hidden_states"), with_kwargs=True)
            elif site == "neurons":
                h = module.register_forward_pre_hook(pre_hook(key, "input"), with_kwargs=True)
            else:
                h = module.register_forward_hook(post_hook(key))
            handles.append(h)
        yield store
    finally:
        for h in handles:
            h.remove()


class _Replay(torch.nn.Module):
    """Stands in for a skipped block: returns a cached hidden state instead of computing. Other attributes
    are the block's own (some models' forwards read e.g. a block's ``attention_type``)."""

    def __init__(self, hidden: torch.Tensor, as_tuple: int, block: torch.nn.Module):
        super().__init__()
        self.hidden, self.as_tuple = hidden, as_tuple
        object.__setattr__(self, "_block", block)  # not registered as a submodule

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_block"], name)

    def forward(self, *args, **kwargs):
        if self.as_tuple:
            return (self.hidden,) + (None,) * (self.as_tuple - 1)
        return self.hidden


@contextmanager
def start_at(lm, layer: int, hidden: torch.Tensor):
    """Run only blocks ``>= layer``: the blocks below are swapped for replays of ``hidden``
    (the cached ``resid_pre`` of ``layer``, ``[batch, pos, d_model]``) and swapped back on exit.

    Results equal a full run whenever nothing below ``layer`` differs (slider ticks, causal tracing).
    """
    lm.check_layer(layer)
    blocks = lm.blocks
    originals = [blocks[i] for i in range(layer)]
    try:
        for i in range(layer):
            blocks[i] = _Replay(hidden, lm.block_output_arity, originals[i])
        yield
    finally:
        for i, block in enumerate(originals):
            blocks[i] = block


def collect(store: dict, site: str, layers: Iterable[int], row: int | None = 0) -> torch.Tensor:
    """Stack captured tensors into ``[layer, pos, ...]`` (one batch row) or ``[layer, batch, pos, ...]``, on the
    first layer's device (a split model's layers compute on several)."""
    parts = [store[site, layer] for layer in layers]
    out = torch.stack([p.to(parts[0].device) for p in parts])
    return out[:, row] if row is not None else out


def _finite(value) -> bool:
    if torch.is_tensor(value):
        return bool(torch.isfinite(value).all())
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True  # not a number: the op's own arithmetic says what is wrong
