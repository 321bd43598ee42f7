"""What the exercise checkers share: each computes by a route of its own (plain torch hooks on the Hugging Face
modules, the weights read directly), not through the analysis the lesson used."""
from __future__ import annotations

import torch

from ..model import LM, InputError


def _int(answer, name="a whole number") -> int:
    if isinstance(answer, bool) or not float(answer).is_integer():
        raise ValueError(f"expected {name}, got {answer!r}")
    return int(answer)


def _close(answer, right: float, rel: float = 1e-3, abs_: float = 1e-4) -> bool:
    return abs(float(answer) - right) <= max(abs_, rel * abs(right))


def _layer(lm: LM, layer: int) -> int:
    """A lesson's layer on the default model; the nearest that exists on a smaller one."""
    return min(layer, lm.n_layers - 1)


def _last_probs(lm: LM, prompt: str) -> torch.Tensor:
    """Next-token probabilities of a plain Hugging Face forward (no package hooks)."""
    with torch.no_grad():
        return torch.softmax(lm.model(input_ids=lm.encode(prompt)[None]).logits[0, -1].float(), -1).cpu()


def _tid(lm: LM, text: str) -> int:
    return lm.target_ids(text)[0]


def _top_text(lm: LM, tid: int) -> str:
    return lm.token_strings([int(tid)])[0]


def _gain(lm: LM) -> torch.Tensor:
    """The final norm's per-dimension gain, read from its weight (1 where it has none)."""
    w = getattr(lm.final_norm, "weight", None)
    return torch.ones(lm.d_model) if w is None else w.detach().float().cpu()


def _value_logits(lm: LM, layer: int, neurons, signs=None) -> torch.Tensor:
    """``[n, vocab]``: each value vector (times its sign) through the final norm's gain and the unembedding."""
    v = lm.values(layer).detach().float().cpu()[torch.as_tensor(neurons)]
    if signs is not None:
        v = v * signs[:, None]
    return (v * _gain(lm)) @ lm.W_U.detach().float().cpu().T


def _units(answer) -> list[tuple[int, int]]:
    """(layer, neuron) pairs from one pair or a list of pairs."""
    one = isinstance(answer, (tuple, list)) and len(answer) == 2 and not isinstance(answer[0], (tuple, list))
    return [(_int(layer, "a layer"), _int(neuron, "a neuron")) for layer, neuron in ([answer] if one else answer)]


def _by_layer(lm: LM, units) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for layer, neuron in units:
        out.setdefault(lm.check_layer(layer), []).append(lm.check_neuron(neuron))
    return out


def _p_suppressed(lm: LM, prompt: str, by_layer: dict, tid: int, position=None) -> float:
    """p(target) with neurons set to 0 (``{layer: neuron list or slice}``, at every position or one) by plain
    forward pre-hooks on the down projections."""
    def zero(neurons):
        def hook(module, args):
            x = args[0].clone()
            x[:, slice(None) if position is None else position, neurons] = 0
            return (x, *args[1:])
        return hook

    handles = [lm.site_module("neurons", layer).register_forward_pre_hook(zero(ns)) for layer, ns in by_layer.items()]
    try:
        return float(_last_probs(lm, prompt)[tid])
    finally:
        for h in handles:
            h.remove()


def _patched(lm: LM, clean_states: torch.Tensor, corrupted: str, layer: int, position: int, tid: int) -> float:
    """p(target) of the corrupted prompt with the clean block output of ``layer`` (``clean_states``
    ``[layer, pos, d_model]``) restored at ``position``, by a plain forward hook on the block."""
    state = clean_states[layer, position]

    def hook(module, args, output):
        h = output[0] if isinstance(output, tuple) else output
        h = h.clone()
        h[:, position] = state.to(h.device, h.dtype)
        return (h, *output[1:]) if isinstance(output, tuple) else h

    handle = lm.blocks[layer].register_forward_hook(hook)
    try:
        return float(_last_probs(lm, corrupted)[tid])
    finally:
        handle.remove()


def _lens_tops(lm: LM, prompt: str) -> tuple[list[int], int]:
    """The lens's top token after each block at the last position, and the model's own top token."""
    run = lm.run(prompt, capture=("resid_post",))
    tops = lm.unembed(run.resid_post[:, -1]).argmax(-1).tolist()
    return tops, int(run.logits[-1].argmax())


def _log_entry(lm: LM, kinds: tuple[str, ...]):
    entries = [e for e in lm.edits if e.method in kinds]
    if not entries:
        raise InputError(f"there is no {' or '.join(kinds)} edit in the model's log: run the edit cell first")
    return entries[-1]


def _delta_norms(lm: LM, entry) -> dict[int, float]:
    """‖ΔW‖ of each layer an entry touched: the weights now minus the weights without that entry."""
    paths = {d.path: layer for d, layer in zip(entry.deltas, entry.layers)}
    now = {p: lm.oriented_weight(lm.model.get_submodule(p)).detach().clone() for p in paths}
    with lm.edits.without(entry):
        return {layer: float((now[p] - lm.oriented_weight(lm.model.get_submodule(p)).detach()).norm())
                for p, layer in paths.items()}
