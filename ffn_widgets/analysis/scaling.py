"""The neuron-slider engine: rescale chosen neurons and see the next-token distribution move, live.

A slider multiplies one neuron's activation m_i (at every position) by a scale: 0 suppresses, 1 leaves the
model unchanged, 2 amplifies. Each tick must be cheap, so the engine keeps the prompt's clean states:

- the block input (``resid_pre``) and neuron activations of every layer, from one captured run;
- a change whose lowest layer is ℓ recomputes only blocks ≥ ℓ (``start_at``), and only the last
  position's logits (the big unembedding is skipped for the others);
- when every scaled neuron sits in one layer ℓ and that MLP's output is linear in m (all families but
  those with a norm after the MLP), block ℓ is skipped as well: its output changes by exactly
  Σ_i (s_i − 1)·m_i·v_i, so the run starts at ℓ + 1;
- all scales back at 1 returns the cached original logits, bit for bit.

The greedy continuation is separate work (:meth:`SliderEngine.continuation`): a widget sends the bars
first and the continuation next. It reuses the tick's key/value cache for blocks ≥ ℓ and the clean
prompt's for blocks < ℓ, so each continuation token is a one-token step.

    engine = SliderEngine(lm, "The Eiffel Tower is located in the city of", target=" Paris")
    engine.predict({(12, 345): 0.0}).target_prob
    engine.continuation(5)
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from ..model import LM, InputError, Intervention, hooked, kv, start_at


@dataclass
class Prediction:
    """The next-token distribution at the prompt's last position. ``logits`` is ``[vocab]`` float32."""

    logits: torch.Tensor
    top_ids: list[int]
    top_tokens: list[str]
    top_probs: list[float]
    target: str | None
    target_id: int | None
    target_prob: float | None
    target_rank: int | None  # 0 = the top prediction
    weights_version: int = -1  # the model state it was computed on (``lm.state_version``)

    @classmethod
    def from_logits(cls, lm: LM, logits: torch.Tensor, k: int, target: str | None, target_id: int | None):
        probs = torch.softmax(logits.float(), -1)
        top = torch.topk(probs, k)
        ids = top.indices.tolist()
        rank = prob = None
        if target_id is not None:
            prob = float(probs[target_id])
            rank = int((logits > logits[target_id]).sum())
        return cls(logits, ids, lm.token_strings(ids), top.values.tolist(), target, target_id, prob, rank,
                   lm.state_version)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"token": self.top_tokens, "id": self.top_ids, "prob": self.top_probs,
                             "is_target": [i == self.target_id for i in self.top_ids]})

    def figure(self, title: str = "Next-token prediction"):
        import plotly.graph_objects as go

        from .figure_layout import clip, sized
        from .figure_layout import title as figure_title

        colours = ["#d62728" if i == self.target_id else "#1f77b4" for i in self.top_ids]
        fig = go.Figure(go.Bar(x=self.top_probs[::-1], y=[repr(t) for t in self.top_tokens[::-1]],
                               orientation="h", marker_color=colours[::-1]))
        if self.target_id is not None:
            title += f" — p({clip(self.target, 30)!r}) = {self.target_prob:.3f}, rank {self.target_rank}"
        fig.update_layout(title=figure_title(title), xaxis_title="probability")
        return sized(fig, 20 * len(self.top_ids), min_plot_px=120)


class SliderEngine:
    """Keeps one prompt's clean states and answers "what does the model predict with these scales?"."""

    def __init__(self, lm: LM, prompt: str, target: str | int | None = None, k: int = 10):
        """``target``: the token whose probability and rank are tracked; by default the original top-1."""
        if not isinstance(k, int) or k < 1:
            raise InputError(f"k (how many top tokens) must be a positive integer, got {k!r}.")
        self.lm, self.prompt, self.k = lm, prompt, min(k, lm.W_U.shape[0])
        self.weights_version = lm.state_version  # every cached state below describes this model
        self.ids = lm.encode(prompt)[None]
        layers = range(lm.n_layers)
        with torch.no_grad(), hooked(lm, [(s, l) for s in ("resid_pre", "neurons") for l in layers]) as got:
            out = kv.forward(lm.model, self.ids)
        self.resid_pre = [got["resid_pre", l] for l in layers]  # model dtype, [1, pos, d_model]
        self.neurons = [got["neurons", l] for l in layers]  # [1, pos, d_mlp]
        self._clean_cache = kv.cache_of(out)
        logits = out.logits[0, -1].float()
        target = lm.continuation(prompt, target)
        self.target_id, text = lm.resolve_target(target, logits)  # without one, the model's own first choice
        self.target = target if isinstance(target, str) and target else text
        self.original = Prediction.from_logits(lm, logits, self.k, self.target, self.target_id)
        self._linear_mlp = lm.arch.mlp_add in ("mlp", lm.arch.down)
        self._last: tuple[dict, Prediction, object, int] | None = None

    # ---- scales ------------------------------------------------------------------------
    def check_scales(self, scales: Mapping[tuple[int, int], float]) -> dict[tuple[int, int], float]:
        """Validated ``{(layer, neuron): scale}`` without the neutral entries (scale 1)."""
        if not isinstance(scales, Mapping):
            raise InputError("scales must be a mapping {(layer, neuron): scale}.")
        clean = {}
        for key, scale in scales.items():
            layer, neuron = self.lm.check_unit(key)
            try:
                scale = float(scale)
            except (TypeError, ValueError):
                raise InputError(f"The scale of neuron {key} must be a number, got {scale!r}.") from None
            if not math.isfinite(scale):
                raise InputError(f"The scale of neuron {key} must be a finite number, got {scale!r}.")
            if scale != 1.0:
                clean[layer, neuron] = scale
        return clean

    def edits(self, scales: Mapping[tuple[int, int], float]) -> list[Intervention]:
        """The scales as hook-core edits, one per layer (all positions)."""
        by_layer: dict[int, dict[int, float]] = {}
        for (layer, neuron), scale in self.check_scales(scales).items():
            by_layer.setdefault(layer, {})[neuron] = scale
        out = []
        for layer, row in sorted(by_layer.items()):
            value = torch.tensor(list(row.values()), dtype=self.lm.dtype, device=self.lm.device)
            out.append(Intervention("neurons", layer, "scale", value, index=list(row)))
        return out

    # ---- ticks -------------------------------------------------------------------------
    def predict(self, scales: Mapping[tuple[int, int], float]) -> Prediction:
        """Next-token prediction with the given scales (unlisted neurons keep scale 1)."""
        scales = self.check_scales(scales)
        if not scales:
            self._last = None
            return self.original
        edits = self.edits(scales)
        lm, start = self.lm, edits[0].layer
        hidden = self.resid_pre[start]
        if len(edits) == 1 and self._linear_mlp:
            hidden, edits = self._skip_block(edits[0]), []
            start += 1
        with torch.no_grad():
            if start == lm.n_layers:
                logits, cache = lm.unembed(hidden[0, -1]), None
            else:
                with start_at(lm, start, hidden), hooked(lm, (), edits):
                    out = kv.forward(lm.model, self.ids, last_only=True)
                logits, cache = out.logits[0, -1].float(), kv.cache_of(out)
        pred = Prediction.from_logits(lm, logits, self.k, self.target, self.target_id)
        self._last = (scales, pred, cache, start)
        return pred

    def _skip_block(self, edit: Intervention) -> torch.Tensor:
        """Block ``edit.layer``'s output with the scales applied, without running it:
        resid_post = clean resid_post + Σ_i (s_i − 1)·m_i·v_i at every position."""
        layer = edit.layer
        m = self.neurons[layer][0, :, edit.index]  # [pos, n], where the layer computes
        v = self.lm.values(layer)[edit.index].to(m.device, m.dtype)  # [n, d_model]
        delta = (m * (edit.value.to(m.device) - 1)) @ v
        clean_post = self.resid_pre[layer + 1] if layer + 1 < self.lm.n_layers else self._final_resid()
        return clean_post + delta[None].to(clean_post.device)

    def _final_resid(self) -> torch.Tensor:
        if not hasattr(self, "_final"):
            with torch.no_grad(), hooked(self.lm, [("resid_post", self.lm.n_layers - 1)]) as got:
                kv.forward(self.lm.model, self.ids, use_cache=False, last_only=True)
            self._final = got["resid_post", self.lm.n_layers - 1]
        return self._final

    # ---- continuation ------------------------------------------------------------------
    def continuation(self, scales: Mapping[tuple[int, int], float], n: int = 5) -> list[str]:
        """The greedy continuation (up to ``n`` tokens) of the prompt under these scales; it ends before an
        end-of-text or other special token (``lm.stop_ids``), which is not text to show."""
        if not isinstance(n, int) or n < 1:
            raise InputError(f"n (continuation length) must be a positive integer, got {n!r}.")
        scales = self.check_scales(scales)
        if self._last is None or self._last[0] != scales:
            self.predict(scales)
        if self._last is None:
            pred, cache, start = self.original, self._clean_cache, self.lm.n_layers
        else:
            _, pred, cache, start = self._last
        cache = self._merge_cache(cache, start)
        edits = self.edits(scales)
        token, out = pred.top_ids[0], []
        with torch.no_grad(), hooked(self.lm, (), edits):
            while token not in self.lm.stop_ids:
                out.append(token)
                if len(out) == n:
                    break
                step = kv.forward(self.lm.model, torch.tensor([[token]], device=self.lm.device), cache)
                token = int(step.logits[0, -1].argmax())
        return self.lm.token_strings(out)

    def _merge_cache(self, cache, start: int):
        """A private key/value cache of the edited prompt: blocks < ``start`` saw clean inputs, so theirs
        are the clean run's; blocks ≥ ``start`` come from the tick. Shallow copies: decoding appends by
        concatenation, which never writes into the cached tensors."""
        clean = self._clean_cache
        if cache is None:  # the tick ran no block: every block's keys and values are clean
            cache = clean
        return kv.shared(cache, layers=[clean.layers[i] if i < start else layer
                                        for i, layer in enumerate(cache.layers)])


def as_neuron_list(neurons) -> list[tuple[int, int]]:
    """``[(layer, neuron), ...]`` from pairs, ``(layer, neuron, score)`` triples or a result you can iterate
    (knowledge neurons, a neuron ranking)."""
    if neurons is None:
        return []
    out = []
    for item in _iterate(neurons):
        try:
            layer, neuron = int(item[0]), int(item[1])
        except (TypeError, ValueError, IndexError):
            raise InputError(f"Neurons are (layer, neuron) pairs, got {item!r}.") from None
        if (layer, neuron) not in out:
            out.append((layer, neuron))
    return out


def _iterate(neurons) -> Iterable:
    if isinstance(neurons, tuple) and len(neurons) == 2 and all(isinstance(x, int) for x in neurons):
        return [neurons]
    try:
        return iter(neurons)
    except TypeError:
        raise InputError(f"Neurons are a list of (layer, neuron) pairs, got {neurons!r}.") from None
