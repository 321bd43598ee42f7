"""Causal traces averaged over many facts, aligned like ROME's average plots.

Prompts differ in length and in where the subject sits, so each fact's grid is reduced to six token
groups before averaging: the first, middle and last subject tokens, the first token after the subject,
further tokens, and the last token. ROME (GPT-2 XL, 1000 facts) finds the early site — MLP outputs at the
last subject token in early-middle layers — and the late site — attention at the last token in late layers.

    avg = fw.trace_many(lm, fw.load_facts())
    avg.figure()          # average indirect effect per group × layer, one panel per kind
    avg.line_figure()     # the three kinds at the last subject token, per layer
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..data.facts import target as with_space
from ..model import LM, InputError
from .results import COLOURS, TITLES, TraceSet, TraceStream
from .setup import check_kinds, check_window, embedding_sigma, prepare_trace

GROUPS = ("first subject token", "middle subject tokens", "last subject token", "first subsequent token",
          "further tokens", "last token")


def token_groups(subject: tuple[int, int], n_tokens: int) -> list[list[int]]:
    """Positions of each of :data:`GROUPS` for a prompt of ``n_tokens`` with the subject at ``[a, b)``."""
    a, b = subject
    last = n_tokens - 1
    return [[a], list(range(a + 1, b - 1)), [b - 1], [b] if b < last else [],
            list(range(b + 1, last)), [last]]


@dataclass
class TraceAverage:
    """Per kind ``[n_layers, 6]`` means over facts: ``scores`` p(target) restored, ``indirect`` the
    indirect effect p(restored) − p(corrupted). ``counts[g]`` facts that have tokens in group g."""

    kinds: tuple[str, ...]
    scores: dict[str, torch.Tensor]
    indirect: dict[str, torch.Tensor]
    counts: torch.Tensor
    p_clean: float
    p_corrupted: float
    traces: list[TraceSet] = field(repr=False)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    weights_version: int = -1  # the model state it was computed on (``LM.state_version``)

    @property
    def n_facts(self) -> int:
        return len(self.traces)

    @property
    def total_effect(self) -> float:
        return self.p_clean - self.p_corrupted

    def peak(self, kind: str) -> tuple[int, str, float]:
        """(layer, group, average indirect effect) of the strongest cell of ``kind``."""
        z = self.indirect[kind].nan_to_num(-1.0)
        layer, g = divmod(int(z.argmax()), len(GROUPS))
        return layer, GROUPS[g], float(self.indirect[kind][layer, g])

    def to_frame(self):
        import pandas as pd

        rows = []
        for kind in self.kinds:
            L = self.scores[kind].shape[0]
            for layer in range(L):
                for g, group in enumerate(GROUPS):
                    rows.append({"kind": kind, "layer": layer, "group": group, "facts": int(self.counts[g]),
                                 "p": float(self.scores[kind][layer, g]),
                                 "indirect": float(self.indirect[kind][layer, g])})
        return pd.DataFrame(rows)

    def figure(self):
        """ROME's average plots: indirect effect per token group (rows) and layer (columns)."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        from ..analysis.figure_layout import BAR_GAP, ROW_PX, colorbars_beside, integer_ticks, sized, title

        fig = make_subplots(rows=1, cols=len(self.kinds), shared_yaxes=True, horizontal_spacing=BAR_GAP,
                            subplot_titles=[TITLES[k] for k in self.kinds])
        for i, kind in enumerate(self.kinds, start=1):
            z = self.indirect[kind].T.numpy()
            fig.add_trace(go.Heatmap(z=z, y=list(GROUPS), x=list(range(z.shape[1])), colorscale=COLOURS[kind],
                                     hovertemplate="layer %{x}, %{y}<br>AIE = %{z:.4f}<extra></extra>"),
                          row=1, col=i)
        fig.update_xaxes(title_text="layer", **integer_ticks(z.shape[1]))
        fig.update_yaxes(autorange="reversed")
        colorbars_beside(fig)
        fig.update_layout(title=title(f"Average indirect effect over {self.n_facts} facts",
                                      f"clean p = {self.p_clean:.3f}, corrupted p = {self.p_corrupted:.3f}, "
                                      f"total effect = {self.total_effect:.3f}"))
        return sized(fig, 1.25 * ROW_PX * len(GROUPS), lines=2, panel_titles=True)

    def line_figure(self, group: str = "last subject token"):
        """Average indirect effect per layer at one token group, one line per kind."""
        import plotly.graph_objects as go

        from ..analysis.figure_layout import integer_ticks, sized, title

        if group not in GROUPS:
            raise InputError(f"group must be one of {', '.join(GROUPS)}, got {group!r}.")
        g = GROUPS.index(group)
        colours = {"hidden": "#6a3d9a", "mlp": "#1b9e77", "attn": "#d62728"}
        fig = go.Figure([go.Scatter(y=self.indirect[k][:, g].numpy(), name=k, line_color=colours[k])
                         for k in self.kinds])
        fig.update_layout(title=title(f"Average indirect effect at the {group} ({self.n_facts} facts)"),
                          xaxis={"title": "layer", **integer_ticks(self.indirect[self.kinds[0]].shape[0])},
                          yaxis_title="AIE")
        return sized(fig, 300)


def trace_many(lm: LM, facts, kind="all", samples: int = 10, noise: float | None = None, window: int = 10,
               seed: int = 0, progress: bool = True) -> TraceAverage:
    """Trace every fact (dicts with ``prompt``, ``subject`` and ``target_true`` or ``target``; no target =
    the model's top prediction) and average the grids in ROME's token groups. Facts whose target the
    model does not predict are skipped and listed in ``.skipped``, as ROME keeps only known facts."""
    from ..sharded.jobs import for_each

    facts, args = _checked(lm, facts, kind, samples, noise, window, seed)
    return _averaged(for_each(lm, trace_one, facts, args, "trace_many", progress))


def trace_many_steps(lm: LM, facts, kind="all", samples: int = 10, noise: float | None = None, window: int = 10,
                     seed: int = 0, cluster=None):
    """:func:`trace_many` for a view: a generator of events ``{"result", "done", "skipped", "total", "message",
    "fraction", "updated"}`` whose ``result`` is the average over the facts finished so far (in the facts'
    order, so the last equals :func:`trace_many`'s); returns the final :class:`TraceAverage`. In process it
    steps one batched forward at a time (a Cancel lands within a fact); on ``cluster`` (default: the open
    ``fw.cluster`` block's) one fact per shard, polled, each averaged in as it arrives. Bad input is refused
    here, before the first step."""
    from ..sharded.session import current

    facts, args = _checked(lm, facts, kind, samples, noise, window, seed)
    return _steps(lm, facts, args, cluster or current())


def _steps(lm: LM, facts: list, args: tuple, cluster):
    done: list = [None] * len(facts)
    state = {"result": None, "done": 0, "skipped": 0, "total": len(facts)}
    averaged_at = [0.0]  # when the average was last made: on a cluster, remade at most every 0.25 s (and at the end)

    def event(message: str, fraction: float, updated: bool) -> dict:
        return {**state, "message": message, "fraction": fraction, "updated": updated}

    def arrived(i: int, traced) -> dict:
        done[i] = traced
        state["done"] += 1
        state["skipped"] += not isinstance(traced, TraceSet)
        n, total = state["done"], len(facts)
        kept = [t for t in done if isinstance(t, TraceSet)]
        fresh = cluster is None or n == total or time.monotonic() - averaged_at[0] >= 0.25  # facts may pour in there
        if fresh and kept:
            state["result"], averaged_at[0] = average(kept, [t for t in done if isinstance(t, tuple)]), time.monotonic()
        return event(f"{n} of {total} facts traced" + (f" ({state['skipped']} not known)" if state["skipped"] else ""),
                     n / total, fresh and bool(kept))

    if cluster is None:
        for i, fact in enumerate(facts):
            stream = _stream(lm, fact, *args)
            if isinstance(stream, TraceStream):
                forwards = max(1, stream.engine.n_forwards)
                for _ in stream.steps():
                    share = stream.forwards_done / forwards
                    yield event(f"Fact {i + 1} of {len(facts)}: {fact['subject']} ({stream.forwards_done} of "
                                f"{forwards} batched runs)", (i + share) / len(facts), False)
                stream = stream.result()
            yield arrived(i, stream)
    else:
        yield from _on_cluster(cluster, lm, facts, args, arrived, event)
    return _averaged(done)


def _on_cluster(cluster, lm: LM, facts: list, args: tuple, arrived, event):
    """The facts on the cluster's workers, one per shard; polled (every 50 ms) so a view's Cancel lands at once."""
    from ..model.watch import same_model
    from ..sharded.dispatch import stream_shards
    from ..sharded.jobs import started, stamped
    from ..sharded.shards import per_fact

    version = started(cluster, lm)
    shards = [(trace_one, fact, args, {}) for fact in facts]
    n = 0
    for got in stream_shards(cluster, lm, per_fact, shards, desc="trace_many", progress=False, poll=0.05):
        if got is None:
            yield event(f"Tracing {len(facts)} facts on {cluster.workers} workers: {n} done", n / len(facts), False)
            continue
        same_model(lm, version, "trace_many")  # the caller's weights moved while the workers ran: stop
        i, traced = got
        n += 1
        yield arrived(i, stamped(traced, version))


def _checked(lm: LM, facts, kind, samples, noise, window, seed) -> tuple[list, tuple]:
    """The facts as a list and the per-fact arguments, or a clear error before anything runs."""
    kinds, window = check_kinds(kind), check_window(window)
    facts = list(facts)
    if not facts:
        raise InputError("No facts to trace: pass a list of dicts with 'prompt' and 'subject'.")
    for fact in facts:
        if not isinstance(fact, dict) or "prompt" not in fact or "subject" not in fact:
            raise InputError(f"Each fact needs 'prompt' and 'subject' keys, got {fact!r}.")
    sigma = 3 * embedding_sigma(lm) if noise is None else float(noise)
    return facts, (kinds, window, samples, sigma, seed)


def _averaged(done: list) -> TraceAverage:
    traces = [t for t in done if isinstance(t, TraceSet)]
    skipped = [t for t in done if not isinstance(t, TraceSet)]
    if not traces:
        raise InputError("The model predicts none of these facts' targets, so there is nothing to average: "
                         + "; ".join(reason for _, reason in skipped[:3]))
    return average(traces, skipped)


def trace_one(lm: LM, fact: dict, kinds, window: int, samples: int, sigma: float, seed: int):
    """One fact of :func:`trace_many`: its TraceSet, or ``(prompt, reason)`` when the model does not know it."""
    stream = _stream(lm, fact, kinds, window, samples, sigma, seed)
    return stream.run() if isinstance(stream, TraceStream) else stream


def _stream(lm: LM, fact: dict, kinds, window: int, samples: int, sigma: float, seed: int):
    """The fact's trace, ready to run, or ``(prompt, reason)`` when the model does not predict its target."""
    obj = fact.get("target_true", fact.get("target"))
    try:
        setup = prepare_trace(lm, fact["prompt"], fact["subject"], None if obj is None else with_space(obj),
                              samples, sigma, seed)
    except InputError as exc:
        return (fact["prompt"], str(exc))
    return TraceStream(lm, setup, kinds, window, progress=False)


def average(traces: list[TraceSet], skipped=()) -> TraceAverage:
    """Average already computed traces (same model and kinds) in ROME's token groups."""
    kinds = tuple(traces[0])
    L = next(iter(traces[0].values())).scores.shape[0]
    sums = {k: torch.zeros(L, len(GROUPS), dtype=torch.float64) for k in kinds}
    effects = {k: torch.zeros(L, len(GROUPS), dtype=torch.float64) for k in kinds}
    counts = torch.zeros(len(GROUPS), dtype=torch.long)
    for trace in traces:
        first = next(iter(trace.values()))
        groups = token_groups(first.subject, len(first.tokens))
        for g, positions in enumerate(groups):
            if not positions:
                continue
            counts[g] += 1
            for k in kinds:
                cols = trace[k].scores[:, positions].double().mean(1)
                sums[k][:, g] += cols
                effects[k][:, g] += cols - trace[k].p_corrupted
    denom = counts.clamp_min(1).double()
    nan = counts == 0
    mean = lambda x: (x / denom).masked_fill(nan, float("nan")).float()  # noqa: E731
    firsts = [next(iter(t.values())) for t in traces]
    return TraceAverage(kinds, {k: mean(sums[k]) for k in kinds}, {k: mean(effects[k]) for k in kinds}, counts,
                        sum(f.p_clean for f in firsts) / len(firsts), sum(f.p_corrupted for f in firsts) / len(firsts),
                        list(traces), list(skipped), traces[0].weights_version)
