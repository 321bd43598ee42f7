"""Mining's per-batch bookkeeping, in integers: each (activation, corpus position) is one int64 key ordered
like the ranking (ties: the earlier position first), so a neuron's top-k is a top-k of keys; histogram bins
come straight from the float's bits (sign, exponent, top 2 mantissa bits)."""
from __future__ import annotations

import numpy as np
import torch

from .index import MAX_EXP, MIN_EXP, N_BINS, N_MAG, SUB_BINS

PAD = torch.iinfo(torch.int64).min  # empty top-k slot (fewer than k tokens seen)
LOW = 2 ** 32  # key = ordered activation * 2^32 + (2^32 - 1 - corpus position)


# ---- keys: one int64 per (activation, corpus position), ordered like the ranking ----------------
def ordered(x: torch.Tensor) -> torch.Tensor:
    """float32 -> int32 with the same order (negatives flipped)."""
    b = x.contiguous().view(torch.int32)
    return torch.where(b >= 0, b, b ^ 0x7FFFFFFF)


def keys_of(values: torch.Tensor, gidx: torch.Tensor) -> torch.Tensor:
    return ordered(values).to(torch.int64) * LOW + (LOW - 1 - gidx)


def decode_keys(keys: torch.Tensor, offsets: torch.Tensor):
    """Keys ``[..., k]`` -> (activation float32, sentence int32, position int32); empty slots -> -inf, -1, -1."""
    pad = keys == PAD
    gidx = LOW - 1 - torch.remainder(keys, LOW)
    sentence = torch.searchsorted(offsets, gidx, right=True) - 1
    position = gidx - offsets[sentence.clamp(min=0)]
    return (decode_values(keys), torch.where(pad, -1, sentence).to(torch.int32),
            torch.where(pad, -1, position).to(torch.int32))


def encode_keys(value, sentence, position, offsets: torch.Tensor) -> torch.Tensor:
    value, sentence, position = (torch.as_tensor(np.array(a)) for a in (value, sentence, position))
    pad = sentence < 0
    gidx = offsets[sentence.clamp(min=0).long()] + position.long()
    return torch.where(pad, PAD, keys_of(value.float(), gidx))


# ---- histogram bins straight from the float's bits: sign, exponent, top 2 mantissa bits ---------
def bin_table() -> torch.Tensor:
    """Bin of each ``float32 bits >> 21`` code in -1024..1023, stored at ``code & 2047`` (negative codes
    from the end)."""
    code = torch.cat([torch.arange(0, 1024), torch.arange(-1024, 0)]).to(torch.int32)
    mag = ((code & 1023) - ((127 + MIN_EXP) * SUB_BINS) + 1).clamp(0, N_MAG)
    return torch.where(code < 0, N_MAG - mag, N_MAG + mag).to(torch.int32)


assert SUB_BINS == 4 and MAX_EXP - MIN_EXP == 16, "the bit trick below assumes 2 mantissa bits"
_TABLES: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}


def _tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The bin table and the neuron offsets' unit on ``device`` (made once per device: the activations'
    device decides where the bookkeeping runs)."""
    if device not in _TABLES:
        _TABLES[device] = bin_table().to(device), torch.ones(1, dtype=torch.int64, device=device)
    return _TABLES[device]


def add_histogram(counts: torch.Tensor, x: torch.Tensor, neuron_offset: torch.Tensor) -> None:
    """Add the (neuron, bin) counts of float32 activations ``[N, d]`` to ``counts`` ``[d * N_BINS]`` (all three
    on one device)."""
    table, one = _tables(x.device)
    code = (x.view(torch.int32) >> 21).view(-1) & 2047
    index = torch.index_select(table, 0, code).view(x.shape)
    index += neuron_offset
    if x.shape[0] < N_BINS:  # few tokens: scatter them; a full bincount would cost more than the data
        counts.index_add_(0, index.view(-1), one.expand(index.numel()))
    else:
        counts += torch.bincount(index.view(-1), minlength=counts.numel())


def merge_topk(keys: torch.Tensor, x: torch.Tensor, gidx: torch.Tensor) -> torch.Tensor:
    """New top-k keys ``[d, k]`` (best first) of a layer after seeing activations ``x`` ``[N, d]`` at corpus
    positions ``gidx`` ``[N]`` (all on one device).

    Only values at least the neuron's current k-th best can enter, and at least the batch's own k-th
    best (ties included); they are few, so they are merged per affected neuron instead of ranking the
    whole batch.
    """
    d, k = keys.shape
    floor = decode_values(keys[:, -1])
    qualify = x >= floor
    if x.shape[0] > k and int(qualify.sum()) > x.numel() // 8:
        # early batches: raise the bar to the k-th best of the maxima of 4k groups of rows (k distinct
        # entries reach it, so the batch's own top k, ties included, all do)
        groups = min(4 * k, x.shape[0])
        n = x.shape[0] // groups * groups
        floor = torch.maximum(floor, x[:n].view(groups, n // groups, d).amax(1).topk(k, dim=0).values[-1])
        qualify = x >= floor
    token, neuron = qualify.nonzero(as_tuple=True)
    if neuron.numel() == 0:
        return keys
    neuron, order = torch.sort(neuron, stable=True)  # grouped by neuron
    token = token[order]
    counts = torch.bincount(neuron, minlength=d)
    starts = torch.cumsum(counts, 0) - counts
    affected = counts.nonzero().squeeze(1)
    row = (torch.cumsum(counts > 0, 0) - 1)[neuron]
    slot = torch.arange(neuron.numel(), device=neuron.device) - starts[neuron]
    candidates = torch.full((affected.numel(), int(counts.max())), PAD, dtype=torch.int64, device=keys.device)
    candidates[row, slot] = keys_of(x[token, neuron], gidx[token])
    out = keys.clone()
    out[affected] = torch.cat([keys[affected], candidates], 1).topk(k, dim=1).values
    return out


def decode_values(keys: torch.Tensor) -> torch.Tensor:
    o32 = torch.div(keys, LOW, rounding_mode="floor").to(torch.int32)
    value = torch.where(o32 >= 0, o32, o32 ^ 0x7FFFFFFF).view(torch.float32)
    return torch.where(keys == PAD, float("-inf"), value)
