"""The causal-tracing engine: ROME's restoration grid computed from cached corrupted states, streamed.

A trace restores one clean state (a block's output, or the MLP / attention outputs of a window of layers)
at one token in a corrupted run and reads p(target) at the last position. ROME's reference loop does one
full forward per (kind, layer, token). This engine uses three facts instead:

- restoring at token ``t`` changes nothing at positions ``< t`` (causal attention), so the run only
  computes positions ``t..T-1``, reading the corrupted run's keys/values of positions ``< t`` from a cache;
- restoring at layer ``l`` (or a window starting at ``l``) leaves the blocks below unchanged, so the run
  starts there from the cached corrupted ``resid_pre`` (:func:`~ffn_widgets.model.hooks.start_at`);
- restorations of the same token share batched forwards (as many as the memory bound and a cost model
  say, :func:`plan_forwards`): a forward starts at the lowest starting layer (a hidden state at ``s-1``,
  MLP and attention windows starting at ``s``) and the rows of later starts join the batch at their own
  block, so no row runs a block below its start;
- tokens before the corruption's first affected position need no compute at all.

Rows are yielded per token (cheapest, the last token, first) so a widget can draw them as they finish.
:func:`reference_trace` is the straightforward loop, kept as the definition the engine is tested against.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from ..model import kv
from ..model.hooks import Intervention, collect, hooked, start_at

KINDS = ("hidden", "mlp", "attn")
CLEAN_SITES = ("resid_pre", "mlp_out", "attn_out")  # the clean run's states a restoration copies
_SITE = {"hidden": "resid_post", "mlp": "mlp_out", "attn": "attn_out"}


@dataclass
class TraceSetup:
    """What to trace, independent of how it is computed.

    ``corrupt_ids`` ``[samples, T]`` are the corrupted runs' tokens (the prompt again for noise, another
    prompt for activation patching); ``noise`` ``[samples, len(noised), d_model]`` is added to layer 0's
    input at positions ``noised``. Positions before ``first_affected`` are identical in both runs.
    """

    prompt: str
    ids: torch.Tensor  # [T]
    tokens: list[str]
    target_id: int
    target: str
    corrupt_ids: torch.Tensor  # [samples, T]
    noise: torch.Tensor | None
    noised: list[int]
    first_affected: int
    subject: tuple[int, int] | None = None  # token range [start, stop) of the subject
    corrupted_prompt: str | None = None
    sigma: float | None = None
    runs: dict | None = None  # base_runs(...) of these inputs, if already computed
    seed: int | None = None  # the noise draws' seed (None: no noise)
    samples: int = field(init=False)

    def __post_init__(self):
        self.samples = int(self.corrupt_ids.shape[0])

    def corruption(self, rows=None) -> list[Intervention]:
        """The edits that turn clean runs into corrupted ones (rows = which batch rows get noise)."""
        return noise_edits(self.noise, self.noised, rows)


def noise_edits(noise: torch.Tensor | None, positions: list[int], rows=None) -> list[Intervention]:
    return [] if noise is None else [Intervention("resid_pre", 0, "add", noise, positions=positions, rows=rows)]


def base_runs(lm, ids: torch.Tensor, corrupt_ids: torch.Tensor, noise=None, noised=()) -> dict:
    """The clean run and the corrupted runs, as one batched forward: the clean states a restoration copies
    (``{site: [L, T, d]}``, last ``"logits"``), and the corrupted runs' block inputs ``"corrupt_pre"``
    ``[L, S, T, d]``, keys/values ``"kv"`` and last ``"corrupt_logits"`` ``[S, vocab]`` a restored run starts
    from. ``noise`` ``[S, len(noised), d]`` is added to the corrupted rows' layer-0 input at ``noised``."""
    layers, S = range(lm.n_layers), corrupt_ids.shape[0]
    batch = torch.cat([ids[None], corrupt_ids]).to(lm.device)
    cache = DynamicCache(config=lm.config)
    edits = noise_edits(noise, list(noised), list(range(1, S + 1)))
    with torch.no_grad(), hooked(lm, [(site, l) for site in CLEAN_SITES for l in layers], edits) as got:
        logits = kv.last_logits(lm.model, batch, cache)[:, -1]
    runs = {site: collect(got, site, layers) for site in CLEAN_SITES}
    runs["corrupt_pre"] = collect(got, "resid_pre", layers, row=None)[:, 1:]
    runs["kv"] = [(layer.keys[1:], layer.values[1:]) for layer in cache.layers]
    return runs | {"logits": logits[0], "corrupt_logits": logits[1:]}


def window_layers(layer: int, window: int, n_layers: int) -> range:
    """ROME's window: ``window`` consecutive layers centred on ``layer``, clipped to the model."""
    return range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2)))


def _layers_for(kind: str, layer: int, window: int, n_layers: int) -> range:
    return range(layer, layer + 1) if kind == "hidden" else window_layers(layer, window, n_layers)


def _target_probs(logits: torch.Tensor, target_id: int) -> torch.Tensor:
    return torch.softmax(logits.float(), dim=-1)[..., target_id]


# ---- the straightforward loop (the definition) ------------------------------------------------

def reference_trace(lm, setup: TraceSetup, kinds: Sequence[str] = KINDS, window: int = 10) -> dict:
    """ROME's loop: per kind, layer and token one full forward over [clean, corrupted...] where the
    corrupted rows copy the clean row's state at the restored sites. Returns ``{kind: [L, T, samples]}``."""
    L, T = lm.n_layers, len(setup.ids)
    return {kind: torch.stack([torch.stack([reference_cell(lm, setup, kind, layer, t, window) for t in range(T)])
                               for layer in range(L)]) for kind in kinds}


def reference_cell(lm, setup: TraceSetup, kind: str, layer: int, token: int, window: int = 10) -> torch.Tensor:
    """One cell of :func:`reference_trace`: p(target) per corrupted sample ``[samples]``."""
    batch = torch.cat([setup.ids[None], setup.corrupt_ids]).to(lm.device)
    edits = setup.corruption(list(range(1, batch.shape[0]))) + [
        Intervention(_SITE[kind], j, "fn", _copy_clean_row(token)) for j in _layers_for(kind, layer, window, lm.n_layers)]
    with torch.no_grad(), hooked(lm, (), edits):
        logits = lm.forward(batch)
    return _target_probs(logits[1:, -1], setup.target_id).cpu()


def _copy_clean_row(t: int):
    def restore(x):
        x = x.clone()
        x[1:, t] = x[0, t]
        return x
    return restore


# ---- the engine --------------------------------------------------------------------------------

@dataclass
class TraceRow:
    """One finished token: ``probs[kind]`` is ``[L, samples]``, p(target) with that state restored."""

    token: int
    probs: dict[str, torch.Tensor]


class TraceEngine:
    """Computes the trace grid of one :class:`TraceSetup` row by row; see the module docstring.

    ``max_tokens`` bounds one forward's batch rows × positions (memory). ``cancel()`` (thread-safe)
    stops :meth:`rows` before its next forward.
    """

    def __init__(self, lm, setup: TraceSetup, kinds: Sequence[str] = KINDS, window: int = 10,
                 max_tokens: int = 4096, prefix_cache: bool = True):
        self.lm, self.setup, self.kinds, self.window = lm, setup, tuple(kinds), window
        self.max_tokens = max(1, int(max_tokens))
        self.prefix_cache = prefix_cache  # False: recompute positions < t (for the benchmark's ablation)
        self._cancel = threading.Event()
        self._prepared = False
        T = len(setup.ids)
        self.order = list(range(T - 1, setup.first_affected - 1, -1))
        # The first token is split by kind, cheapest first, so the first row shows up fast; later tokens
        # batch all kinds that share a starting layer.
        cheap_first = sorted(self.kinds, key=("hidden", "attn", "mlp").index)
        self.parts = [(t, (kind,)) for t in self.order[:1] for kind in cheap_first]
        self.parts += [(t, self.kinds) for t in self.order[1:]]
        self.groups = {(t, kinds): self._groups(t, kinds) for t, kinds in self.parts}
        self.n_forwards = sum(len(g) for g in self.groups.values())

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # ---- preparation: the clean and the corrupted runs, one forward -------------------------------
    def prepare(self) -> None:
        if self._prepared:
            return
        s = self.setup
        runs = s.runs if s.runs is not None else base_runs(self.lm, s.ids, s.corrupt_ids, s.noise, s.noised)
        self.clean = runs  # its clean states: {site: [L, T, d]}
        self.corrupt_pre, self.kv = runs["corrupt_pre"], runs["kv"]  # [L, S, T, d]; per layer [S, H, T, dh]
        self.p_clean = float(_target_probs(runs["logits"], s.target_id))
        self.p_corrupt = _target_probs(runs["corrupt_logits"], s.target_id).cpu()  # [S]
        self._prepared = True

    # ---- which restorations share a forward ------------------------------------------------------
    def _groups(self, t: int, kinds) -> list[list[tuple[str, int, int]]]:
        """The forwards for token ``t``: lists of ``(kind, layer, start)`` restorations
        (see :func:`plan_forwards`)."""
        L = self.lm.n_layers
        restos = []
        for kind in kinds:
            for layer in range(L):
                if kind == "hidden":
                    if layer == L - 1:
                        continue  # the final state: no block left to run (see _final_row)
                    restos.append((kind, layer, layer + 1))
                else:
                    restos.append((kind, layer, window_layers(layer, self.window, L).start))
        n = len(self.setup.ids) - (t if self.prefix_cache else 0)
        return plan_forwards(restos, self.setup.samples, n, L, self.max_tokens)

    # ---- the rows ----------------------------------------------------------------------------------
    def rows(self) -> Iterator[TraceRow]:
        """Yield :class:`TraceRow` s: computed tokens last-first (the last token one kind at a time),
        then the unaffected ones."""
        return (step for step in self.steps() if step is not None)

    def steps(self) -> Iterator[TraceRow | None]:
        """Like :meth:`rows`, plus a ``None`` after every batched forward: a point where a caller (a
        progress bar, the widget's event-loop task) can update or hand control back."""
        self.prepare()
        L, S = self.lm.n_layers, self.setup.samples
        for t, kinds in self.parts:
            probs = {kind: torch.empty(L, S) for kind in kinds}
            for restos in self.groups[t, kinds]:
                if self.cancelled:
                    return
                got = self._restore(t, restos)
                for (kind, layer, _), p in zip(restos, got):
                    probs[kind][layer] = p
                yield None
            if "hidden" in probs:
                probs["hidden"][L - 1] = self._final_row(t)
            yield TraceRow(t, probs)
        for t in range(self.setup.first_affected - 1, -1, -1):
            if self.cancelled:
                return
            yield TraceRow(t, {kind: self.p_corrupt.expand(L, S).clone() for kind in self.kinds})

    def _final_row(self, t: int) -> torch.Tensor:
        """Restoring the last block's output at ``t`` changes the prediction only when ``t`` is the last
        position, and then it makes it the clean one."""
        if t == len(self.setup.ids) - 1:
            return torch.full((self.setup.samples,), self.p_clean)
        return self.p_corrupt.clone()

    def _restore(self, t: int, restos: list[tuple[str, int, int]]) -> torch.Tensor:
        """One forward over positions ``t..`` for restorations sorted by start (as :func:`plan_forwards`
        gives them). It starts at the lowest starting block with those restorations' rows; the others' rows
        join the batch at their own starting block, so no row runs a block below its start. ``[R, S]``."""
        lm, setup, L = self.lm, self.setup, self.lm.n_layers
        S, R = setup.samples, len(restos)
        p0 = t if self.prefix_cache else 0  # first position computed; earlier ones come from the cache
        rows_of = {site: {} for site in ("mlp_out", "attn_out")}
        joining: dict[int, list[bool]] = {}  # start layer -> [restore the hidden state?] of the rows joining
        for r, (kind, layer, start) in enumerate(restos):
            joining.setdefault(start, []).append(kind == "hidden")
            if kind != "hidden":
                site = _SITE[kind]
                for j in window_layers(layer, self.window, L):
                    rows_of[site].setdefault(j, []).append(torch.arange(r * S, (r + 1) * S))
        starts = list(joining)
        assert starts == sorted(starts), "restorations must be sorted by their starting layer"
        s0 = starts[0]
        hidden = self._joining_rows(s0, t, p0, joining[s0])
        edits = [Intervention(site, j, "fn", _setter(torch.cat(rs), t - p0, self.clean[site][j, t]))
                 for site, by_layer in rows_of.items() for j, rs in by_layer.items()]
        edits += [Intervention("resid_pre", j, "fn", _appender(self._joining_rows(j, t, p0, joining[j]))) for j in starts[1:]]
        if s0 == 0:
            edits.insert(0, Intervention("resid_pre", 0, "fn", lambda x, h=hidden: h))
        # one row of ids: the batch's rows come from `hidden` and the joins, whatever the embedding gives
        ids = setup.corrupt_ids[:1, p0:].to(lm.device)
        active = [0] * L  # restorations running block j
        for start, group in joining.items():
            for j in range(start, L):
                active[j] += len(group)
        cache = self._cache_before(p0, active)
        skip = start_at(lm, s0, hidden) if s0 else nullcontext()
        with torch.no_grad(), hooked(lm, (), edits), skip:
            logits = kv.last_logits(lm.model, ids, cache)
        return _target_probs(logits[:, -1], setup.target_id).view(R, S).cpu()

    def _joining_rows(self, j: int, t: int, p0: int, restore_hidden: list[bool]) -> torch.Tensor:
        """The input of block ``j`` for restorations starting there: the corrupted one, with the clean state
        at ``t`` for a hidden-state restoration of block ``j-1``. ``[len * S, n, d]``."""
        S = self.setup.samples
        value = self.corrupt_pre[j][:, p0:].repeat(len(restore_hidden), 1, 1)
        for i, restore in enumerate(restore_hidden):
            if restore:
                value[i * S:(i + 1) * S, t - p0] = self.clean["resid_pre"][j, t]
        return value

    def _cache_before(self, t: int, active: list[int]):
        """The corrupted run's keys/values of positions ``< t``, repeated for the restorations running each
        layer (layers none runs get a one-row placeholder of the right length)."""
        if not t:
            return DynamicCache(config=self.lm.config)
        cache_data = []
        for (k, v), n in zip(self.kv, active):
            k, v = k[:, :, :t], v[:, :, :t]
            cache_data.append((k.repeat(n, 1, 1, 1), v.repeat(n, 1, 1, 1)) if n else (k[:1], v[:1]))
        return DynamicCache(ddp_cache_data=cache_data, config=self.lm.config)


# Relative costs for planning forwards, in "one token-row through one block" units, measured on a CPU:
# a block call costs about as much as this many extra rows (weights read, Python), and the unembedding of
# one row about as much as this many blocks.
_BLOCK_CALL_ROWS = 40
_HEAD_BLOCKS = 8
_HEAD_CALL_ROWS = 30


def plan_forwards(restos: list[tuple[str, int, int]], samples: int, positions: int, n_layers: int,
                  max_rows: int) -> list[list[tuple[str, int, int]]]:
    """Split restorations ``(kind, layer, start)``, sorted by start, into forwards of neighbouring starts,
    minimising a cost model: every row runs the blocks from its own start (rows join a forward there), and a
    forward adds a per-block-call overhead from its lowest start (small batches run far below peak speed).
    A restoration is ``samples`` batch rows of ``positions`` tokens; a forward holds at most ``max_rows``
    token-rows, or one restoration."""
    restos = sorted(restos, key=lambda r: (r[2], r[0], r[1]))
    n, rows_each = len(restos), samples * positions
    work = [0]  # prefix sums of the block-rows each restoration runs
    for _, _, start in restos:
        work.append(work[-1] + (n_layers - start) * rows_each)

    def cost(i: int, j: int) -> float:  # restos[i:j] in one forward
        blocks = work[j] - work[i] + (n_layers - restos[i][2]) * _BLOCK_CALL_ROWS
        return blocks + _HEAD_BLOCKS * ((j - i) * samples + _HEAD_CALL_ROWS)

    best, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            if i < j - 1 and (j - i) * rows_each > max_rows:
                break
            c = best[i] + cost(i, j)
            if c < best[j]:
                best[j], cut[j] = c, i
    plan, j = [], n
    while j:
        plan.append(restos[cut[j]:j])
        j = cut[j]
    return plan[::-1]


def _appender(rows: torch.Tensor):
    def join(x):
        return torch.cat([x, rows.to(x.device, x.dtype)])
    return join


def _setter(rows: torch.Tensor, position: int, value: torch.Tensor):
    def restore(x):
        x = x.clone()
        x[rows.to(x.device), position] = value.to(x.device, x.dtype)
        return x
    return restore
