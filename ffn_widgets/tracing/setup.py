"""Setting a trace up: find the subject's tokens, draw the noise (σ from the embeddings, remembered until
the weights change), run the clean and corrupted runs once, and check the target the model predicts."""
from __future__ import annotations

import torch

from ..model import LM, InputError
from ..model.placement import read
from .engine import KINDS, TraceSetup, base_runs


def embedding_sigma(lm: LM) -> float:
    """Standard deviation of the entries of what the noise is added to: the embedding module's output
    (remembered until the weights change)."""
    return lm.memo("embedding_sigma", lambda: _embedding_sigma(lm))


def _embedding_sigma(lm: LM) -> float:
    emb = lm.model.get_submodule(lm.arch.embed)
    weight = read(emb).detach().float()
    probe = torch.arange(min(256, weight.shape[0]), device=lm.device_of(emb))
    with torch.no_grad():
        scale = emb(probe).float().norm().cpu() / weight[probe.to(weight.device)].norm().cpu().clamp_min(1e-12)
    return float(weight.std() * scale)


def find_subject(lm: LM, prompt: str, subject: str) -> tuple[int, int]:
    """Token range ``[start, stop)`` covering the first occurrence of ``subject`` in ``prompt``."""
    return lm.find_subject(prompt, subject)


def checked_target(lm: LM, runs: dict, target, check: bool) -> tuple[int, str]:
    """The target's id and text, checked against the clean run (``runs`` of :func:`base_runs`)."""
    tid, text = lm.resolve_target(target, runs["logits"])  # multi-token targets: p(first token)
    if target is None:
        return tid, text
    probs = torch.softmax(runs["logits"], -1)
    rank = int((probs > probs[tid]).sum())
    if check and rank >= 10:
        top = ", ".join(repr(t) for t in lm.token_strings(probs.topk(5).indices))
        raise InputError(f"The model does not predict {target!r} here: it is ranked {rank + 1} with p = "
                         f"{float(probs[tid]):.2g} (top: {top}). Tracing measures how a prediction is "
                         "recalled; pick a target the model predicts, target=None for its top token, "
                         "or check_target=False to trace it anyway.")
    return tid, text


def prepare_trace(lm: LM, prompt: str, subject: str, target=None, samples: int = 10, noise: float | None = None,
                  seed: int = 0, check_target: bool = True) -> TraceSetup:
    """A noise corruption of ``subject``: ``samples`` Gaussian draws (fixed ``seed``) of σ = ``noise``."""
    ids = lm.encode(prompt)
    start, stop = find_subject(lm, prompt, subject)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise InputError(f"samples must be a positive integer, got {samples!r}.")
    sigma = 3 * embedding_sigma(lm) if noise is None else float(noise)
    if not sigma >= 0:
        raise InputError(f"noise is the standard deviation of the noise and must be >= 0, got {noise!r}.")
    gen = torch.Generator().manual_seed(int(seed))
    draws = (torch.randn(samples, stop - start, lm.d_model, generator=gen) * sigma).to(lm.device, lm.dtype)
    corrupt_ids, noised = ids[None].repeat(samples, 1), list(range(start, stop))
    runs = base_runs(lm, ids, corrupt_ids, draws, noised)
    tid, text = checked_target(lm, runs, lm.continuation(prompt, target), check_target)
    return TraceSetup(prompt, ids, lm.token_strings(ids), tid, text, corrupt_ids, draws, noised, start,
                      (start, stop), None, sigma, runs=runs, seed=int(seed))


def prepare_patch(lm: LM, clean_prompt: str, corrupted_prompt: str, target=None,
                  check_target: bool = True) -> TraceSetup:
    """Activation patching: the corrupted run reads ``corrupted_prompt`` (same token count)."""
    ids, other = lm.encode(clean_prompt), lm.encode(corrupted_prompt)
    if len(ids) != len(other):
        raise InputError(f"Patching restores states position by position, so both prompts need the same number "
                         f"of tokens: the clean prompt has {len(ids)}, the corrupted one {len(other)} "
                         f"({lm.token_strings(other)}). Pick a replacement with as many tokens.")
    differ = (ids != other).nonzero().flatten().tolist()
    if not differ:
        raise InputError("The two prompts are the same tokens: there is nothing to patch.")
    runs = base_runs(lm, ids, other[None])
    tid, text = checked_target(lm, runs, lm.continuation(clean_prompt, target), check_target)
    return TraceSetup(clean_prompt, ids, lm.token_strings(ids), tid, text, other[None], None, [], differ[0],
                      (differ[0], differ[-1] + 1), corrupted_prompt, None, runs=runs)


def check_kinds(kind) -> tuple[str, ...]:
    kinds = KINDS if kind == "all" else (kind,) if isinstance(kind, str) else tuple(kind)
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise InputError(f"kind must be one of {', '.join(KINDS)} or 'all', got {kind!r}.")
    return kinds


def check_window(window) -> int:
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise InputError(f"window must be a positive number of layers, got {window!r}.")
    return window
