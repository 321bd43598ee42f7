"""The editing methods side by side on the same facts, every fact's edit in place when measured.

    cmp = fw.compare_methods(lm, facts[:6])          # MEMIT and AlphaEdit (one batch), r-ROME and ROME (in order)
    cmp.to_frame(); cmp.figure()
    runs_figure(measured_runs())                     # the long stability runs measured for the default model

Each method starts from the model as it was found and is taken out again afterwards. Its scores are the
stability experiment's (:mod:`.stability`) measured once, after all its facts are written: efficacy (P(new) >
P(true) on each fact's prompt), paraphrase and neighbourhood scores over every fact, the KL of unrelated
prompts' next-token distributions against the unedited model, the edited matrices' largest norm growth,
and (``fluency_tokens`` > 0) n-gram entropy of sampled text. This is how batch editing is scored: a
neighbour prompt that is itself one of the edited facts is scored against the object it was edited to.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..model import LM, InputError
from .stability import METHODS, stability_steps

SCORES = ("efficacy", "paraphrase", "neighbourhood")


@dataclass
class MethodComparison:
    """One row per method (``rows``): its scores, KL, norm growth, fluency and seconds spent editing."""

    rows: list[dict]
    settings: dict = field(default_factory=dict)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows).set_index("method")

    def figure(self):
        import plotly.graph_objects as go

        fig = go.Figure()
        for key in SCORES:
            fig.add_bar(x=[r["method"] for r in self.rows], y=[r[key] for r in self.rows], name=key)
        fig.update_layout(barmode="group", template="plotly_white", yaxis_range=[0, 1.05], height=320,
                          yaxis_title="fraction of prompts", margin=dict(l=50, r=20, t=50, b=40),
                          title=f"{self.settings.get('facts')} facts, each method from the unedited model")
        return fig

    def __repr__(self):
        pct = lambda v: "–" if v is None else f"{100 * v:.0f}%"  # noqa: E731
        lines = [f"{r['method']:<10} ES {pct(r['efficacy'])} PS {pct(r['paraphrase'])} NS {pct(r['neighbourhood'])} "
                 f"KL {r['kl']:.3g} norm ×{r['norm_ratio']:.3f} {r['seconds']:.0f}s" for r in self.rows]
        return "\n".join(lines)


def compare_methods(lm: LM, facts=None, methods=("memit", "alphaedit", "r-rome"), *, layer=None, seed: int = 0,
                    n_unrelated: int = 20, fluency_tokens: int = 0, **edit_kwargs) -> MethodComparison:
    """Write ``facts`` with each of ``methods`` in turn (see the module docstring); the model is left as found.
    ``layer``: ROME's layer and the last of MEMIT's range (None: each method's default). ``settings`` (in
    ``edit_kwargs``) may be one settings object for every method or ``{method: settings}`` (a method left out
    gets its defaults; entries for methods not compared are ignored): MEMIT's settings differ from ROME's."""
    from ..data.facts import edit_facts
    from .memit import default_layers

    facts = edit_facts(facts)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InputError(f"methods must be some of {', '.join(METHODS)}, got {list(methods)!r}.")
    per_method = edit_kwargs.get("settings")
    if isinstance(per_method, dict) and set(per_method) - set(METHODS):
        raise InputError(f"settings names {sorted(set(per_method) - set(METHODS))}, which are not editing methods "
                         f"(those are {', '.join(METHODS)}).")
    from ..sharded.jobs import for_each
    from .rome import default_layer
    from .stats import DEFAULT_TOKENS, for_workers

    layers = {x for m in methods for x in (default_layers(lm, layer) if m in ("memit", "alphaedit")
                                            else [default_layer(lm) if layer is None else layer])}
    stats = for_workers(lm, sorted(layers), edit_kwargs.get("corpus"), edit_kwargs.get("tokens", DEFAULT_TOKENS))
    rows = for_each(lm, _method_row, list(methods), (facts, layer, seed, n_unrelated, fluency_tokens, edit_kwargs),
                    "compare_methods", False, stats, restores=True)
    return MethodComparison(rows, {"facts": len(facts), "layer": layer, "seed": seed})


def measured_runs() -> list:
    """The long stability runs measured on the default model (``experiments/stability_curves.py``), shipped
    with the package: one :class:`~.stability.StabilityRun` per method."""
    from importlib.resources import files

    from .stability import StabilityRun

    folder = files("ffn_widgets.data").joinpath("stability")
    if not folder.is_dir():
        return []
    return [StabilityRun.load(p) for p in sorted(folder.iterdir(), key=lambda p: p.name) if p.name.endswith(".jsonl")]


def runs_figure(runs, title: str | None = None):
    """Several stability runs on one figure: retention, paraphrase score, unrelated KL (log) and norm growth
    against the number of edits, each run's collapse (if any) a dashed line of its colour."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        subplot_titles=("retention of earlier edits", "paraphrase score (all edits so far)",
                                        "KL on unrelated prompts (nats)", "‖W‖ now / as loaded"))
    colours = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
    for run, colour in zip(runs, colours * (1 + len(runs) // len(colours))):
        batch = run.settings.get("batch", 1)
        name = f"{run.settings.get('method')}" + (f" ×{batch} per step" if batch > 1 else "") + _earlier_mark(run)
        x = [r["edits"] for r in run.rows]
        for i, key in enumerate(("retention", "paraphrase", "kl", "norm_ratio"), 1):
            fig.add_scatter(x=x, y=[r[key] for r in run.rows], name=name, legendgroup=name, showlegend=i == 1,
                            line_color=colour, mode="lines", row=i, col=1)
        at = next((r["edits"] for r in run.rows if r["collapsed"]), None)
        if at is not None:
            fig.add_vline(x=at, line_dash="dash", line_color=colour)
    fig.update_yaxes(type="log", row=3, col=1)
    fig.update_yaxes(range=[-0.05, 1.05], row=1, col=1)
    fig.update_yaxes(range=[-0.05, 1.05], row=2, col=1)
    fig.update_xaxes(title_text="edits", row=4, col=1)
    model = runs[0].settings.get("model", "") if runs else ""
    default = f"Sequential editing on {model}: dashed lines mark a collapse"
    if _earlier(runs):  # runs measured before the edits equalled the reference code say so on the figure itself
        default += f"<br><sub>{_earlier(runs)}</sub>"
    fig.update_layout(template="plotly_white", height=900, margin=dict(l=60, r=20, t=80, b=45),
                      title=title or default)
    return fig


def runs_table(runs) -> str:
    """A markdown table of the runs: where each collapsed (and why) and its last measurement."""
    pct = lambda v: "–" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    lines = ["| method | facts per step | edits | collapsed at (edits) | retention | PS | NS | KL | norm × | s/edit |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        s = run.summary
        at = next((r["edits"] for r in run.rows if r["collapsed"]), None)
        where = "–" if at is None else f"{at} ({s['collapse_reason']})"
        lines.append(f"| {s['method']}{_earlier_mark(run)} | {run.settings.get('batch', 1)} | {s['edits']} | {where} | "
                     f"{pct(s['retention'])} | {pct(s['paraphrase'])} | {pct(s['neighbourhood'])} | {s['kl']:.4f} | "
                     f"{s['norm_ratio']:.3f} | {s['seconds_per_edit']:.1f} |")
    return "\n".join(lines + ([f"\n{_earlier(runs)}"] if _earlier(runs) else []))


def _earlier_mark(run) -> str:
    return " (earlier formulas)" if run.settings.get("formulas") else ""


def _earlier(runs) -> str | None:
    """Which runs were measured before the edits equalled the reference code, in words (None: none was)."""
    marked = [r for r in runs if r.settings.get("formulas")]
    if not marked:
        return None
    who = "these runs were" if len(marked) == len(runs) else "runs marked (earlier formulas) were"
    return f"{who} measured with the {marked[0].settings['formulas']}"


def _method_row(lm: LM, method: str, facts, layer, seed, n_unrelated, fluency_tokens, edit_kwargs) -> dict:
    """One method's scores, from the model as found (taken out again afterwards)."""
    from .memit import default_layers

    if isinstance(edit_kwargs.get("settings"), dict):
        chosen = edit_kwargs["settings"].get(method)
        edit_kwargs = {k: v for k, v in edit_kwargs.items() if k != "settings"}
        edit_kwargs.update({} if chosen is None else {"settings": chosen})
    batch_method = method in ("memit", "alphaedit")
    where = default_layers(lm, layer) if batch_method and layer is not None else layer
    steps = 1 if batch_method else len(facts)
    run = stability_steps(lm, facts, method, len(facts) if batch_method else 1, steps, layer=where, seed=seed,
                          every=steps, n_unrelated=n_unrelated, fluency_tokens=fluency_tokens, **edit_kwargs)
    (row,) = list(run)
    return {"method": method, "facts": len(facts), "efficacy": row["efficacy"], "paraphrase": row["paraphrase"],
            "neighbourhood": row["neighbourhood"], "kl": row["kl"], "norm_ratio": row["norm_ratio"],
            "fluency_before": row["fluency_before"], "fluency_after": row["fluency"], "seconds": row["seconds_edit"],
            "skipped": row["skipped"]}
