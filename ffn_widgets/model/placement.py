"""Where a model's weights live and where its modules compute: one device, or spread by accelerate over
several devices with CPU or disk offload (``device_map``).

accelerate leaves an offloaded module's parameters on the ``meta`` device and hooks the module to load
them from a ``weights_map`` (memory or the safetensors on disk) for each forward. Reading ``module.weight``
then gives a shape without numbers, and writing it changes nothing. The package reads and writes weights
through :func:`read` and :func:`writable` only:

    w = read(module)            # the real tensor, wherever it is kept
    w = writable(module)        # a tensor the module's forwards will see; in-place writes persist
    execution_device(module)    # where the module computes (its hook's device, else its weights')

``writable`` keeps a disk-offloaded weight in memory from its first write on (an edit touches a few
matrices), so every later forward, read and undo sees the edited numbers.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch


def best_device() -> torch.device:
    """The accelerator a freshly loaded model should go to: CUDA, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _hooks(module: torch.nn.Module) -> Iterator:
    hook = getattr(module, "_hf_hook", None)
    stack = [hook] if hook is not None else []
    while stack:
        h = stack.pop()
        stack.extend(getattr(h, "hooks", ()))  # accelerate's SequentialHook
        yield h


def execution_device(module: torch.nn.Module) -> torch.device:
    """The device ``module`` computes on: an accelerate hook's execution device, else where its own (or its
    first submodule's) weights are."""
    for h in _hooks(module):
        device = getattr(h, "execution_device", None)
        if device is not None:
            return torch.device(device if not isinstance(device, int) else f"cuda:{device}")
    for p in module.parameters():
        if p.device.type != "meta":
            return p.device
    for sub in module.modules():
        if sub is not module and getattr(sub, "_hf_hook", None) is not None:
            return execution_device(sub)
    return torch.device("cpu")


def _slot(module: torch.nn.Module, name: str) -> tuple[Mapping, str]:
    """The mapping that holds an offloaded parameter and its key there (the prefix resolved)."""
    for h in _hooks(module):
        weights = getattr(h, "weights_map", None)
        if getattr(h, "offload", False) and weights is not None:
            key = name
            while hasattr(weights, "dataset") and hasattr(weights, "prefix"):  # accelerate's PrefixedDataset
                key, weights = weights.prefix + key, weights.dataset
            return weights, key
    raise RuntimeError(f"{type(module).__name__}.{name} is on the meta device and no offload hook holds it: "
                       "load the model with its weights (device_map placement keeps them reachable).")


def is_offloaded(module: torch.nn.Module, name: str = "weight") -> bool:
    p = getattr(module, name, None)
    return p is not None and p.device.type == "meta"


def read(module: torch.nn.Module, name: str = "weight") -> torch.Tensor:
    """The parameter's numbers: the parameter itself, or for an offloaded one the tensor its hook would load."""
    p = getattr(module, name)
    if p.device.type != "meta":
        return p
    weights, key = _slot(module, name)
    return weights[key]


def writable(module: torch.nn.Module, name: str = "weight") -> torch.Tensor:
    """The tensor whose in-place writes the module's forwards see. For a disk-offloaded weight, it is read
    once into the offload loader's in-memory ``state_dict``, which the loader consults first."""
    p = getattr(module, name)
    if p.device.type != "meta":
        return p
    weights, key = _slot(module, name)
    memory = getattr(weights, "state_dict", None)  # accelerate's OffloadedWeightsLoader
    if isinstance(memory, dict):
        if key not in memory:
            memory[key] = weights[key].clone()
        return memory[key]
    if isinstance(weights, dict):  # cpu_offload: the weights already live in a dict in memory
        return weights[key]
    raise RuntimeError(f"Cannot write the offloaded {type(module).__name__}.{name}: its store is read-only.")


def offload_slots(model: torch.nn.Module) -> list[tuple[dict, str]]:
    """(in-memory store, key) of every offloaded parameter: where a write to it would land. The placement
    does not change after loading, so callers compute this once."""
    out = []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if p.device.type == "meta":
                weights, key = _slot(module, name)
                memory = getattr(weights, "state_dict", weights)
                if isinstance(memory, dict):
                    out.append((memory, key))
    return out


def named_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``named_parameters`` with each offloaded parameter's real numbers instead of its meta placeholder."""
    seen = set()
    for prefix, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            yield (f"{prefix}.{name}" if prefix else name), read(module, name)


def is_split(model: torch.nn.Module) -> bool:
    """True when accelerate placed the model's modules (several devices, or offload)."""
    return any(getattr(m, "_hf_hook", None) is not None for m in model.modules())
