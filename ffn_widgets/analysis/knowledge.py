"""Knowledge neurons (Dai et al., ACL 2022): which MLP neurons carry a fact, found by integrated gradients.

Neuron i of layer l scores ``m̂_i · (1/m) Σ_{k=1..m} ∂p(y)/∂m_i`` evaluated at ``m = (k/m)·m̂``, where m̂ is
the layer's clean activation at the prompt's last position and only that layer is scaled (the paper's
per-layer path). Neurons above ``threshold × max score`` of a prompt are candidates; those shared by at
least ``share`` of the prompts (the prompt plus paraphrases) are the fact's knowledge neurons.

Efficiency, with the same numbers as the straightforward loop (per layer, ``steps`` scaled copies, full
forward and backward):

- scaling the last position leaves every earlier position untouched (causal attention), so each scaled
  copy is a single-token step on the clean prompt's key/value cache;
- the rows of many layers run as one batch ``(layer, α)``, starting at the group's lowest layer from the
  cached block input (``start_at``); row (l, α) has its activation replaced only at layer l;
- one backward per batch gives every row's gradient.

    kn = fw.knowledge_neurons(lm, "The Eiffel Tower is located in the city of", " Paris",
                              paraphrases=["The Eiffel Tower can be found in the city of"])
    for layer, neuron, score in kn: ...
    kn.figure()
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..model import LM, InputError, Intervention, hooked, kv, start_at
from ..model.recent import remember
from ..model.watch import same_model

ROWS_PER_BATCH = 120  # (layer, α) rows per forward/backward: 6 layers of 20 steps


@dataclass
class KnowledgeNeurons:
    """Refined knowledge neurons of one fact; iterate for ``(layer, neuron, score)``, highest score first.

    ``scores`` is ``[n_prompts, n_layers, d_mlp]`` (prompt 0 is the main prompt); ``score`` of a kept
    neuron is its mean over the prompts.
    """

    prompts: list[str]
    target: str
    target_id: int
    scores: torch.Tensor
    neurons: list[tuple[int, int, float]]
    threshold: float
    share: float
    steps: int
    base_probs: list[float] = field(default_factory=list)
    weights_version: int = -1  # the model state it was computed on (``LM.state_version``)

    @property
    def prompt(self) -> str:
        return self.prompts[0]

    def __iter__(self):
        return iter(self.neurons)

    def __len__(self):
        return len(self.neurons)

    def candidates(self, prompt_index: int = 0) -> torch.Tensor:
        """``[n, 2]`` (layer, neuron) above the adaptive threshold for one prompt, before refinement."""
        s = self.scores[prompt_index]
        return (s > self.threshold * s.max()).nonzero()

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.neurons, columns=["layer", "neuron", "score"])

    def figure(self):
        """Layers × neurons, sparse: the main prompt's candidates (grey) and the kept neurons (colour)."""
        import plotly.graph_objects as go

        from .figure_layout import clip, integer_ticks, sized, title

        cand = self.candidates(0)
        s = self.scores[0]
        fig = go.Figure(go.Scatter(
            x=cand[:, 1].tolist(), y=cand[:, 0].tolist(), mode="markers", name="candidates (main prompt)",
            marker={"color": "lightgrey", "size": 7}, text=[f"{float(s[l, i]):.4f}" for l, i in cand.tolist()],
            hovertemplate="L%{y} N%{x}<br>score %{text}<extra></extra>"))
        if self.neurons:
            layers, neurons, scores = zip(*self.neurons)
            fig.add_trace(go.Scatter(
                x=list(neurons), y=list(layers), mode="markers", name="knowledge neurons",
                # the colour bar sits in the lower part of the right margin, the legend above it
                # reds that all stand out on white: the weakest kept neuron must not vanish (plotly's "Reds" starts white)
                marker={"color": list(scores), "colorscale": VISIBLE_REDS, "size": 12, "showscale": True,
                        "colorbar": {"title": {"text": "mean score", "side": "right"}, "y": 0, "yanchor": "bottom",
                                     "len": 0.6, "thickness": 12}, "line": {"width": 1, "color": "black"}},
                hovertemplate="L%{y} N%{x}<br>mean score %{marker.color:.4f}<extra></extra>"))
        n_layers, d_mlp = self.scores.shape[1:]
        fig.update_layout(title=title(f"Knowledge neurons for {clip(self.target, 30)!r} "
                                      f"({len(self.prompts)} prompts)"),
                          legend={"y": 1, "yanchor": "top"}, xaxis={"title": "neuron", "range": [-1, d_mlp]},
                          yaxis={"title": "layer", "range": [-0.5, n_layers - 0.5], **integer_ticks(n_layers)})
        return sized(fig, 12 * n_layers, min_plot_px=300)


VISIBLE_REDS = [[0.0, "#ef5a3c"], [0.5, "#d42a20"], [1.0, "#67000d"]]


def riemann_alphas(steps: int) -> torch.Tensor:
    """The scales of the integration path: k/steps for k = 1..steps (the paper's right Riemann sum)."""
    return torch.arange(1, steps + 1, dtype=torch.float32) / steps


def attribution(lm: LM, prompt: str, target: str | int, steps: int = 20, layers: Sequence[int] | None = None,
                rows_per_batch: int = ROWS_PER_BATCH) -> torch.Tensor:
    """Integrated-gradients scores ``[n_layers, d_mlp]`` of every neuron at the prompt's last position
    for p(first token of ``target``). Layers not asked for stay 0."""
    if not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}.")
    layers = sorted({lm.check_layer(l) for l in range(lm.n_layers)} if layers is None else
                    {lm.check_layer(l) for l in layers})
    ids = lm.encode(prompt)[None]
    target_id = lm.target_ids(lm.continuation(prompt, target))[0]
    clean = _clean_last(lm, ids)
    alphas = riemann_alphas(steps).to(lm.device)
    scores = torch.zeros(lm.n_layers, lm.d_mlp)
    per_group = max(1, rows_per_batch // steps)
    for g in range(0, len(layers), per_group):
        group = layers[g:g + per_group]
        grads = _group_gradients(lm, ids, target_id, clean, group, alphas)
        for layer, grad in zip(group, grads):
            scores[layer] = (clean["neurons", layer] * grad.mean(0)).float().cpu()
    return scores


def _clean_last(lm: LM, ids: torch.Tensor) -> dict:
    """The last position's clean block inputs and activations, plus the prefix's key/value cache."""
    layers = range(lm.n_layers)
    prefix = None
    with torch.no_grad():
        if ids.shape[1] > 1:
            prefix = kv.cache_of(kv.forward(lm.model, ids[:, :-1]))
        with hooked(lm, [(s, l) for s in ("resid_pre", "neurons") for l in layers]) as got:
            kv.forward(lm.model, ids[:, -1:], kv.shared(prefix, rows=1))
    out = {key: t[0, -1] for key, t in got.items()}  # [d]
    out["prefix"] = prefix
    return out


def _group_gradients(lm, ids, target_id, clean, group, alphas) -> list[torch.Tensor]:
    """∂p(y)/∂m for rows (layer, α) of the layers in ``group``; each is ``[steps, d_mlp]``."""
    steps, start = len(alphas), group[0]
    rows = steps * len(group)
    leaves, edits = [], []
    for j, layer in enumerate(group):
        m = clean["neurons", layer].float()  # where this layer computes (split models: its own device)
        leaf = (alphas.to(m.device)[:, None] * m[None]).requires_grad_(True)
        leaves.append(leaf)
        edits.append(Intervention("neurons", layer, "fn", _replace_rows(j * steps, leaf)))
    hidden = clean["resid_pre", start].expand(rows, 1, -1)
    with torch.enable_grad(), start_at(lm, start, hidden), hooked(lm, (), edits):
        cache = kv.shared(clean["prefix"], rows=rows)
        logits = kv.last_logits(lm.model, ids[:, -1:].expand(rows, 1), cache)[:, -1]
        p = torch.softmax(logits, -1)[:, target_id]
        return list(torch.autograd.grad(p.sum(), leaves))


def _replace_rows(first: int, leaf: torch.Tensor):
    def replace(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[first:first + len(leaf), -1] = leaf.to(x.dtype)
        return x
    return replace


def knowledge_neurons(lm: LM, prompt: str, target: str | int, paraphrases: Sequence[str] = (), steps: int = 20,
                      threshold: float = 0.2, share: float = 0.5, layers: Sequence[int] | None = None
                      ) -> KnowledgeNeurons:
    """Attribute p(target) to every neuron for the prompt and each paraphrase, threshold at
    ``threshold × max`` per prompt, and keep neurons found in at least ``share`` of the prompts."""
    if not 0 < threshold < 1:
        raise InputError(f"threshold is a fraction of the maximum score in (0, 1), got {threshold!r}.")
    if not 0 < share <= 1:
        raise InputError(f"share is the fraction of prompts a neuron must appear in, in (0, 1], got {share!r}.")
    if isinstance(paraphrases, str):
        raise InputError("paraphrases is a list of prompts, not one string: use [\"...\"].")
    prompts = [prompt, *paraphrases]
    target = lm.continuation(prompt, target)
    target_id, version = lm.target_ids(target)[0], lm.state_version
    scores = []
    for p in prompts:
        scores.append(attribution(lm, p, target_id, steps, layers))
        same_model(lm, version, "The knowledge-neuron attribution")  # no prompts attributed on two models
    base = [float(torch.softmax(lm.logits(p)[-1], -1)[target_id]) for p in prompts]
    kn = from_scores(prompts, lm.token_strings([target_id])[0] if isinstance(target, int) else target, target_id,
                     torch.stack(scores), steps, threshold, share, base)
    kn.weights_version = version
    remember(lm, "knowledge", kn)  # neuron cards on this prompt show each neuron's score
    return kn


def from_scores(prompts: list[str], target: str, target_id: int, scores: torch.Tensor, steps: int,
                threshold: float = 0.2, share: float = 0.5, base_probs=()) -> KnowledgeNeurons:
    """The refinement of :func:`knowledge_neurons` applied to attributions ``[n_prompts, n_layers, d_mlp]``
    already computed (the localisation screen's, say)."""
    maxima = scores.flatten(1).max(1).values.clamp_min(0)[:, None, None]
    counts = (scores > threshold * maxima).sum(0)
    needed = max(1, math.ceil(share * len(prompts) - 1e-9))
    kept = (counts >= needed).nonzero().tolist()
    mean = scores.mean(0)
    neurons = sorted(((l, i, float(mean[l, i])) for l, i in kept), key=lambda t: -t[2])
    return KnowledgeNeurons(list(prompts), target, target_id, scores, neurons, threshold, share, steps,
                            list(base_probs))


# ---- the suppress / amplify experiment -------------------------------------------------------

@dataclass
class KnowledgeExperiment:
    """Per fact: knowledge neurons found, and p(correct) with them suppressed (×0) or amplified (×2),
    next to the same number of random neurons from the same layers. Probabilities are means over the
    fact's prompts (prompt and paraphrases); relative changes are ``(p' − p) / p``. ``found`` keeps each
    fact's :class:`KnowledgeNeurons` (its attributions), so :meth:`remeasure` need not compute them again."""

    rows: list[dict]
    positions: str
    dropped: list[tuple[int, int]] = field(default_factory=list)  # shared by too many facts (``drop_shared``)
    facts: list[dict] = field(default_factory=list, repr=False)
    found: list[KnowledgeNeurons] = field(default_factory=list, repr=False)  # per fact: attributions, neurons
    seed: int = 0
    weights_version: int = -1  # the model state it was computed on (``LM.state_version``)

    def remeasure(self, lm: LM, drop_shared: float | None = None, positions: str | None = None,
                  seed: int | None = None) -> "KnowledgeExperiment":
        """The same facts and knowledge neurons measured again, e.g. ``drop_shared=0.2`` or ``positions="all"``:
        the attributions (the costly part, seconds per fact) are reused, only the ×0 / ×2 passes rerun.
        ``positions`` and ``seed`` default to this experiment's; ``drop_shared=None`` drops nothing."""
        if not self.found:
            raise InputError("This experiment holds no attributions to reuse: run fw.knowledge_experiment again.")
        if tuple(self.found[0].scores.shape[1:]) != (lm.n_layers, lm.d_mlp):
            raise InputError(f"The attributions are [layer, neuron] {tuple(self.found[0].scores.shape[1:])}, but "
                             f"this model has {(lm.n_layers, lm.d_mlp)}: remeasure on the model they came from.")
        positions = self.positions if positions is None else positions
        _check_measurement(positions, drop_shared)
        return _measure(lm, self.facts, self.found, positions, self.seed if seed is None else seed, drop_shared)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def summary(self) -> dict:
        """Mean relative change of p(correct) over facts that have knowledge neurons (as the paper reports
        it), and the medians, which a few facts with a tiny p(correct) cannot dominate."""
        import statistics

        used = [r for r in self.rows if r["n_neurons"]]
        mean = lambda key: sum(r[key] for r in used) / len(used) if used else float("nan")  # noqa: E731
        median = lambda key: statistics.median(r[key] for r in used) if used else float("nan")  # noqa: E731
        out = {"facts": len(self.rows), "facts_with_neurons": len(used), "mean_neurons": mean("n_neurons"),
               "dropped_shared": len(self.dropped)}
        out.update({c: mean(f"change_{c}") for c in _CONDITIONS})
        out.update({f"median_{c}": median(f"change_{c}") for c in _CONDITIONS})
        return out

    def figure(self):
        import plotly.graph_objects as go

        from .figure_layout import sized, title

        s = self.summary()
        fig = go.Figure([
            go.Bar(name="knowledge neurons", x=["suppress ×0", "amplify ×2"],
                   y=[100 * s["suppress"], 100 * s["amplify"]], marker_color="#d62728"),
            go.Bar(name="random neurons, same layers", x=["suppress ×0", "amplify ×2"],
                   y=[100 * s["random_suppress"], 100 * s["random_amplify"]], marker_color="#7f7f7f")])
        fig.update_layout(barmode="group", yaxis_title="mean relative change<br>of p(correct) (%)",
                          title=title(f"Knowledge neurons over {s['facts_with_neurons']} facts "
                                      f"({s['mean_neurons']:.1f} neurons per fact)"))
        return sized(fig, 300)


_CONDITIONS = ("suppress", "amplify", "random_suppress", "random_amplify")


def knowledge_experiment(lm: LM, facts: Sequence[dict], steps: int = 20, threshold: float = 0.2,
                         share: float = 0.5, positions: str = "last", seed: int = 0,
                         drop_shared: float | None = None, progress: bool = False) -> KnowledgeExperiment:
    """For each fact (``prompt``, ``target_true``, ``paraphrases``) find its knowledge neurons, then measure
    p(correct) with them ×0 and ×2 and with as many random neurons from the same layers ×0 and ×2.

    ``positions``: ``"last"`` scales the neurons at the prompt's last position (where they were attributed,
    as in the paper), ``"all"`` at every position.
    ``drop_shared``: leave out neurons found for more than this fraction of the facts (and for more than
    one fact), e.g. ``0.2``: neurons every prompt needs, whatever the fact (in GPT-style models a few
    layer-0 neurons), so that what is measured is what is specific to each fact. See ``.dropped``.
    To compare both, ``experiment.remeasure(lm, drop_shared=0.2)`` reuses this run's attributions.
    """
    _check_measurement(positions, drop_shared)
    if not facts:
        raise InputError("facts is empty: pass a list of facts such as fw.load_facts().")
    from ..sharded.jobs import for_each

    found = for_each(lm, _fact_neurons, list(facts), (steps, threshold, share), "knowledge neurons", progress)
    return _measure(lm, list(facts), found, positions, seed, drop_shared)


def _fact_neurons(lm: LM, fact: dict, steps: int, threshold: float, share: float) -> KnowledgeNeurons:
    from ..data.facts import target as with_space

    return knowledge_neurons(lm, fact["prompt"], with_space(fact["target_true"]), fact.get("paraphrases", ()),
                             steps, threshold, share)


def _check_measurement(positions: str, drop_shared: float | None) -> None:
    if positions not in ("last", "all"):
        raise InputError(f"positions must be 'last' or 'all', got {positions!r}.")
    if drop_shared is not None and not 0 < drop_shared < 1:
        raise InputError(f"drop_shared is a fraction of the facts in (0, 1), got {drop_shared!r}.")


def _measure(lm: LM, facts: list[dict], found: list[KnowledgeNeurons], positions: str, seed: int,
             drop_shared: float | None) -> KnowledgeExperiment:
    """The ×0 / ×2 measurements for knowledge neurons already found (one batch of five rows per prompt)."""
    version = lm.state_version
    for kn in found:  # attributions of other weights measured on these would mix two models
        same_model(lm, kn.weights_version, "Measuring these knowledge neurons")
    dropped = set()
    if drop_shared is not None:
        per_fact = Counter(n for kn in found for n in {(layer, neuron) for layer, neuron, _ in kn})
        dropped = {n for n, c in per_fact.items() if c > max(1, drop_shared * len(found))}
    rows = []
    for n, (fact, kn) in enumerate(zip(facts, found)):
        chosen = [(layer, neuron) for layer, neuron, _ in kn if (layer, neuron) not in dropped]
        random = _random_same_layers(lm, chosen, torch.Generator().manual_seed(seed + n))
        row = {"subject": fact.get("subject", ""), "prompt": fact["prompt"], "target": kn.target,
               "n_neurons": len(chosen), "neurons": chosen}
        probs = {c: [] for c in ("base", *_CONDITIONS)}
        for prompt in kn.prompts:
            got = _probabilities(lm, prompt, kn.target_id, chosen, random, positions)
            for c, p in got.items():
                probs[c].append(p)
        for c, ps in probs.items():
            row[f"p_{c}"] = sum(ps) / len(ps)
        for c in _CONDITIONS:
            row[f"change_{c}"] = sum((p - b) / b for p, b in zip(probs[c], probs["base"])) / len(probs["base"])
        rows.append(row)
    same_model(lm, version, "The knowledge-neuron experiment")
    return KnowledgeExperiment(rows, positions, sorted(dropped), facts, found, seed, version)


def _random_same_layers(lm: LM, chosen, generator) -> list[tuple[int, int]]:
    """As many random neurons per layer as ``chosen`` has there, none of them chosen."""
    out = []
    for layer in sorted({l for l, _ in chosen}):
        taken = {i for l, i in chosen if l == layer}
        pool = torch.tensor([i for i in range(lm.d_mlp) if i not in taken])
        pick = pool[torch.randperm(len(pool), generator=generator)[:len(taken)]]
        out += [(layer, int(i)) for i in pick]
    return out


def _probabilities(lm: LM, prompt: str, target_id: int, chosen, random, positions: str) -> dict[str, float]:
    """p(target) for the clean model and the four conditions, as one batch of five rows."""
    ids = lm.encode(prompt)[None].expand(5, -1)
    pos = [-1] if positions == "last" else None
    edits = []
    for row, (neurons, scale) in enumerate([(chosen, 0.0), (chosen, 2.0), (random, 0.0), (random, 2.0)], start=1):
        for layer in sorted({l for l, _ in neurons}):
            index = [i for l, i in neurons if l == layer]
            edits.append(Intervention("neurons", layer, "scale", scale, index=index, positions=pos, rows=[row]))
    with torch.no_grad(), hooked(lm, (), edits):
        p = torch.softmax(lm.forward(ids, last_only=True)[:, -1], -1)[:, target_id].tolist()
    return dict(zip(("base", *_CONDITIONS), p))
