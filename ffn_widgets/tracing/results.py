"""Causal tracing (ROME, Meng et al. 2022) and activation patching between two prompts.

Corrupt the subject (Gaussian noise on its input embeddings, or another prompt), restore one clean state
at a layer × token, and watch how much of p(target) comes back. Three kinds of state: the block's output
(``hidden``), and the MLP or attention outputs of a window of layers centred on the layer (``mlp``,
``attn``). The grid is computed by :mod:`ffn_widgets.tracing.engine`, row by row.

    tr = fw.causal_trace(lm, "The Eiffel Tower is located in the city of", "The Eiffel Tower", kind="mlp")
    tr.scores            # [n_layers, n_tokens] p(" Paris") with that state restored
    tr.p_clean, tr.p_corrupted, tr.figure()
    fw.causal_trace(lm, prompt, subject, kind="all").figure()     # three kinds, one pass
    fw.patch_trace(lm, prompt, "The Colosseum is located in the city of", kind="all")

Noise: σ defaults to 3 × the standard deviation of the embedding module's output entries over the
vocabulary (ROME measures it over subject tokens of a corpus). It is added to layer 0's input, which is
the embedding module's output (for GPT-2 plus position embeddings, which does not change additive
noise; Gemma's scaled embedding is scaled inside that module, so σ is measured after scaling too).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..model import LM
from ..model.recent import remember
from ..model.watch import same_model
from .engine import TraceEngine, TraceSetup
from .setup import check_kinds, check_window, prepare_patch, prepare_trace

COLOURS = {"hidden": "Purples", "mlp": "Greens", "attn": "Reds"}
TITLES = {"hidden": "hidden state (single layer)", "mlp": "MLP output (window)", "attn": "attention output (window)"}


@dataclass
class TraceResult:
    """One kind's grid. ``probs`` ``[n_layers, n_tokens, samples]`` is p(target) with the state at
    (layer, token) restored, per noise sample; ``scores`` its mean, ``spread`` its standard deviation."""

    kind: str
    window: int
    prompt: str
    tokens: list[str]
    subject: tuple[int, int]
    target: str
    target_id: int
    probs: torch.Tensor
    p_clean: float
    p_corrupted_samples: torch.Tensor  # [samples]
    corrupted_prompt: str | None = None
    sigma: float | None = None
    seed: int | None = None  # of the noise draws: the corruption can be drawn again (a neuron's trace share)
    weights_version: int = -1  # the model state it was computed on (``LM.state_version``)

    @property
    def scores(self) -> torch.Tensor:
        return self.probs.mean(-1)

    @property
    def spread(self) -> torch.Tensor:
        return self.probs.std(-1, correction=0)

    @property
    def p_corrupted(self) -> float:
        return float(self.p_corrupted_samples.mean())

    @property
    def indirect(self) -> torch.Tensor:
        """Indirect effect: p(restored) − p(corrupted), ``[n_layers, n_tokens]``."""
        return self.scores - self.p_corrupted

    @property
    def total_effect(self) -> float:
        return self.p_clean - self.p_corrupted

    @property
    def labels(self) -> list[str]:
        """Tokens with the subject (or the patched tokens) marked by ``*``, as in ROME's plots."""
        a, b = self.subject
        return [f"{tok}*" if a <= i < b else tok for i, tok in enumerate(self.tokens)]

    def peak(self) -> tuple[int, int, float]:
        """(layer, token, score) of the strongest restoration."""
        flat = int(self.scores.nan_to_num(-1).argmax())
        layer, token = divmod(flat, self.scores.shape[1])
        return layer, token, float(self.scores[layer, token])

    def to_frame(self):
        import pandas as pd

        L, T = self.scores.shape
        a, b = self.subject
        return pd.DataFrame({
            "kind": self.kind, "layer": [l for l in range(L) for _ in range(T)],
            "position": list(range(T)) * L, "token": self.tokens * L,
            "in_subject": [a <= t < b for t in range(T)] * L,
            "p": self.scores.flatten().tolist(), "spread": self.spread.flatten().tolist(),
            "indirect": self.indirect.flatten().tolist()})

    def heatmap(self):
        """A plotly heatmap trace (tokens down, layers across, like ROME)."""
        import plotly.graph_objects as go

        return go.Heatmap(z=self.scores.T.numpy(), y=_unique(self.labels), x=list(range(self.scores.shape[0])),
                          colorscale=COLOURS[self.kind], zmin=min(self.p_corrupted, float(self.scores.min())),
                          customdata=self.spread.T.numpy(),
                          hovertemplate="layer %{x}, %{y}<br>p = %{z:.4f} ± %{customdata:.4f}<extra></extra>")

    def figure(self):
        import plotly.graph_objects as go

        from ..analysis.figure_layout import ROW_PX, integer_ticks, sized, title

        fig = go.Figure(self.heatmap())
        fig.update_layout(title=title(self.title(), self.caption()), yaxis_autorange="reversed",
                          xaxis={"title": "layer", **integer_ticks(self.scores.shape[0])})
        return sized(fig, ROW_PX * len(self.tokens), lines=2)

    def title(self) -> str:
        what = "window of %d" % self.window if self.kind != "hidden" else "single layer"
        return f"Restoring the {self.kind} state ({what}): p({self.target!r})"

    def caption(self) -> str:
        from ..analysis.figure_layout import clip

        how = (f"corrupted prompt {clip(self.corrupted_prompt)!r}" if self.corrupted_prompt else
               f"{len(self.p_corrupted_samples)} noise samples, σ = {self.sigma:.3g}")
        return f"clean p = {self.p_clean:.4f}, corrupted p = {self.p_corrupted:.4f} ({how})"


class TraceSet(dict):
    """Several kinds traced in one pass: ``{kind: TraceResult}`` with a combined figure."""

    @property
    def weights_version(self) -> int:
        """The model state every kind was traced on (one pass: the same for all)."""
        return next(iter(self.values())).weights_version

    def figure(self):
        from plotly.subplots import make_subplots

        from ..analysis.figure_layout import BAR_GAP, ROW_PX, colorbars_beside, integer_ticks, sized, title

        parts = list(self.values())
        fig = make_subplots(rows=1, cols=len(parts), subplot_titles=[TITLES[p.kind] for p in parts],
                            shared_yaxes=True, horizontal_spacing=BAR_GAP)
        for i, part in enumerate(parts, start=1):
            fig.add_trace(part.heatmap(), row=1, col=i)
        first = parts[0]
        fig.update_xaxes(title_text="layer", **integer_ticks(first.scores.shape[0]))
        fig.update_yaxes(autorange="reversed")
        colorbars_beside(fig)
        fig.update_layout(title=title(f"Causal trace of p({first.target!r})", first.caption()))
        return sized(fig, ROW_PX * len(first.tokens), lines=2, panel_titles=True)

    def to_frame(self):
        import pandas as pd

        return pd.concat([r.to_frame() for r in self.values()], ignore_index=True)


def _unique(labels: list[str]) -> list[str]:
    """Plotly merges equal category labels; make repeated tokens distinct with invisible suffixes."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        n = seen.get(label, 0)
        seen[label] = n + 1
        out.append(label + "\u200b" * n)
    return out


# ---- running --------------------------------------------------------------------------------------

class TraceStream:
    """A trace in progress: iterate to get :class:`~ffn_widgets.tracing.engine.TraceRow` s as tokens
    finish (a tqdm bar shows progress unless ``progress=False``); :meth:`cancel` stops it; :meth:`result`
    gives what is done so far (unfinished tokens are NaN)."""

    def __init__(self, lm: LM, setup: TraceSetup, kind="all", window: int = 10, max_tokens: int = 4096,
                 progress: bool = True):
        self.lm, self.setup = lm, setup
        self.kinds, self.window = check_kinds(kind), check_window(window)
        self.engine = TraceEngine(lm, setup, self.kinds, self.window, max_tokens)
        L, T = lm.n_layers, len(setup.ids)
        self.probs = {k: torch.full((L, T, setup.samples), float("nan")) for k in self.kinds}
        self.finished: list[tuple[int, tuple[str, ...]]] = []  # (token, kinds) in the order they finished
        self.forwards_done = 0
        self.progress = progress
        self.weights_version = lm.state_version  # the setup's clean run and noise scale describe this model

    def __iter__(self):
        return (step for step in self.steps() if step is not None)

    def steps(self):
        """Rows as they finish, with a ``None`` after every batched forward (see ``TraceEngine.steps``)."""
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.engine.n_forwards, desc="causal trace", unit="run", leave=False)
        try:
            for step in self.engine.steps():
                same_model(self.lm, self.weights_version, "The causal trace")  # no rows from two models
                if step is None:
                    self.forwards_done += 1
                    if bar is not None:
                        bar.update()
                else:
                    for kind, p in step.probs.items():
                        self.probs[kind][:, step.token] = p
                    self.finished.append((step.token, tuple(step.probs)))
                yield step
        finally:
            if bar is not None:
                bar.close()

    @property
    def done(self) -> bool:
        """Every cell computed."""
        return not any(p.isnan().any() for p in self.probs.values())

    def cancel(self) -> None:
        self.engine.cancel()

    def run(self) -> TraceSet:
        for _ in self:
            pass
        return self.result()

    def result(self) -> TraceSet:
        e, s = self.engine, self.setup
        e.prepare()
        return TraceSet({k: TraceResult(k, self.window, s.prompt, s.tokens, s.subject, s.target, s.target_id,
                                        self.probs[k], e.p_clean, e.p_corrupt, s.corrupted_prompt, s.sigma, s.seed,
                                        self.weights_version)
                         for k in self.kinds})


def causal_trace(lm: LM, prompt: str, subject: str, target=None, kind: str | Sequence[str] = "hidden",
                 samples: int = 10, noise: float | None = None, window: int = 10, seed: int = 0,
                 check_target: bool = True, progress: bool = True):
    """ROME's causal trace of ``prompt`` with ``subject`` noised. ``kind`` is ``hidden``, ``mlp`` or
    ``attn`` (a :class:`TraceResult`), or ``"all"`` / a list (a :class:`TraceSet`, one shared pass).
    ``target=None`` traces the model's top prediction."""
    kinds = check_kinds(kind)
    setup = prepare_trace(lm, prompt, subject, target, samples, noise, seed, check_target)
    out = TraceStream(lm, setup, kinds, window, progress=progress).run()
    remember(lm, "trace", out)
    return out[kind] if isinstance(kind, str) and kind != "all" else out


def patch_trace(lm: LM, clean_prompt: str, corrupted_prompt: str, target=None,
                kind: str | Sequence[str] = "hidden", window: int = 10, check_target: bool = True,
                progress: bool = True):
    """Activation patching: run ``corrupted_prompt`` and restore one state of ``clean_prompt`` at a
    layer × token; same grid and kinds as :func:`causal_trace` (one sample, no noise)."""
    kinds = check_kinds(kind)
    setup = prepare_patch(lm, clean_prompt, corrupted_prompt, target, check_target)
    out = TraceStream(lm, setup, kinds, window, progress=progress).run()
    remember(lm, "trace", out)
    return out[kind] if isinstance(kind, str) and kind != "all" else out
