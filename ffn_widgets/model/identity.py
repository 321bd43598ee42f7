"""One identity for a model's weights: a version that changes whenever any parameter changes, and a
fingerprint of their content for caches on disk.

Torch counts in-place writes per tensor (``_version``), but a write through ``param.data[...] = x`` goes to
an alias with a counter of its own, so the change would go unseen. :func:`track` re-classes each parameter
so that ``.data`` returns ``detach()`` (the same storage *and* counter); every write is then counted, and
reading the version stays cheap (a pass over the parameters' counters, no weights read).

    tracker = WeightsVersion(model)
    v = tracker.read()                  # an int; equal while nothing changed
    with torch.no_grad(): model.lm_head.weight.data[3] += 1
    assert tracker.read() != v
"""
from __future__ import annotations

import hashlib
import zlib

import torch

from .placement import named_weights, offload_slots


class _TrackedParameter(torch.nn.Parameter):
    """A parameter whose ``.data`` shares its version counter, so writes through it are counted."""

    @property
    def data(self):
        return self.detach()

    @data.setter
    def data(self, value):
        torch._C.TensorBase.data.__set__(self, value)


def track(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Re-class the model's plain parameters as tracked ones (in place; they stay ``nn.Parameter``)."""
    params = list(model.parameters())
    for p in params:
        if type(p) is torch.nn.Parameter:
            p.__class__ = _TrackedParameter
    return params


class WeightsVersion:
    """A model's weights version: bumped when a parameter is written in place (through any alias), replaced,
    moved or cast (a submodule swapped for a new one after loading is not seen: the module list is read once). One of these per model; every cache that depends on weights keys on :meth:`read`."""

    def __init__(self, model: torch.nn.Module):
        self.model, self.version, self._state = model, 0, None
        self._offloaded = offload_slots(model)  # accelerate-offloaded weights written in memory (edits)
        self._modules = list(model.modules())  # walking the module tree each read would cost ~1 ms
        track(model)

    def read(self) -> int:
        params = [p for m in self._modules for p in m._parameters.values() if p is not None]
        for p in params:
            if type(p) is torch.nn.Parameter:  # replaced since (load_state_dict(assign=True), a new module)
                p.__class__ = _TrackedParameter
        # a cast or move changes data_ptr; an offloaded weight (on "meta" between forwards, a new tensor each time
        # accelerate brings it in) is followed through its offload slot below instead
        state = tuple((id(p), p.data_ptr(), p._version) for p in params if p.device.type != "meta")
        if self._offloaded:
            kept = (memory.get(key) for memory, key in self._offloaded)
            state += tuple((id(t), t._version) for t in kept if t is not None)
        if state != self._state:
            if self._state is not None:
                self.version += 1
            self._state = state
        return self.version

    def bump(self) -> int:
        """Count a change torch cannot see (e.g. weights swapped in from outside the model's parameters)."""
        self.read()
        self.version += 1
        return self.version


def fingerprint(model: torch.nn.Module) -> str:
    """A hash of the config and a CRC of every parameter's bytes: names a model's weights across processes,
    for caches on disk (deterministic, unlike float sums). Reads every weight once (about 0.3 s per GB)."""
    h = hashlib.blake2b(model.config.to_json_string(use_diff=False).encode(), digest_size=8)
    with torch.no_grad():
        for name, p in named_weights(model):
            crc = zlib.crc32(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
            h.update(f"{name}:{crc};".encode())
    return h.hexdigest()
