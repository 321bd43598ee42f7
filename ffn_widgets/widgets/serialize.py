"""Arrays to the browser as binary buffers, never JSON lists.

``pack(array, dtype)`` gives ``{"dtype", "shape", "data": memoryview}``; put it anywhere inside a synced
``Dict``/``List`` traitlet and ipywidgets sends ``data`` as a binary buffer. The JS side decodes it with
``decode()`` in ``js/src/core/arrays.ts``. Data is little-endian and C-ordered. ``float16`` halves the size of
grids that only need three significant digits (the heatmaps); the browser widens it to float32.
"""
from __future__ import annotations

import numpy as np

DTYPES = {"float32": "<f4", "float16": "<f2", "int32": "<i4", "uint8": "u1", "uint16": "<u2"}


def pack(array, dtype: str = "float32") -> dict:
    """A torch tensor, numpy array or nested list as a binary payload of the given dtype."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}.")
    if hasattr(array, "detach"):  # torch, without importing it
        array = array.detach().float().cpu().numpy() if array.is_floating_point() else array.detach().cpu().numpy()
    a = np.asarray(array)
    if dtype.startswith(("int", "uint")) and a.dtype.kind == "f":
        raise ValueError(f"Refusing to truncate floats to {dtype}; round them first.")
    if dtype in ("float16",) and a.size and np.nanmax(np.abs(a[np.isfinite(a)]), initial=0) > 65504:
        raise ValueError("Values exceed the float16 range (65504); send float32.")
    out = np.ascontiguousarray(a, dtype=DTYPES[dtype])
    if dtype.startswith(("int", "uint")) and a.size and not np.array_equal(out, a):
        raise ValueError(f"Values do not fit in {dtype}.")
    return {"dtype": dtype, "shape": list(out.shape), "data": memoryview(out.tobytes())}


def unpack(payload: dict) -> np.ndarray:
    """Inverse of :func:`pack` (for tests and for payloads coming back from the browser)."""
    dtype = payload["dtype"]
    if dtype not in DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}.")
    data = payload["data"]
    raw = data.tobytes() if isinstance(data, memoryview) else bytes(data)
    return np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(payload["shape"])


def nbytes(value) -> int:
    """Bytes of all binary buffers inside a (nested) payload; the rest is small JSON."""
    if isinstance(value, (memoryview, bytes, bytearray)):
        return memoryview(value).nbytes
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    return 0


def neuron_rows(ranking, **extra) -> dict:
    """A neuron ranking (:class:`~ffn_widgets.NeuronRanking`) as the rows the neuron tables draw."""
    return {"layer": ranking.layer, "position": ranking.position, "token": ranking.token,
            "neurons": pack(ranking.neurons, "int32"), "act": pack(ranking.activations, "float32"),
            "contrib": pack(ranking.contributions, "float32"), "value_top": ranking.value_top, **extra}
