"""Where does a fact live? Every localisation method of the package, per layer, side by side — and whether
the answer predicts where an edit works (Hase et al., NeurIPS 2023).

    loc = fw.localize(lm, fw.load_facts()[0])          # or fw.localize(lm, prompt, subject, target[, target_new])
    loc.to_frame(); loc.figure(); loc.best_layers()
    many = fw.localize_many(lm, fw.load_facts()[:6], edit_layers=range(0, 30, 3))
    many.figure(); many.r2                             # what the layer alone explains, and with the trace

Per layer (all at the prompt's last position unless said):

- ``trace_mlp``: causal tracing's MLP indirect effect at the last subject token, that layer's MLP restored;
  ``trace_mlp_window``: the same with ROME's window of 10 layers restored;
- ``kn_mass``: the layer's share of the positive integrated-gradients attribution (knowledge neurons);
- ``lens_gain``: the logit lens's log10 rank of the target before the MLP minus after it (> 0: the MLP
  promotes the target);
- ``value_push``: what the layer's MLP output (Σ m_i v_i) adds to the target's logit directly, through the final
  norm (frozen at the last state) and the unembedding — the values' joint vote for the target;
- ``value_agreement``: of the layer's 10 strongest neurons (|m_i|), the fraction whose value vector, signed by
  m_i, ranks the target among its 10 top tokens (Geva's agreement);
- ``edit_efficacy``, ``edit_paraphrase``, ``edit_neighbourhood`` (ROME's ES, PS, NS) and ``edit_rewrite``
  ((p_new after − before) / (1 − before), Hase's rewrite score) of a ROME edit to ``target_new`` at that layer,
  undone before the next (only at ``edit_layers``; NaN elsewhere).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..analysis.knowledge import KnowledgeNeurons, attribution, from_scores
from ..analysis.lens import logit_lens
from ..analysis.neurons import layer_contributions
from ..analysis.values import value_logits
from ..data.facts import target as as_target
from ..model import LM, InputError
from ..model.long_runs import run_steps
from ..tracing.results import causal_trace
from .metrics import fact_scores
from .rome import rome_steps

MEASURES = {
    "trace_mlp": "causal trace: MLP indirect effect (one layer)",
    "trace_mlp_window": "causal trace: MLP indirect effect (window of 10)",
    "kn_mass": "knowledge neurons: share of attribution",
    "lens_gain": "logit lens: target rank gained across the MLP (log10)",
    "value_push": "values: the MLP's direct push on the target logit",
    "value_agreement": "values: top neurons promoting the target",
    "edit_efficacy": "ROME at this layer: efficacy",
    "edit_paraphrase": "ROME at this layer: paraphrase",
    "edit_neighbourhood": "ROME at this layer: neighbourhood",
    "edit_rewrite": "ROME at this layer: rewrite score",
}
EDIT_MEASURES = ("edit_efficacy", "edit_paraphrase", "edit_neighbourhood", "edit_rewrite")


@dataclass
class Localization:
    """One fact's per-layer answers (``measures[name]`` is ``[n_layers]``, NaN where not measured)."""

    fact: dict
    target: str
    measures: dict[str, np.ndarray]
    edit_layers: list[int] = field(default_factory=list)
    knowledge: KnowledgeNeurons | None = field(default=None, repr=False)  # the attribution behind kn_mass
    traces: dict = field(default_factory=dict, repr=False)  # "trace_mlp" / "trace_mlp_window" -> TraceResult
    weights_version: int = -1  # the model state it was computed on (``LM.state_version``) (its own edits taken out)

    @property
    def n_layers(self) -> int:
        return len(next(iter(self.measures.values())))

    def best_layers(self) -> dict[str, int]:
        """Each measure's layer with the largest value (where it was measured)."""
        return {k: int(np.nanargmax(v)) for k, v in self.measures.items() if np.isfinite(v).any()}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"layer": np.arange(self.n_layers), **self.measures}).set_index("layer")

    def figure(self):
        """One row per measure, layers on a shared axis (the comparison Hase et al. make, for one fact)."""
        from plotly.subplots import make_subplots

        from ..analysis.figure_layout import clip, sized, title

        names = [k for k in MEASURES if k in self.measures and np.isfinite(self.measures[k]).any()]
        fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.02)
        for i, name in enumerate(names, start=1):
            y = self.measures[name]
            fig.add_bar(x=np.arange(self.n_layers), y=np.where(np.isfinite(y), y, None), row=i, col=1,
                        name=MEASURES[name], marker_color="#4c78a8" if not name.startswith("edit") else "#f58518")
            fig.update_yaxes(title_text=name.replace("_", " "), title_font_size=10, row=i, col=1)
        fig.update_xaxes(title_text="layer", row=len(names), col=1)
        fig.update_layout(showlegend=False, title=title(f"Where does {clip(self.fact['subject'], 30)!r} → "
                                                        f"{self.target.strip()!r} live?"))
        return sized(fig, 70 * len(names))


def localize_steps(lm: LM, fact: dict, *, edit_layers: Sequence[int] | None = None, samples: int = 10,
                   steps: int = 20, seed: int = 0, corpus=None, tokens: int | None = None,
                   edit_kwargs: dict | None = None, cluster=None) -> Iterator[dict]:
    """:func:`localize` as a stream for views: ``{"stage", "message", "fraction", "result"}`` after each
    part (the partial :class:`Localization` so far, ``"updated"``: whether its numbers changed; the edits also
    report their own steps); the last event's result is complete. Closing it between events leaves the weights
    as they were (an edit is written only at its end, and undone before the next event). ``cluster`` (default:
    the open ``fw.cluster`` block's): the edits run on its workers, one layer each, filled in as they finish."""
    from ..sharded.session import current

    fact, layers = checked_request(lm, fact, edit_layers)
    cluster = cluster or current()
    L, prompt, subject = lm.n_layers, fact["prompt"], fact["subject"]
    tgt = as_target(fact["target_true"])
    nan = np.full(L, np.nan)
    loc = Localization(fact, tgt, {k: nan.copy() for k in MEASURES}, layers, weights_version=lm.state_version)
    total = 4 + len(layers)

    last_subject = lm.find_subject(prompt, subject)[1] - 1
    for n, (window, key) in enumerate(((1, "trace_mlp"), (10, "trace_mlp_window")), start=1):
        trace = causal_trace(lm, prompt, subject, tgt, kind="mlp", window=window, samples=samples, seed=seed,
                             check_target=False, progress=False)
        loc.measures[key] = trace.indirect[:, last_subject].numpy().astype(float)
        loc.traces[key] = trace
        yield _event(loc, "trace", f"Causal trace, MLP (window {window})", n / total)
    scores = attribution(lm, prompt, tgt, steps=steps)
    loc.knowledge = from_scores([prompt], tgt, lm.target_ids(tgt)[0], scores[None], steps)
    positive = scores.clamp(min=0).sum(1).double()
    loc.measures["kn_mass"] = (positive / positive.sum().clamp_min(1e-30)).numpy()
    yield _event(loc, "knowledge", "Knowledge-neuron attribution", 3 / total)
    loc.measures["lens_gain"], loc.measures["value_push"], loc.measures["value_agreement"] = \
        lens_and_values(lm, prompt, tgt)
    yield _event(loc, "lens", "Logit lens and value vectors", 4 / total)

    if layers:
        kw = dict(seed=seed, progress=False, **(edit_kwargs or {}))
        kw.update({k: v for k, v in (("corpus", corpus), ("tokens", tokens)) if v is not None})
        before = fact_scores(lm, fact)
        if cluster is not None:
            yield from _edits_on(cluster, lm, loc, fact, before, kw, total)
            return
        for n, layer in enumerate(layers, start=1):
            head = f"ROME at layer {layer} ({n} of {len(layers)})"
            steps_of = edit_success_steps(lm, fact, layer, before, kw)
            while True:
                try:
                    step = next(steps_of)
                except StopIteration as done:
                    scores_at = done.value
                    break
                f = step.get("fraction") or 0.0  # the key statistics (cached after the first), then the optimisation
                within = {"statistics": 0.3 * f, "optimise": 0.3 + 0.7 * f}.get(step.get("stage"), 0.0)
                yield _event(loc, "edit", f"{head}: {step.get('message', '')}", (3 + n + within) / total, False)
            for name, value in scores_at.items():
                loc.measures[name][layer] = value
            loc.weights_version = lm.state_version  # its edit taken out exactly: the same weights, a newer number
            yield _event(loc, "edit", head, (4 + n) / total)


def _edits_on(cluster, lm: LM, loc: Localization, fact: dict, before: dict, kw: dict, total: int) -> Iterator[dict]:
    """The edit rows on the cluster's workers, one layer per shard (with this process's key statistics), each
    filled in when it arrives; polled, so a view's Cancel lands at once (it stops every worker)."""
    from ..model.watch import same_model
    from ..sharded.dispatch import stream_shards
    from ..sharded.jobs import started
    from ..sharded.shards import per_fact
    from .stats import DEFAULT_TOKENS, for_workers

    layers = loc.edit_layers
    version = started(cluster, lm)
    stats = for_workers(lm, layers, kw.get("corpus"), kw.get("tokens", DEFAULT_TOKENS))
    shards = [(_edit_layer, layer, (fact, before, kw), stats) for layer in layers]
    done = 0
    for got in stream_shards(cluster, lm, per_fact, shards, desc="localize", progress=False, poll=0.05):
        head = f"ROME at {len(layers)} layers on {cluster.workers} workers: {done} done"
        if got is None:
            yield {**_event(loc, "edit", head, (4 + done) / total, False), "polled": True}
            continue
        same_model(lm, version, "localize")  # the caller's weights moved while the workers ran: stop
        i, scores_at = got
        for name, value in scores_at.items():
            loc.measures[name][layers[i]] = value
        done += 1
        yield _event(loc, "edit", f"ROME at layer {layers[i]} ({done} of {len(layers)}, on {cluster.workers} workers)",
                     (4 + done) / total)
    loc.weights_version = version


def _edit_layer(lm: LM, layer: int, fact: dict, before: dict, edit_kwargs: dict) -> dict[str, float]:
    return edit_success(lm, fact, layer, before, edit_kwargs)


def localize(lm: LM, prompt: str | dict | None = None, subject: str | None = None, target: str | None = None,
             target_new: str | None = None, *, fact: dict | None = None, **kwargs) -> Localization:
    """Every localisation method for one fact: ``localize(lm, prompt, subject, target[, target_new])`` as
    ``rome_edit`` and ``causal_trace`` are called, or a dev-facts dict (``localize(lm, fact)``); see the
    module docstring. ``edit_layers`` chooses where ROME edits (default: every layer; ``[]`` for none),
    ``samples`` the trace's noise draws, ``steps`` the attribution's."""
    fact = as_fact(prompt, subject, target, target_new, fact)
    result = None
    for event in localize_steps(lm, fact, **kwargs):
        result = event["result"]
    return result


def as_fact(prompt, subject=None, target=None, target_new=None, fact: dict | None = None) -> dict:
    """The one calling convention: ``(prompt, subject, target, target_new)`` positionally, or a fact dict in
    the prompt's place (or as ``fact=``)."""
    if isinstance(prompt, dict):
        fact, prompt = prompt, None
    if fact is not None:
        if any(v is not None for v in (prompt, subject, target, target_new)):
            raise InputError("Give a fact dict or prompt/subject/target, not both.")
        return fact
    return {"prompt": prompt, "subject": subject, "target_true": target, "target_new": target_new}


@dataclass
class LocalizationSet:
    """Many facts' localisations: does the tracing effect at a layer predict the edit's success there?"""

    results: list[Localization]

    def rows(self) -> list[dict]:
        """One row per (fact, edited layer): the trace effects and the edit scores."""
        return [{"subject": r.fact["subject"], "layer": layer,
                 **{k: float(r.measures[k][layer]) for k in ("trace_mlp", "trace_mlp_window", *EDIT_MEASURES)}}
                for r in self.results for layer in r.edit_layers]

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows())

    def correlation(self, trace: str = "trace_mlp_window", success: str = "edit_rewrite") -> float:
        """Pearson r between a tracing effect and an edit score over every (fact, layer)."""
        x, y = self._xy(trace, success)
        return float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 and x.std() > 0 and y.std() > 0 else float("nan")

    def r2(self, trace: str = "trace_mlp_window", success: str = "edit_rewrite") -> dict[str, float]:
        """R² of the edit score explained by the layer alone (one mean per layer), and by the layer plus the
        tracing effect: Hase et al.'s test — on GPT-J the trace adds almost nothing."""
        rows = [r for r in self.rows() if np.isfinite(r[trace]) and np.isfinite(r[success])]
        if len(rows) < 3:
            raise InputError("Too few (fact, layer) pairs with an edit to fit: edit more layers or facts.")
        layers = sorted({r["layer"] for r in rows})
        onehot = np.array([[r["layer"] == layer for layer in layers] for r in rows], dtype=float)
        y = np.array([r[success] for r in rows])
        with_trace = np.column_stack([onehot, [r[trace] for r in rows]])
        return {"layer": _r2(onehot, y), "layer + trace": _r2(with_trace, y), "trace": _r2(
            np.column_stack([np.ones(len(rows)), [r[trace] for r in rows]]), y)}

    def _xy(self, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
        rows = [r for r in self.rows() if np.isfinite(r[a]) and np.isfinite(r[b])]
        return np.array([r[a] for r in rows]), np.array([r[b] for r in rows])

    def figure(self, trace: str = "trace_mlp_window", success: str = "edit_rewrite"):
        import plotly.graph_objects as go

        from ..analysis.figure_layout import sized, title

        rows = self.rows()
        fig = go.Figure(go.Scatter(x=[r[trace] for r in rows], y=[r[success] for r in rows], mode="markers",
                                   marker={"color": [r["layer"] for r in rows], "colorscale": "Viridis",
                                           "showscale": True, "colorbar": {"title": {"text": "layer"}}},
                                   text=[f"{r['subject']} · layer {r['layer']}" for r in rows],
                                   hovertemplate="%{text}<br>trace %{x:.3f}<br>edit %{y:.3f}<extra></extra>"))
        r2 = self.r2(trace, success)
        fig.update_layout(title=title("Does tracing predict where editing works?",
                                      f"R² layer {r2['layer']:.2f} · layer + trace {r2['layer + trace']:.2f} · "
                                      f"trace alone {r2['trace']:.2f} ({len(self.results)} facts)"),
                          xaxis_title=MEASURES[trace], yaxis_title=MEASURES[success])
        return sized(fig, 320, lines=2)


def localize_many(lm: LM, facts, *, progress=True, **kwargs) -> LocalizationSet:
    """:func:`localize` for each fact (dicts like the dev facts); ``kwargs`` as there (``edit_layers``...)."""
    facts = list(facts or [])
    if not facts:
        raise InputError("No facts given: pass dicts like fw.load_facts()[:5].")

    from ..sharded.jobs import for_each
    from .stats import DEFAULT_TOKENS, for_workers

    layers = kwargs.get("edit_layers")
    stats = for_workers(lm, range(lm.n_layers) if layers is None else layers, kwargs.get("corpus"),
                        kwargs.get("tokens") or DEFAULT_TOKENS, progress)
    return LocalizationSet(for_each(lm, _localize_fact, facts, (kwargs,), "localising", progress, stats,
                                    restores=True))


def _localize_fact(lm: LM, fact: dict, kwargs: dict) -> Localization:
    return localize(lm, fact, **kwargs)


def _r2(X: np.ndarray, y: np.ndarray) -> float:
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    residual = y - X @ coef
    total = ((y - y.mean()) ** 2).sum()
    return float(1 - (residual ** 2).sum() / total) if total > 0 else float("nan")


def lens_and_values(lm: LM, prompt: str, target: str, k: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per layer at the last position: the lens's log10 rank of ``target`` before the MLP minus after it, the
    MLP's direct contribution to the target logit, and the fraction of the ``k`` strongest neurons whose signed
    value ranks ``target`` in its top ``k`` (on small models often 0: single values rarely name the object)."""
    run = lm.run(prompt, capture=("neurons", "mlp_out", "resid_post"))
    tid = lm.target_ids(target)[0]
    lens = logit_lens(lm, run, target=tid)
    gain = (torch.log10(lens.mid.ranks[:, -1].double() + 1) - torch.log10(lens.post.ranks[:, -1].double() + 1)).numpy()
    agreement = np.zeros(lm.n_layers)
    for layer in range(lm.n_layers):
        acts = run.activations[layer, -1]
        idx = acts.abs().topk(min(k, lm.d_mlp)).indices
        signed = value_logits(lm, layer, idx).cpu() * acts[idx].sign()[:, None]
        agreement[layer] = float((signed.topk(k, dim=-1).indices == tid).any(-1).double().mean())
    push = layer_contributions(lm, run, tid)[:, -1].double().numpy()
    return gain, push, agreement


def edit_success(lm: LM, fact: dict, layer: int, before: dict, edit_kwargs: dict) -> dict[str, float]:
    """ROME's scores and the rewrite score of an edit at ``layer``, undone at once (weights untouched)."""
    steps = edit_success_steps(lm, fact, layer, before, edit_kwargs)
    return run_steps(steps)


def edit_success_steps(lm: LM, fact: dict, layer: int, before: dict, edit_kwargs: dict):
    """:func:`edit_success` as the edit's steps (:func:`~ffn_widgets.editing.rome.rome_steps`), returning the
    scores. Every step comes before the edit is written, so closing it early writes nothing."""
    with lm.edits.temporary():
        yield from rome_steps(lm, fact["prompt"], fact["subject"], as_target(fact["target_new"]), layer,
                              **edit_kwargs)
        after = fact_scores(lm, fact, before=before)
    p0, p1 = before["prompt"]["p_new"], after["prompt"]["p_new"]
    nan = float("nan")
    return {"edit_efficacy": after["efficacy"], "edit_paraphrase": nan if after["paraphrase"] is None else after["paraphrase"],
            "edit_neighbourhood": nan if after["neighbourhood"] is None else after["neighbourhood"],
            "edit_rewrite": (p1 - p0) / max(1e-12, 1 - p0)}


def checked_request(lm: LM, fact, edit_layers: Sequence[int] | None = None) -> tuple[dict, list[int]]:
    """The fact and the edit layers, checked before anything runs (clear errors, nothing computed)."""
    fact = _checked(lm, fact)
    try:
        wanted = range(lm.n_layers) if edit_layers is None else [int(x) for x in edit_layers]
    except (TypeError, ValueError):
        raise InputError(f"edit_layers must be whole layer numbers, got {edit_layers!r}.") from None
    layers = sorted({lm.check_layer(x) for x in wanted})
    if layers and not fact.get("target_new"):
        raise InputError("Edit success needs a counterfactual object: give target_new, or edit_layers=[].")
    return fact, layers


def _checked(lm: LM, fact) -> dict:
    if not isinstance(fact, dict):
        raise InputError(f"Give a fact as a dict (see fw.load_facts()), got {type(fact).__name__}.")
    for key in ("prompt", "subject", "target_true"):
        if not isinstance(fact.get(key), str) or not fact[key].strip():
            name = "target" if key == "target_true" else key
            raise InputError(f"The fact needs a non-empty {name!r}, got {fact.get(key)!r}.")
    lm.encode(fact["prompt"])
    lm.find_subject(fact["prompt"], fact["subject"])
    return dict(fact)


def _event(loc: Localization, stage: str, message: str, fraction: float, updated: bool = True) -> dict:
    return {"stage": stage, "message": message, "fraction": fraction, "result": loc, "updated": updated}
