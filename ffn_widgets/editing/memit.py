"""MEMIT (Meng et al. 2023) and AlphaEdit (Fang et al. 2025): many facts in one edit, spread over layers.

    requests = [{"prompt": f["prompt"], "subject": f["subject"], "target_new": f["target_new"]} for f in facts]
    b = fw.memit_edit(lm, requests)              # or a facts file; layers=None: the default range
    b = fw.alphaedit_edit(lm, requests)          # the same, projected to spare what the model knows
    b.undo()                                     # one log entry per call: undo, reset, save, load as for ROME

MEMIT, as the reference does it (SCIENCE.md §6):

1. For each fact, a target z for the residual stream (the block output) of the range's *last* layer at the
   subject's last token: ROME's value optimisation (KL(edited ‖ original) included) with δ added to that
   block's output (25 steps, clamp 0.75‖z‖, prefixes: "{}" and one 10-token text after each of "The",
   "Therefore", "Because", "I", "You"; the loss is a flat mean over all six prompts, as the reference's).
2. For each layer of the range in order, with the earlier layers already updated: the keys K of the facts at
   that layer, averaged as the reference's ``compute_ks`` does: within each group of contexts (the bare
   prompt; the prefixes), then over the groups, so the bare prompt weighs 1/2 and each prefix 1/10; the
   residual R = (Z − current z) / (layers left); and ΔW = R Kᵀ (λC + K Kᵀ)⁻¹ solved in float64 (λ = 15,000, GPT-J's; measured per model where known).

AlphaEdit replaces the λC term by a projection: P = U₀U₀ᵀ onto the eigenvectors of C with eigenvalues below
2e-2 (directions the layer's keys do not use), and ΔW = R Kᵀ P (P(K Kᵀ + K_p K_pᵀ) + α I)⁻¹ with K_p the keys
of the AlphaEdit entries already in the log (its memory follows undo) and α = 10. The update then leaves the
outputs of keys in the preserved space unchanged.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from ..data.facts import load_facts, target
from ..model import LM, InputError
from ..model.hooks import hooked
from ..model.long_runs import run_steps
from .log import LogEntry, LoggedEdit, WeightDelta
from .rome import RomeSettings, ValueOptimiser, check_float32, context_prefixes, default_layer, subject_keys
from .stats import DEFAULT_TOKENS, KeyMoments
from .tokens import pad_batch

METHODS = ("memit", "alphaedit")


@dataclass(frozen=True)
class MemitSettings(RomeSettings):
    """The reference defaults (GPT-J), and AlphaEdit's; the value optimisation's fields are ROME's."""

    steps: int = 25
    clamp: float = 0.75
    prefix_lengths: tuple = ((10, 5),)  # one 10-token text after each start word
    prefix_starts: tuple = ("The", "Therefore", "Because", "I", "You")
    mom2_weight: float | None = None  # λ; None: measured per model (editing/where.py), else GPT-J's 15,000
    nullspace_threshold: float = 2e-2
    l2: float = 10.0  # α


@dataclass(eq=False)
class BatchEdit(LoggedEdit):
    """One MEMIT or AlphaEdit call: its facts, layers, targets and entry in the model's edit log."""

    lm: LM
    method: str
    requests: list[dict]
    layers: list[int]
    prefixes: list[str]
    targets: torch.Tensor  # z per fact [n, d_model]
    losses: list[list[dict]] = field(default_factory=list)  # each fact's optimisation curve
    seconds: dict = field(default_factory=dict)
    entry: LogEntry | None = None

    def report(self, facts=None, k: int = 5):
        """Before → after on every fact's prompt and paraphrases (an :class:`~.report.EditReport`); ``facts``
        give true objects and paraphrases (default: the dev facts with the same prompts). "Before" is the
        model without this edit (other edits kept)."""
        from .report import batch_report

        return batch_report(self, facts, k)

    def __repr__(self):
        return (f"BatchEdit({self.method}, {len(self.requests)} facts, layers {self.layers[0]}–{self.layers[-1]}, "
                f"{'applied' if self.applied else 'not applied'})")


def default_layers(lm: LM, last: int | None = None) -> list[int]:
    """Five layers ending at ``last`` (default: the default ROME layer; MEMIT: GPT-2 XL 13–17 around its ROME
    layer 17; GPT-J 3–8)."""
    last = default_layer(lm) if last is None else lm.check_layer(int(last))
    return list(range(max(0, last - 4), last + 1))


def mom2_weight(lm: LM, settings: MemitSettings) -> float:
    from .where import MEASURED_MOM2_WEIGHTS

    if settings.mom2_weight is not None:
        return float(settings.mom2_weight)
    return MEASURED_MOM2_WEIGHTS.get(lm.name.split("/")[-1], 15000.0)


def memit_edit(lm: LM, requests, layers=None, **kwargs) -> BatchEdit:
    """Write every fact of ``requests`` (dicts with prompt, subject, target_new; or a facts file) at once."""
    return run_steps(batch_steps(lm, requests, layers, method="memit", **kwargs))


def alphaedit_edit(lm: LM, requests, layers=None, **kwargs) -> BatchEdit:
    """MEMIT's update projected onto the null space of the preserved keys (see the module docstring)."""
    return run_steps(batch_steps(lm, requests, layers, method="alphaedit", **kwargs))


def batch_steps(lm: LM, requests, layers=None, *, method: str = "memit", seed: int = 0, corpus=None,
                tokens: int = DEFAULT_TOKENS, settings: MemitSettings = MemitSettings(), apply: bool = True,
                progress=False) -> Iterator[dict]:
    """The edit as steps (progress dicts, like :func:`~ffn_widgets.editing.rome.rome_steps`); returns the
    :class:`BatchEdit`. Nothing is written until the end; stopping early writes nothing."""
    t0 = time.perf_counter()
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
    check_float32(lm)
    requests = check_requests(lm, requests)
    layers = default_layers(lm) if layers is None else sorted({lm.check_layer(int(x)) for x in layers})
    if not layers:
        raise InputError("Give at least one layer.")
    prefixes = context_prefixes(lm, settings.prefix_lengths, seed, settings.prefix_starts)
    texts = [""] + prefixes
    groups = [1] + [count for _, count in settings.prefix_lengths]  # the bare prompt, then each prefix group
    last = layers[-1]

    zs, curves = [], []
    for i, r in enumerate(requests):
        contexts = [p + r["prompt"] for p in texts]
        opt = ValueOptimiser(lm, contexts, [len(p) for p in texts], r["subject"], r["target_ids"], last, settings,
                             site="block")
        for record in opt.run():
            yield {"stage": "optimise", "fact": i, "message": f"Target {i + 1} of {len(requests)}: step "
                   f"{record['step'] + 1}, loss {record['loss']:.3f}", "fraction": (i + 1) / len(requests), **record}
        zs.append(opt.value + opt.delta.detach())
        curves.append(opt.curve)
    Z = torch.stack(zs).double().cpu()

    moments = KeyMoments(lm, layers, corpus, tokens)
    for fraction in moments.steps(progress):
        yield {"stage": "statistics", "message": f"Key statistics of layers {layers[0]}–{last}", "fraction": fraction}

    deltas, keys = [], {}
    with lm.edits.temporary():  # each layer's update in place for the next layer's keys; all removed after
        for i, layer in enumerate(layers):
            K = torch.stack([template_mean(subject_keys(lm, [p + r["prompt"] for p in texts], r["subject"], layer,
                                                        [len(p) for p in texts]), groups)
                             for r in requests]).double().cpu()
            R = (Z - block_outputs(lm, requests, last)) / (len(layers) - i)
            C = moments.result[layer]
            if method == "memit":
                right = torch.linalg.solve(mom2_weight(lm, settings) * C + K.T @ K, K.T).T  # [n, d_mlp]
            else:
                P = null_space_projector(C, settings.nullspace_threshold)
                A = P @ (K.T @ K + preserved_keys(lm, layer)) + settings.l2 * torch.eye(lm.d_mlp, dtype=torch.float64)
                right = torch.linalg.solve(A, P @ K.T).T
            delta = WeightDelta(f"{lm.arch.layers}.{layer}.{lm.arch.down}", R.T.float(), right.float())
            lm.edits.apply(LogEntry(method, [], [layer], [delta]))
            deltas.append(delta)
            keys[f"keys.{layer}"] = K.float()
            yield {"stage": "update", "message": f"Layer {layer}: update computed", "fraction": (i + 1) / len(layers)}

    edit = BatchEdit(lm, method, [{k: v for k, v in r.items() if k != "target_ids"} for r in requests], layers,
                     prefixes, Z.float(), curves)
    facts = [{"prompt": r["prompt"], "subject": r["subject"], "target": r["target_new"]} for r in requests]
    edit.entry = LogEntry("MEMIT" if method == "memit" else "AlphaEdit", facts, layers, deltas,
                          {"facts": len(requests), "seed": seed, "prefixes": prefixes}, edit=edit,
                          state=keys if method == "alphaedit" else {})
    if apply:
        lm.edits.apply(edit.entry)
    edit.seconds = {"total": time.perf_counter() - t0}
    return edit


def template_mean(keys: torch.Tensor, groups: list[int]) -> torch.Tensor:
    """The mean over groups of each group's mean key, as the reference's ``compute_ks`` averages: the bare
    prompt is a group of its own, so it weighs 1/2 and each of five prefixes 1/10 (not 1/6 each)."""
    if sum(groups) != len(keys):
        raise ValueError(f"{len(keys)} keys for groups of {groups}")
    return torch.stack([g.mean(0) for g in keys.split(groups)]).mean(0)


def check_requests(lm: LM, requests) -> list[dict]:
    """Requests with their target ids; a clear error naming the offending request."""
    if isinstance(requests, str) or hasattr(requests, "__fspath__"):
        requests = load_facts(path=requests)
    requests = list(requests or [])
    if not requests:
        raise InputError("The batch is empty: give requests with prompt, subject and target_new.")
    out, seen = [], {}
    for i, r in enumerate(requests):
        missing = [k for k in ("prompt", "subject", "target_new") if not isinstance(r.get(k), str) or not r[k].strip()]
        if missing:
            raise InputError(f"Request {i} ({r.get('prompt', r)!r}) lacks {', '.join(missing)}.")
        try:
            lm.encode(r["prompt"])
            lm.find_subject(r["prompt"], r["subject"])
        except InputError as exc:
            raise InputError(f"Request {i} ({r['prompt']!r}): {exc}") from None
        new = target(r["target_new"])
        fact = (r["subject"], r.get("relation") or r["prompt"])  # one subject may hold facts of several relations
        if fact in seen and seen[fact][1] != new:
            j, other = seen[fact]
            raise InputError(f"Requests {j} and {i} give {r['subject']!r} two targets ({other!r} and {new!r}) for "
                             f"the same fact; one batch can write one object per subject and relation.")
        seen.setdefault(fact, (i, new))
        out.append({"prompt": r["prompt"], "subject": r["subject"], "target_new": new,
                    "target_ids": lm.target_ids(new)})
    return out


def block_outputs(lm: LM, requests: list[dict], layer: int) -> torch.Tensor:
    """``[n, d_model]`` float64: the block output of ``layer`` at each bare prompt's subject (current weights)."""
    batch = pad_batch(lm, [lm.encode(r["prompt"]).tolist() for r in requests])
    spots = torch.as_tensor([lm.find_subject(r["prompt"], r["subject"])[1] - 1 for r in requests])
    with torch.no_grad(), hooked(lm, [("resid_post", layer)]) as got:
        lm.model(input_ids=batch.ids, attention_mask=batch.mask, use_cache=False)
    out = got["resid_post", layer]
    return out[torch.arange(len(requests), device=out.device), spots.to(out.device)].double().cpu()


_PROJECTORS: dict[tuple, torch.Tensor] = {}


def null_space_projector(C: torch.Tensor, threshold: float) -> torch.Tensor:
    """P = U₀U₀ᵀ over the eigenvectors of C with eigenvalues below ``threshold`` (remembered per C)."""
    key = (tuple(C.shape), float(C.sum()), float(C.trace()), float(C[0, -1]), threshold)
    if key not in _PROJECTORS:
        values, vectors = torch.linalg.eigh(C.double())
        U = vectors[:, values < threshold]
        _PROJECTORS.clear()  # one at a time: each is d_mlp² floats
        _PROJECTORS[key] = U @ U.T
    return _PROJECTORS[key]


def preserved_keys(lm: LM, layer: int) -> torch.Tensor:
    """Σ K_pᵀK_p over the AlphaEdit entries in the log at ``layer``: the memory of earlier edits' keys."""
    total = torch.zeros(lm.d_mlp, lm.d_mlp, dtype=torch.float64)
    for e in lm.edits.entries:
        K = e.state.get(f"keys.{layer}")
        if K is not None:
            total += K.double().T @ K.double()
    return total
