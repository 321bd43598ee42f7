"""ROME (Meng et al. 2022): rewrite one fact with a rank-one change of one MLP's down projection.

    e = fw.rome_edit(lm, "The Eiffel Tower is located in the city of", subject="The Eiffel Tower",
                     target=" Rome")
    e.layer, e.delta_norm, e.loss_curve, e.figure()
    e.undo()                               # or lm.edits.undo(e); lm.edits.reset()
    with fw.rome_edit(lm, ...) as e: ...   # removed again when the block ends, errors included

The steps, as the reference implementation takes them (SCIENCE.md §5):

1. Prefixes: 20 short texts the model writes itself (10 of 5 tokens, 10 of 10, top-5 sampling) each
   followed by ". ", seeded and stored with the edit, so the same edit can be made again.
2. Key k*: the down projection's input at the subject's last token, averaged over the prompt and the prompt
   after each prefix. u = C⁻¹k* with C the key statistics (:mod:`.stats`).
3. Value: δ added to the down projection's output at the subject's last token of every prefixed prompt
   (each followed by the target's first tokens) and of "{subject} is a"; Adam minimises the new target's
   mean NLL + 0.0625·KL(edited ‖ original) = Σ p_edited (log p_edited − log p_original) of the next-token
   distribution at the subject of the KL prompt + 0.5·‖δ‖/‖v‖², clamped to ‖δ‖ ≤ 4‖v‖. The blocks below
   the edit layer do not change, so their output is computed once and each step runs only the blocks from
   the edit layer up.
4. Update. ``method="rome"``, as the original code: W += δ uᵀ / (k·u) with k the bare prompt's key (the
   numerator v* − W k is δ, v being the output at k), so the edited layer maps that key to v* = v + δ.
   ``method="r-rome"`` (default; Gupta et al. 2024, which avoids the original's occasional explosion): the
   prefix-averaged key k* in the numerator and the denominator, W += (v* − W k*) uᵀ / (k*·u), so the edited
   layer maps k* exactly to v*.

Where the reference does something odd that is not copied: its prefixes are sampled unseeded and cached per
process, so an edit cannot be made again; here they are seeded and stored with the edit.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from ..model import LM, InputError, kv
from ..model.hooks import hooked, start_at
from ..model.long_runs import run_steps
from .log import LogEntry, LoggedEdit, WeightDelta
from .stats import DEFAULT_TOKENS, KeyMoments
from .tokens import generate_prefixes, pad_batch


class AlreadyAnswered(InputError):
    """The model already continues the prompt with the new object: there is nothing to write (sequences of
    edits skip such a fact)."""

METHODS = ("r-rome", "rome")


@dataclass(frozen=True)
class RomeSettings:
    """The reference implementation's defaults (GPT-2 XL / GPT-J)."""

    steps: int = 20
    lr: float = 0.5
    kl_factor: float = 0.0625
    weight_decay: float = 0.5
    clamp: float = 4.0
    stop_loss: float = 0.05
    prefix_lengths: tuple = ((5, 10), (10, 10))  # (tokens, how many)
    prefix_starts: tuple = ()  # words the prefixes begin with (MEMIT's); none: the document start
    kl_prompt: str = "{} is a"


@dataclass(eq=False)
class RomeEdit(LoggedEdit):
    """One ROME edit: what was asked, what was computed, and its entry in the model's edit log."""

    lm: LM
    prompt: str
    subject: str
    target: str
    layer: int
    method: str
    seed: int
    prefixes: list[str]
    key: torch.Tensor  # k*: prefix-averaged down-projection input [d_mlp]
    key_prompt: torch.Tensor  # the bare prompt's key [d_mlp]
    value_norm: float  # ‖v‖: the original down-projection output at the subject
    delta: torch.Tensor  # [d_model]
    loss_curve: list[dict] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    entry: LogEntry | None = None

    @property
    def delta_norm(self) -> float:
        return float(self.delta.norm())

    @property
    def update_norm(self) -> float:
        return sum(d.norm for d in self.entry.deltas) if self.entry else float("nan")

    def report(self, fact: dict | None = None):
        """Before/after on the prompt, its paraphrases and neighbouring prompts (see :func:`edit_report`)."""
        from .report import edit_report

        return edit_report(self, fact)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.loss_curve)

    def figure(self):
        """The optimisation's loss curve and its parts."""
        import plotly.graph_objects as go

        fig = go.Figure()
        for part in ("loss", "nll", "kl", "decay"):
            fig.add_scatter(x=[r["step"] for r in self.loss_curve], y=[r[part] for r in self.loss_curve],
                            name=part, mode="lines+markers")
        fig.update_layout(title=f"ROME edit at layer {self.layer}: {self.subject} → {self.target!r}",
                          xaxis_title="step", yaxis_title="loss", yaxis_type="log", template="plotly_white",
                          height=320, margin=dict(l=60, r=20, t=50, b=45))
        return fig

    def __repr__(self):
        state = "applied" if self.applied else "not applied"
        return (f"RomeEdit({self.subject!r} → {self.target!r}, layer {self.layer}, {self.method}, "
                f"‖δ‖ {self.delta_norm:.3g}, {len(self.loss_curve)} steps, {state})")


def rome_edit(lm: LM, prompt: str, subject: str, target: str, layer: int | None = None, *,
              method: str = "r-rome", seed: int = 0, prefixes: list[str] | None = None, corpus=None,
              tokens: int = DEFAULT_TOKENS, settings: RomeSettings = RomeSettings(), reuse_states: bool = True,
              apply: bool = True, progress=True) -> RomeEdit:
    """Rewrite "``prompt`` → ``target``" (``subject`` in the prompt) at ``layer`` (default: :func:`default_layer`).

    ``prefixes`` replays an earlier edit's context prefixes; ``corpus``/``tokens`` choose the key statistics;
    ``reuse_states=False`` recomputes every block each step (the same result, slower); ``apply=False``
    computes the edit without writing it. Nothing is written until the end: an error or Ctrl-C on the way
    leaves the weights untouched.
    """
    steps = rome_steps(lm, prompt, subject, target, layer, method=method, seed=seed, prefixes=prefixes,
                       corpus=corpus, tokens=tokens, settings=settings, reuse_states=reuse_states, apply=apply,
                       progress=progress)
    return run_steps(steps)


def default_layer(lm: LM) -> int:
    """Where to edit when no layer is given. For the default model, the layer measured best by
    :func:`~ffn_widgets.edit_layer_sweep` over the dev facts; elsewhere a quarter of the depth, near where
    ROME edits GPT-J (5 of 28) and GPT-2 (a third of the depth)."""
    from .where import MEASURED_LAYERS

    measured = MEASURED_LAYERS.get(lm.name.split("/")[-1])
    if measured is not None and measured[1] == lm.n_layers:
        return measured[0]
    return max(1, round(lm.n_layers * 0.25)) if lm.n_layers > 2 else 0


def default_layer_reason(lm: LM) -> str:
    """Why :func:`default_layer` chose its layer, in a few words (the Editor shows it beside a trace's peak)."""
    from .where import MEASURED_LAYERS

    measured = MEASURED_LAYERS.get(lm.name.split("/")[-1])
    if measured is not None and measured[1] == lm.n_layers:
        return "where edits of the dev facts succeed best (edit_layer_sweep)"
    return "a quarter of the depth, as ROME edits GPT-J"


def rome_steps(lm: LM, prompt: str, subject: str, target: str, layer: int | None = None, *,
               method: str = "r-rome", seed: int = 0, prefixes: list[str] | None = None, corpus=None,
               tokens: int = DEFAULT_TOKENS, settings: RomeSettings = RomeSettings(), reuse_states: bool = True,
               apply: bool = True, progress=False) -> Iterator[dict]:
    """:func:`rome_edit` as steps: yields ``{"stage", "message", "fraction", ...}`` after each piece of work
    (statistics batches, optimisation steps) and returns the :class:`RomeEdit`. Stopping early (closing the
    generator) writes nothing."""
    t0 = time.perf_counter()
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
    check_float32(lm)
    layer = default_layer(lm) if layer is None else lm.check_layer(layer)
    target = lm.continuation(prompt, target)  # "Rome" after "of" is " Rome" (the README's target rule)
    target_ids = check_request(lm, prompt, subject, target)
    seconds = {}

    yield {"stage": "prefixes", "message": "Writing context prefixes", "fraction": None}
    if prefixes is None:
        prefixes = context_prefixes(lm, settings.prefix_lengths, seed, settings.prefix_starts)
    texts = [""] + [p for p in prefixes]
    seconds["prefixes"] = time.perf_counter() - t0

    moments = KeyMoments(lm, [layer], corpus, tokens)
    for fraction in moments.steps(progress):
        yield {"stage": "statistics", "message": f"Key statistics of layer {layer}: "
               f"{moments.tokens_done:,} of {tokens:,} tokens", "fraction": fraction}
    C = moments.result[layer]
    seconds["statistics"] = time.perf_counter() - t0 - sum(seconds.values())

    contexts = [p + prompt for p in texts]
    keys = subject_keys(lm, contexts, subject, layer, after=[len(p) for p in texts])
    key, key_prompt = keys.mean(0), keys[0]
    seconds["keys"] = time.perf_counter() - t0 - sum(seconds.values())

    optimiser = ValueOptimiser(lm, contexts, [len(p) for p in texts], subject, target_ids, layer, settings,
                               reuse_states)
    for record in optimiser.run():
        yield {"stage": "optimise", "message": f"Optimising the new value: step {record['step'] + 1}, "
               f"loss {record['loss']:.3f}", "fraction": (record["step"] + 1) / settings.steps, **record}
    seconds["optimise"] = time.perf_counter() - t0 - sum(seconds.values())

    u = torch.linalg.solve(C, key.double().cpu())
    numerator = optimiser.delta.detach().double().cpu()  # ROME: v* − W k(prompt) = δ (a bias cancels)
    if method == "r-rome":  # v* − W k* = δ + W (k(prompt) − k*): the edited layer maps k* to v* exactly
        w = lm._weight(lm.arch.down, layer).detach()
        numerator = numerator + (w @ (key_prompt - key).to(w.device, w.dtype)).double().cpu()
    denominator = (key if method == "r-rome" else key_prompt).double().cpu() @ u
    left = (numerator / denominator)[:, None].float()
    edit = RomeEdit(lm, prompt, subject, target, layer, method, seed, list(prefixes), key.cpu(), key_prompt.cpu(),
                    optimiser.value_norm, optimiser.delta.detach().cpu(), optimiser.curve,
                    {"tokens": tokens, "corpus": moments.corpus.name, "denominator": float(denominator),
                     "numerator norm": float(numerator.norm())}, seconds)
    path = f"{lm.arch.layers}.{layer}.{lm.arch.down}"
    entry = LogEntry("ROME" if method == "rome" else "r-ROME", [{"prompt": prompt, "subject": subject,
                     "target": target}], [layer], [WeightDelta(path, left, u[None, :].float())],
                     {"layer": layer, "delta norm": edit.delta_norm, "steps": len(optimiser.curve),
                      "final loss": optimiser.curve[-1]["loss"], "seed": seed, "prefixes": list(prefixes)},
                     edit=edit)
    edit.entry = entry
    if apply:
        yield {"stage": "update", "message": "Writing the rank-one update", "fraction": None}
        lm.edits.apply(entry)
    seconds["update"] = time.perf_counter() - t0 - sum(seconds.values())
    seconds["total"] = time.perf_counter() - t0
    return edit


_PREFIXES: dict[tuple, list[str]] = {}


def context_prefixes(lm: LM, lengths=((5, 10), (10, 10)), seed: int = 0, starts: tuple[str, ...] = ()) -> list[str]:
    """The prefixes of ``seed``, written by the model as loaded (edits suspended), so that the same seed gives
    the same prefixes however many edits came before; remembered per weights and seed."""
    key = (lm.edits.base_fingerprint, tuple(map(tuple, lengths)), seed, tuple(starts))
    if key not in _PREFIXES:
        with lm.edits.original():
            _PREFIXES[key] = generate_prefixes(lm, lengths, seed, starts=tuple(starts))
    return list(_PREFIXES[key])


# ---- checks -------------------------------------------------------------------------------------
def check_float32(lm: LM) -> None:
    if lm.dtype not in (torch.float32, torch.float64):
        raise InputError(f"Weight edits optimise and write in float32, and this model is in {lm.dtype}: its "
                         "resolution would swallow a rank-one update. Load the model with "
                         "fw.load_model(..., dtype='float32') to edit it.")


def check_request(lm: LM, prompt: str, subject: str, target: str) -> list[int]:
    """The target's ids, after checking prompt, subject and target (the target must change something)."""
    ids = lm.encode(prompt)
    lm.find_subject(prompt, subject)
    if not isinstance(target, str) or not target.strip():
        raise InputError("The new target is empty: type what the model should say instead, e.g. ' Rome'.")
    target_ids = lm.target_ids(target)
    seq = torch.cat([ids, torch.as_tensor(target_ids[:-1], device=ids.device, dtype=ids.dtype)])
    with torch.no_grad():
        greedy = lm.forward(seq[None])[0, len(ids) - 1:].argmax(-1).tolist()
    if greedy == target_ids:
        raise AlreadyAnswered(f"The model already continues {prompt!r} with {target!r}: there is nothing to change. "
                         "Give a different target.")
    return target_ids


# ---- keys ---------------------------------------------------------------------------------------
def subject_keys(lm: LM, contexts: list[str], subject: str, layer: int, after: list[int]) -> torch.Tensor:
    """``[n, d_mlp]``: the down projection's input at the subject's last token of each context."""
    batch = pad_batch(lm, [lm.encode(c).tolist() for c in contexts])
    spots = [lm.find_subject(c, subject, a)[1] - 1 for c, a in zip(contexts, after)]
    with torch.no_grad(), hooked(lm, [("neurons", layer)]) as got:
        kv.forward(lm.model, batch.ids, use_cache=False, last_only=True, attention_mask=batch.mask)
    acts = got["neurons", layer].float()
    return acts[torch.arange(len(contexts), device=acts.device), torch.as_tensor(spots, device=acts.device)]


# ---- value ----------------------------------------------------------------------------------------
class ValueOptimiser:
    """Finds δ for the down projection's output at the subject: ROME's value optimisation.

    Every row is laid out so that its subject's last token sits in one column S: the tokens before it
    (left-padded) never see δ, at any layer, so their keys and values are computed once; each step runs only
    the columns from S on, and only the blocks from the edit layer up, starting from the cached input of
    the edit layer. ``reuse_states=False`` runs every column and block each step (the same numbers).
    """

    def __init__(self, lm: LM, contexts: list[str], after: list[int], subject: str, target_ids: list[int],
                 layer: int, settings: RomeSettings, reuse_states: bool = True, site: str = "down"):
        self.lm, self.layer, self.settings, self.reuse = lm, layer, settings, reuse_states
        # where δ is added: the down projection's output (ROME) or the block's output, the residual (MEMIT)
        self.module = lm.site_module("neurons", layer) if site == "down" else lm.blocks[layer]
        self.target_ids = target_ids
        kl_text = settings.kl_prompt.format(subject)
        rows = [lm.encode(c).tolist() + target_ids[:-1] for c in contexts] + [lm.encode(kl_text).tolist()]
        spots = [lm.find_subject(c, subject, a)[1] - 1 for c, a in zip(contexts, after)]
        spots.append(lm.find_subject(kl_text, subject)[1] - 1)
        self.S = S = max(spots)
        width = max(len(r) - s for r, s in zip(rows, spots))
        ids = torch.zeros(len(rows), S + width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (r, sp) in enumerate(zip(rows, spots)):
            ids[i, S - sp:S - sp + len(r)] = torch.as_tensor(r)
            mask[i, S - sp:S - sp + len(r)] = 1
        self.ids, self.mask = ids.to(lm.device), mask.to(lm.device)
        self.positions = (mask.cumsum(1) - 1).clamp_min(0).to(lm.device)
        n, T = len(contexts), len(target_ids)
        # logits read: row i's target token j is predicted at column S + (len(context_i) - 1 - spot_i) + j
        col = [S + len(r) - T - sp + j for r, sp in zip(rows[:n], spots[:n]) for j in range(T)]
        self.read_rows = torch.cat([torch.arange(n).repeat_interleave(T), torch.as_tensor([n])]).to(lm.device)
        self.read_cols = torch.as_tensor(col + [S], device=lm.device)
        self.target_tok = torch.as_tensor(target_ids, device=lm.device).repeat(n)
        self.delta = torch.zeros(lm.d_model, device=lm.device_of(self.module), dtype=torch.float32,
                                 requires_grad=True)  # where the edited layer computes
        self.curve: list[dict] = []
        self._first_pass()

    def _forward(self, cols: slice, cache=None, use_cache=False):
        names = kv._parameters(self.lm.model)
        extra = {"position_ids": self.positions[:, cols]} if "position_ids" in names else {}
        stop = cols.stop or self.ids.shape[1]
        return kv.forward(self.lm.model, self.ids[:, cols], cache, use_cache=use_cache, last_only=True,
                          attention_mask=self.mask[:, :stop], **extra)

    def _first_pass(self) -> None:
        """Without δ: the cache of the columns before S, the edit layer's input in the columns from S
        (reused by every step), the original value at the subject, and the KL prompt's original distribution."""
        lm, layer, seen = self.lm, self.layer, {}
        with torch.no_grad():
            self.cache = kv.cache_of(self._forward(slice(0, self.S), use_cache=True)) if self.S else None
            handle = self.module.register_forward_hook(
                lambda m, a, out: seen.setdefault("out", (out[0] if isinstance(out, tuple) else out).detach()))
            try:
                with hooked(lm, [("resid_pre", layer)]) as got:
                    logits = self._tail_logits(edited=False)
            finally:
                handle.remove()
        out = seen["out"].reshape(self.ids.shape[0], -1, lm.d_model)
        self.value = out[0, 0].float()  # the original output at the bare prompt's subject
        self.value_norm = float(self.value.norm())
        self.kl_init = torch.log_softmax(logits[-1], -1).detach()
        self._base = got["resid_pre", layer]

    def _tail_logits(self, edited: bool = True) -> torch.Tensor:
        """Float32 logits ``[n·T + 1, vocab]`` at the columns the loss reads only (each row's target
        positions, then the KL prompt's subject)."""
        lm, seen, handles = self.lm, {}, []
        full = edited and not self.reuse  # the straightforward way: every column and block, each step
        at = self.S if full else 0  # δ's column in what runs
        handles.append(lm.final_norm.register_forward_hook(lambda m, a, out: seen.setdefault("h", out)))
        if edited:
            def add_delta(module, args, output):
                out = output[0] if isinstance(output, tuple) else output
                flat = out.dim() == 2  # flat MLPs (OPT): [rows * cols, d]
                x = out.view(self.ids.shape[0], -1, out.shape[-1]) if flat else out
                x = torch.cat([x[:, :at], x[:, at:at + 1] + self.delta.to(x.dtype), x[:, at + 1:]], 1)
                x = x.reshape(out.shape) if flat else x
                return (x,) + tuple(output[1:]) if isinstance(output, tuple) else x
            handles.append(self.module.register_forward_hook(add_delta))
        try:
            if full:
                self._forward(slice(0, None))
            elif edited and self.layer > 0:
                with start_at(lm, self.layer, self._base):
                    self._forward(slice(self.S, None), kv.shared(self.cache))
            else:
                self._forward(slice(self.S, None), kv.shared(self.cache))
        finally:
            for h in handles:
                h.remove()
        h = seen["h"]
        h = h[self.read_rows.to(h.device), (self.read_cols - (0 if full else self.S)).to(h.device)]
        logits = lm.unembed_module(h).float()
        cap = getattr(lm.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    def loss(self) -> tuple[torch.Tensor, dict]:
        s = self.settings
        logits = self._tail_logits()
        logp = torch.log_softmax(logits[:-1], -1)
        nll = -logp[torch.arange(len(logp), device=logp.device), self.target_tok.to(logp.device)]
        nll = nll.reshape(-1, len(self.target_ids))
        nll = nll.mean(1).mean()
        kl_now = torch.log_softmax(logits[-1], -1)  # KL(edited ‖ original): ROME's eq. 4 and its F.kl_div
        kl = s.kl_factor * torch.sum(kl_now.exp() * (kl_now - self.kl_init))
        decay = s.weight_decay * self.delta.norm() / self.value_norm ** 2
        total = nll + kl + decay.to(nll.device)  # δ lives on the edited layer's device
        return total, {"loss": float(total.detach()), "nll": float(nll.detach()), "kl": float(kl.detach()),
                       "decay": float(decay.detach()), "p_target": float(torch.exp(-nll.detach()))}

    def run(self) -> Iterator[dict]:
        """ROME's loop: at most ``steps`` forwards, stop when the loss is below ``stop_loss``."""
        s = self.settings
        opt = torch.optim.Adam([self.delta], lr=s.lr)
        limit = s.clamp * self.value_norm
        for step in range(s.steps):
            total, parts = self.loss()
            record = {"step": step, **parts, "delta_norm": float(self.delta.detach().norm())}
            self.curve.append(record)
            yield record
            if parts["loss"] < s.stop_loss or step == s.steps - 1:
                break
            (grad,) = torch.autograd.grad(total, [self.delta])
            self.delta.grad = grad
            opt.step()
            with torch.no_grad():
                norm = self.delta.norm()
                if norm > limit:
                    self.delta.mul_(limit / norm)
