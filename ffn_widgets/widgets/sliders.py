"""``NeuronSliders``: one slider per neuron (×−1 … ×3); the next-token bars and a greedy continuation
follow the drag live.

The browser sends the whole slider state (every scale) with ``sendLatest``, so only the newest value is
ever in flight and the kernel never works through a backlog; a message older than one already answered
is dropped (views number their messages above the last answered one, so a re-rendered view goes on).
A tick computes and sends the bars only. The greedy continuation costs one single-token step per token
(memory-bound: every weight is read once per token), so it runs after the tick has been acknowledged,
once the drag pauses for 0.1 s or at least every 0.5 s while it goes on; inside a kernel's event loop it
never delays the bars. Without a running event loop (scripts, tests) it is computed right away.

    kn = fw.knowledge_neurons(lm, prompt, " Paris")
    sliders = fw.NeuronSliders.from_knowledge(lm, kn)             # or fw.NeuronSliders(lm, prompt, [(12, 345)])
    sliders.connect(fw.Explorer(lm, prompt))                      # neurons clicked there are added here
"""
from __future__ import annotations

import math
import time

import traitlets

from ..analysis.scaling import Prediction, SliderEngine, as_neuron_list
from ..analysis.values import value_tokens
from ..model import LM, InputError
from .base import ViewWidget, handles
from .serialize import pack

SCALE_RANGE = (-1.0, 3.0)
CONTINUATION_DEBOUNCE_S = 0.1  # continuation after the drag pauses this long...
CONTINUATION_MAX_WAIT_S = 0.5  # ...or at the latest this long after the first postponed tick


class NeuronSliders(ViewWidget):
    view = traitlets.Unicode("sliders").tag(sync=True)
    prompt = traitlets.Unicode("").tag(sync=True)
    neurons = traitlets.List([]).tag(sync=True)  # [{"layer", "neuron", "promotes": [tokens]}]
    scales = traitlets.List([]).tag(sync=True)  # one per neuron
    scales_seq = traitlets.Int(-1).tag(sync=True)  # the browser message these scales answer; -1: set here
    prediction = traitlets.Dict({}).tag(sync=True)
    continuation = traitlets.Dict({}).tag(sync=True)
    scale_range = traitlets.List(list(SCALE_RANGE)).tag(sync=True)

    def __init__(self, lm: LM, prompt: str, neurons=None, target: str | int | None = None, k: int = 10,
                 continuation: int = 5, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(continuation, int) or continuation < 0:
            raise InputError(f"continuation is a number of tokens (0 for none), got {continuation!r}.")
        self.lm, self.n_continue, self._target, self._k = lm, continuation, target, k
        self.engine = SliderEngine(lm, prompt, target, k)
        self.prompt = prompt
        self.result: Prediction = self.engine.original
        self.ticks = 0  # kernel recomputations, for tests and benchmarks
        self.timings: dict[str, float] = {}  # milliseconds of the last tick: bars, continuation
        self._seen_seq = -1
        self._timer = None
        self._waiting_since = 0.0
        self._ready = False
        self._original_continuation = self._continue({}) if continuation else []
        self.add(neurons)
        self._ready = True
        self._update(-1)
        self.follow_weights(lm, "recompute")

    @classmethod
    def from_knowledge(cls, lm: LM, kn, **kwargs) -> "NeuronSliders":
        """Sliders for a knowledge-neuron result, on its prompt and tracking its target."""
        return cls(lm, kn.prompt, kn, target=kn.target_id, **kwargs)

    # ---- the Python API ------------------------------------------------------------------
    @property
    def neuron_list(self) -> list[tuple[int, int]]:
        return [(n["layer"], n["neuron"]) for n in self.neurons]

    def scale_of(self, layer: int, neuron: int) -> float:
        return dict(zip(self.neuron_list, self.scales)).get((layer, neuron), 1.0)

    def add(self, layer_or_neurons, neuron: int | None = None) -> None:
        """Add sliders: ``add(layer, neuron)``, or any list of pairs / triples / a knowledge-neuron result."""
        items = as_neuron_list(layer_or_neurons if neuron is None else [(layer_or_neurons, neuron)])
        rows, scales = list(self.neurons), list(self.scales)
        for layer, n in items:
            self.lm.check_unit((layer, n))
            if (layer, n) in self.neuron_list:
                continue
            promotes = [tok for tok, _ in value_tokens(self.lm, layer, n, k=3).top]
            rows.append({"layer": layer, "neuron": n, "promotes": promotes})
            scales.append(1.0)
        with self.hold_sync():
            self.neurons = rows
            self._set_scales(scales, -1)
        if self._ready:
            self._update(-1)

    def remove(self, layer: int, neuron: int) -> None:
        keep = [i for i, key in enumerate(self.neuron_list) if key != (layer, neuron)]
        with self.hold_sync():
            self.neurons = [self.neurons[i] for i in keep]
            self._set_scales([self.scales[i] for i in keep], -1)
        self._update(-1)

    def set_scale(self, layer: int, neuron: int, scale: float) -> None:
        scale = _checked(scale, (layer, neuron))
        if (layer, neuron) not in self.neuron_list:
            self.add(layer, neuron)
        scales = list(self.scales)
        scales[self.neuron_list.index((layer, neuron))] = scale
        self._set_scales(scales, -1)
        self._update(-1)

    def reset(self) -> None:
        """All scales back to 1: the original prediction, bit for bit."""
        self._set_scales([1.0] * len(self.neurons), -1)
        self._update(-1)

    def _set_scales(self, scales: list[float], seq: int) -> None:
        """Scales and the browser message they answer travel together, so the view can tell an echo of an
        older drag position (ignored) from a change made here (shown)."""
        with self.hold_sync():
            self.scales = scales
            self.scales_seq = seq

    @traitlets.validate("scales")
    def _valid_scales(self, proposal):
        """Every door refuses NaN and scales out of range: the browser's messages, set_scale, and this trait."""
        keys = list(self.neuron_list) + [(-1, -1)] * len(proposal["value"])
        return [_checked(v, key) for v, key in zip(proposal["value"], keys)]

    def connect(self, explorer) -> None:
        """Neurons selected in ``explorer`` get a slider here, and these sliders show in its panel."""
        explorer.on_neuron_selected(lambda layer, neuron: self.add(layer, neuron))
        explorer.show(self, "Neuron sliders")

    def _result(self):
        return self.result

    # ---- gestures ------------------------------------------------------------------------
    @handles("scales")
    def _on_scales(self, msg):
        seq = int(msg.get("seq", -1))
        if seq >= 0 and seq <= self._seen_seq:
            return  # an older drag position than one already answered
        values, keys = msg.get("scales"), msg.get("keys")
        if keys is None:
            keys = [f"{l}:{n}" for l, n in self.neuron_list]
        if not isinstance(values, list) or not isinstance(keys, list) or len(values) != len(keys):
            raise InputError(f"Expected a list of scales for the neurons {keys!r}, got {values!r}.")
        current = dict(zip((f"{l}:{n}" for l, n in self.neuron_list), self.scales))
        for key, value in zip(keys, values):
            if key in current:  # a neuron removed meanwhile is ignored; one added keeps its scale
                current[key] = _checked(value, tuple(int(x) for x in str(key).split(":")))
        self._seen_seq = max(self._seen_seq, seq)
        self._set_scales(list(current.values()), seq)
        self._update(seq)

    @handles("reset")
    def _on_reset(self, msg):
        self.reset()

    @handles("remove")
    def _on_remove(self, msg):
        self.remove(int(msg["layer"]), int(msg["neuron"]))

    @handles("add")
    def _on_add(self, msg):
        text = str(msg.get("text", "")).replace("L", " ").replace("N", " ").replace(":", " ").replace(",", " ")
        parts = text.split()
        if len(parts) != 2 or not all(p.lstrip("-").isdigit() for p in parts):
            raise InputError(f"Type a neuron as 'layer:neuron', e.g. '12:345' (got {msg.get('text')!r}).")
        self.add(int(parts[0]), int(parts[1]))

    # ---- recompute -----------------------------------------------------------------------
    def _recompute(self) -> None:
        """The weights moved: cached states, value tokens and the original continuation anew, then the bars."""
        self._update(-1)

    def _sync_engine(self) -> None:
        """Rebuild the engine when the model moved since its states were cached (every tick looks)."""
        if self.engine.weights_version == self.lm.state_version:
            return
        self.engine = SliderEngine(self.lm, self.prompt, self._target, self._k)
        self.neurons = [{**n, "promotes": [t for t, _ in value_tokens(self.lm, n["layer"], n["neuron"], k=3).top]}
                        for n in self.neurons]
        if self.n_continue:
            self._original_continuation = self._continue({})
        self.weights_version, self.stale = self.engine.weights_version, ""

    def _current(self) -> dict[tuple[int, int], float]:
        return dict(zip(self.neuron_list, self.scales))

    def _update(self, seq: int) -> None:
        """Bars first (one message), then the continuation (a second one)."""
        scales = self._current()
        start = time.perf_counter()
        self._sync_engine()
        self.result = self.engine.predict(scales)
        self.ticks += 1
        self.prediction = self._bars(self.result, seq)
        self.timings["bars"] = 1000 * (time.perf_counter() - start)
        if self.n_continue:
            self._schedule_continuation()

    def _schedule_continuation(self) -> None:
        loop = _running_loop()
        if loop is None:
            self._send_continuation()
            return
        now = loop.time()
        if self._timer is None:
            self._waiting_since = now
        elif now - self._waiting_since < CONTINUATION_MAX_WAIT_S:
            self._timer.cancel()
        else:
            return  # waited long enough: let the pending timer fire
        self._timer = loop.call_later(CONTINUATION_DEBOUNCE_S, self._continuation_due)

    def _continuation_due(self) -> None:
        self._timer = None
        try:
            self._send_continuation()
        except Exception as exc:  # noqa: BLE001 - a timer callback: show it, the kernel log is unseen
            from .base import describe

            self.error = describe(exc)

    def _send_continuation(self) -> None:
        start = time.perf_counter()
        self.continuation = {"seq": self.scales_seq, "tokens": self._continue(self._current()),
                             "original": self._original_continuation}
        self.timings["continuation"] = 1000 * (time.perf_counter() - start)

    def _continue(self, scales) -> list[str]:
        return self.engine.continuation(scales, self.n_continue)

    def _bars(self, pred: Prediction, seq: int) -> dict:
        original = self.engine.original
        import torch

        base = torch.softmax(original.logits, -1)[pred.top_ids]
        target = None
        if pred.target_id is not None:
            target = {"id": pred.target_id, "text": self.lm.token_strings([pred.target_id])[0],
                      "prob": pred.target_prob, "rank": pred.target_rank,
                      "original_prob": original.target_prob, "original_rank": original.target_rank}
        return {"seq": seq, "tokens": pred.top_tokens, "ids": pack(pred.top_ids, "int32"),
                "probs": pack(pred.top_probs, "float32"), "original_probs": pack(base, "float32"),
                "target": target}


def _running_loop():
    import asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _checked(value, key) -> float:
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise InputError(f"The scale of L{key[0]}.N{key[1]} must be a number, got {value!r}.") from None
    lo, hi = SCALE_RANGE
    if not math.isfinite(scale) or not lo <= scale <= hi:
        raise InputError(f"The scale of L{key[0]}.N{key[1]} must be between {lo:g} and {hi:g} "
                         f"(0 suppresses, 1 leaves it, 2 doubles), got {value!r}.")
    return scale
