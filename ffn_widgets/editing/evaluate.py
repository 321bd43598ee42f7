"""Did the edits work, and what else did they change? CounterFact-style evaluation over many facts, and the
layer sweep that says where edits work best (one edit's before/after report is :mod:`.report`).

    ev = fw.evaluate_edits(lm, fw.load_facts())   # each fact edited alone (undone between), ROME's metrics
    ev.summary, ev.to_frame(), ev.figure()
    sweep = fw.edit_layer_sweep(lm, facts[:8], layers=range(0, 30, 3))
    sweep.best_layer, sweep.figure()

Metric definitions are in :mod:`.metrics` (ROME's ES/PS/NS, magnitudes, n-gram entropy fluency, KL).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..data.facts import edit_facts, target
from ..memories.corpus import Corpus, load_corpus
from ..model import LM, InputError
from ..model.long_runs import run_steps
from ..sharded.jobs import for_each
from .metrics import fact_scores, generate, harmonic_mean, ngram_entropy
from .rome import default_layer, rome_edit
from .stats import DEFAULT_TOKENS, KeyMoments, for_workers, statistics_of


# ---- many facts, one at a time ------------------------------------------------------------------
@dataclass
class EditEvaluation:
    """Per-fact ROME metrics (``rows``) and their means (``summary``, with S = harmonic mean of ES, PS, NS)."""

    rows: list[dict]
    settings: dict = field(default_factory=dict)

    @property
    def summary(self) -> dict:
        def mean(key):
            vals = [r[key] for r in self.rows if r.get(key) is not None]
            return sum(vals) / len(vals) if vals else None

        keys = ("efficacy", "efficacy_magnitude", "paraphrase", "paraphrase_magnitude", "neighbourhood",
                "neighbourhood_magnitude", "neighbourhood_kl", "fluency_before", "fluency_after", "seconds")
        out = {k: mean(k) for k in keys}
        parts = [out["efficacy"], out["paraphrase"], out["neighbourhood"]]
        out["score"] = harmonic_mean(parts) if None not in parts else None
        out["facts"] = len(self.rows)
        return out

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def table(self) -> str:
        """The summary as percentages, the way ROME's tables print them."""
        s = self.summary
        pct = lambda v: "–" if v is None else f"{100 * v:.1f}"  # noqa: E731
        flu = lambda v: "–" if v is None else f"{100 * v:.0f}"  # noqa: E731
        return (f"facts {s['facts']}: S {pct(s['score'])} · ES {pct(s['efficacy'])} · PS {pct(s['paraphrase'])} · "
                f"NS {pct(s['neighbourhood'])} · fluency {flu(s['fluency_before'])} → {flu(s['fluency_after'])}")

    def figure(self):
        import plotly.graph_objects as go

        s = self.summary
        names = ["efficacy", "paraphrase", "neighbourhood", "score"]
        fig = go.Figure(go.Bar(x=names, y=[100 * (s[n] or 0) for n in names], text=[f"{100 * (s[n] or 0):.1f}"
                                                                                      for n in names]))
        fig.update_layout(template="plotly_white", yaxis_title="%", yaxis_range=[0, 105], height=320,
                          title=f"{self.settings.get('method', '')} over {s['facts']} facts",
                          margin=dict(l=50, r=20, t=50, b=40))
        return fig

    def __repr__(self):
        return f"EditEvaluation({self.table()})"


def evaluate_edits(lm: LM, facts=None, method: str = "r-rome", layer: int | None = None, *,
                   fluency_prompts: int = 2, fluency_tokens: int = 50, seed: int = 0, corpus=None,
                   tokens: int = DEFAULT_TOKENS, progress=True, **edit_kwargs) -> EditEvaluation:
    """Edit each fact alone (``target_new``; undone before the next) and measure ROME's metrics against the
    model before the edit: ES/EM, PS, NS/NM, the KL of neighbour prompts' next-token distributions, and
    fluency (n-gram entropy of ``fluency_tokens`` sampled tokens after the prompt and its first
    paraphrases, before and after). ``facts``: dicts like the dev facts, a facts file path, or None (all)."""
    facts = edit_facts(facts)
    if method not in ("r-rome", "rome"):
        raise InputError(f"method must be 'r-rome' or 'rome' here, got {method!r}.")
    corpus = corpus if isinstance(corpus, Corpus) else load_corpus(corpus)
    args = (method, layer, fluency_prompts, fluency_tokens, seed, corpus, tokens, edit_kwargs)
    stats = for_workers(lm, [default_layer(lm) if layer is None else layer], corpus, tokens, progress)
    rows = for_each(lm, _evaluate_one, facts, args, f"evaluating {method}", progress, stats, restores=True)
    return EditEvaluation(rows, {"method": method, "layer": layer, "fluency_tokens": fluency_tokens})


def _evaluate_one(lm, fact, method, layer, n_prompts, n_tokens, seed, corpus, tokens, edit_kwargs) -> dict:
    gen_prompts = [fact["prompt"]] + list(fact.get("paraphrases", []))[:max(0, n_prompts - 1)]
    before = fact_scores(lm, fact)
    fluency_before = ngram_entropy(generate(lm, gen_prompts, n_tokens=n_tokens, seed=seed)) if n_tokens else None
    t0 = time.perf_counter()
    with lm.edits.temporary():
        e = rome_edit(lm, fact["prompt"], fact["subject"], target(fact["target_new"]), layer, method=method,
                      seed=seed, corpus=corpus, tokens=tokens, progress=False, **edit_kwargs)
        seconds = time.perf_counter() - t0
        after = fact_scores(lm, fact, before=before)
        fluency_after = ngram_entropy(generate(lm, gen_prompts, n_tokens=n_tokens, seed=seed)) if n_tokens else None
    return {"subject": fact["subject"], "prompt": fact["prompt"], "target_new": fact["target_new"],
            "layer": e.layer, "efficacy": after["efficacy"], "efficacy_magnitude": after["efficacy_magnitude"],
            "paraphrase": after["paraphrase"], "paraphrase_magnitude": after["paraphrase_magnitude"],
            "neighbourhood": after["neighbourhood"], "neighbourhood_magnitude": after["neighbourhood_magnitude"],
            "neighbourhood_kl": after.get("neighbourhood_kl"), "efficacy_before": before["efficacy"],
            "neighbourhood_before": before["neighbourhood"], "fluency_before": fluency_before,
            "fluency_after": fluency_after, "delta_norm": e.delta_norm, "update_norm": e.update_norm,
            "steps": len(e.loss_curve), "final_loss": e.loss_curve[-1]["loss"], "seconds": seconds}


# ---- where to edit --------------------------------------------------------------------------------
@dataclass
class LayerSweep:
    """Edit success per layer (ROME's editing-across-layers figure): ``rows`` per (layer, fact)."""

    rows: list[dict]

    def by_layer(self) -> dict[int, dict]:
        out = {}
        for layer in sorted({r["layer"] for r in self.rows}):
            rs = [r for r in self.rows if r["layer"] == layer]
            m = {k: sum(r[k] for r in rs if r[k] is not None) / max(1, sum(r[k] is not None for r in rs))
                 for k in ("efficacy", "paraphrase", "neighbourhood", "efficacy_magnitude", "paraphrase_magnitude")}
            m["score"] = harmonic_mean([m["efficacy"], m["paraphrase"], m["neighbourhood"]])
            out[layer] = m
        return out

    @property
    def best_layer(self) -> int:
        """The layer with the highest score S, ties broken by paraphrase magnitude (generalisation)."""
        by = self.by_layer()
        return max(by, key=lambda layer: (round(by[layer]["score"], 6), by[layer]["paraphrase_magnitude"]))

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame.from_dict(self.by_layer(), orient="index").rename_axis("layer")

    def figure(self):
        import plotly.graph_objects as go

        by = self.by_layer()
        fig = go.Figure()
        for key in ("efficacy", "paraphrase", "neighbourhood", "score"):
            fig.add_scatter(x=list(by), y=[100 * by[layer][key] for layer in by], name=key, mode="lines+markers")
        fig.add_vline(x=self.best_layer, line_dash="dot")
        fig.update_layout(template="plotly_white", xaxis_title="edit layer", yaxis_title="%", height=340,
                          title=f"Edit success by layer ({len({r['subject'] for r in self.rows})} facts)",
                          xaxis=dict(tickmode="linear", dtick=max(1, len(by) // 10)),
                          margin=dict(l=50, r=20, t=50, b=45))
        return fig


def edit_layer_sweep(lm: LM, facts=None, layers=None, method: str = "r-rome", *, seed: int = 0, corpus=None,
                     tokens: int = DEFAULT_TOKENS, progress=True, **edit_kwargs) -> LayerSweep:
    """Edit each fact alone at each layer (undone between) and measure ES, PS, NS: where edits work best.
    The key statistics of all the layers come from one pass over the corpus."""
    facts = edit_facts(facts)
    layers = list(range(lm.n_layers)) if layers is None else [lm.check_layer(int(x)) for x in layers]
    corpus = corpus if isinstance(corpus, Corpus) else load_corpus(corpus)
    moments = KeyMoments(lm, layers, corpus, tokens)
    run_steps(moments.steps(progress))
    befores = [fact_scores(lm, f) for f in facts]
    items = [(layer, fact, before) for layer in layers for fact, before in zip(facts, befores)]
    args = (method, seed, corpus, tokens, edit_kwargs)
    return LayerSweep(for_each(lm, _sweep_one, items, args, "layer sweep", progress, statistics_of(moments),
                               restores=True))


def _sweep_one(lm, item, method, seed, corpus, tokens, edit_kwargs) -> dict:
    layer, fact, before = item
    with lm.edits.temporary():
        rome_edit(lm, fact["prompt"], fact["subject"], target(fact["target_new"]), layer,
                  method=method, seed=seed, corpus=corpus, tokens=tokens, progress=False, **edit_kwargs)
        after = fact_scores(lm, fact, before=before)
    return {"layer": layer, "subject": fact["subject"],
            **{k: after[k] for k in ("efficacy", "paraphrase", "neighbourhood", "efficacy_magnitude",
                                     "paraphrase_magnitude")}}

