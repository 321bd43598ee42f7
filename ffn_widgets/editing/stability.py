"""What happens when a model is edited again and again? Sequential editing, measured after every step.

    run = fw.edit_stability(lm, method="r-rome", steps=50)    # or "rome", "memit", "alphaedit" (batch=...)
    run.rows[-1], run.collapsed_at, run.summary, run.to_frame(), run.figure()
    for row in fw.stability_steps(lm, steps=50): ...          # one row per step, as the edits land

Each step edits ``batch`` facts (ROME / r-ROME: one after another, one log entry each; MEMIT / AlphaEdit:
one call, one entry), then measures, with every edit of the run still in place:

- ``retention``: of the edits made in *earlier* steps, the fraction whose efficacy still holds
  (P(new) > P(true) on the fact's prompt); ``efficacy``: the same for this step's facts. A fact edited
  again (a later round of generated facts) counts once, with its latest target: an earlier target of the
  same prompt is not expected to survive.
- ``paraphrase``: PS over all current edits; ``neighbourhood``: NS over all current edits' neighbours
  (as :func:`.metrics.fact_scores`: [P(own object) > P(new)], a neighbour whose own object is the new one
  left out; a neighbour prompt that is itself an edited prompt of the run is scored against the object
  it was edited to, so NS stays defined when a relation's subjects are all edited).
- ``kl``: the mean (and ``kl_max``) over ``n_unrelated`` fixed prompts of KL(original ‖ now) of the
  next-token distribution, in nats. The prompts are general sentences about nothing in the facts
  (:data:`UNRELATED_PROMPTS`, or ``unrelated=``): the dev facts' own prompts and neighbours are all
  edited or scored as neighbours in a long run. "Original" is the model without any edit of its log,
  measured once at the start (``lm.edits.original()``); the run's edits are never undone while it runs.
- ``norm_ratio``: the largest ‖W_now‖_F / ‖W_loaded‖_F over the down projections the run edited
  (``norm_ratios`` per matrix; originals from ``lm.edits.originals``).
- ``fluency`` (``fluency_tokens`` > 0; off by default, it is slow): ROME's n-gram entropy of
  ``fluency_tokens`` sampled tokens after the first 4 unrelated prompts (``fluency_before`` at the start).

The probabilities of a step come from one batched :func:`.metrics.pair_probs` call over the distinct
(prompt, object) pairs of the current edits (shared neighbour prompts scored once), so a step costs at
most linearly more as edits accumulate; the edit itself (ROME's optimisation) costs the same each step.

**Collapse** (Gupta et al. 2024, "Model editing at scale leads to gradual and catastrophic forgetting",
arXiv 2401.07453): sequential ROME first forgets gradually, then one *disabling edit* breaks the model in a
single step: the edited matrix's norm jumps, earlier edits are lost at once and the model's text
degenerates. ``collapsed_at`` is the first step where any of three signs of that crosses its threshold
(:class:`Collapse`): the unrelated prompts' mean KL > 1 nat (the model's predictions about unrelated text
moved: its general ability is gone), the norm ratio > 10 (the disabling edit's signature: a normal edit
changes the norm by a few percent), or retention < 50% of at least 4 earlier edits (catastrophic
forgetting). ``stop_on_collapse=True`` ends the run after that step.

**The weights afterwards**: the run is wrapped in ``lm.edits.temporary()``: on every exit (done, closed
generator, error, Ctrl-C) the run's edits are removed and the model is left as it was found, bit for bit,
edits made before the run included. ``keep_edits=True`` leaves them in ``lm.edits``. Close a generator of
:func:`stability_steps` you stop early (``gen.close()``), or its edits stay until it is garbage-collected.

**Facts for long runs** (:func:`stability_facts`): round 0 is the given facts with their ``target_new``;
round r ≥ 1 edits every fact again, to the r-th object of its relation's candidates: all objects
(``target_true`` and ``target_new``) of the given facts of that relation, minus the fact's true object,
with its ``target_new`` first and the rest in an order seeded by ``seed`` and the subject (cycling when a
relation has few objects). Never the true object, always the same facts for the same seed.
"""
from __future__ import annotations

import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

from . import stability_checkpoint as checkpoints
from ..data.facts import edit_facts
from ..data.facts import target as object_target
from ..model import LM, InputError
from ..model.long_runs import progress_bar
from .log import oriented_weight
from .metrics import generate, kl, next_token_dists, ngram_entropy, pair_probs
from .rome import AlreadyAnswered, rome_steps

METHODS = ("r-rome", "rome", "memit", "alphaedit")
UNRELATED_PROMPTS = [
    "The weather this morning was", "My favourite thing to cook on weekends is", "The best way to learn to swim is",
    "She opened the window and", "The meeting was moved to", "In the garden, the children found",
    "The recipe calls for two cups of", "He put on his coat because", "The train was late, so we",
    "A good night's sleep helps you", "The cat jumped onto the", "After the concert, the band",
    "The price of the tickets was", "To fix a flat tyre, you first", "The library closes at",
    "On the table there was a", "The teacher asked the students to", "Every morning I drink a cup of",
    "The movie was so long that", "When it started to rain, they", "The box was too heavy to",
    "Her favourite colour is", "The doctor told him to", "We walked along the river until",
]


@dataclass(frozen=True)
class Collapse:
    """Thresholds of the collapse test (see the module docstring); ``None`` turns one sign off."""

    kl: float | None = 1.0  # nats, mean over the unrelated prompts
    norm_ratio: float | None = 10.0  # largest ‖W‖ now / as loaded
    retention: float | None = 0.5  # fraction of earlier edits still holding ...
    min_earlier: int = 4  # ... once there are at least this many

    def reason(self, row: dict) -> str | None:
        if self.kl is not None and row["kl"] > self.kl:
            return f"unrelated KL {row['kl']:.3g} > {self.kl} nat"
        if self.norm_ratio is not None and row["norm_ratio"] > self.norm_ratio:
            return f"norm ratio {row['norm_ratio']:.3g} > {self.norm_ratio}"
        if (self.retention is not None and row["retention"] is not None and row["earlier"] >= self.min_earlier
                and row["retention"] < self.retention):
            return f"retention {row['retention']:.0%} < {self.retention:.0%}"
        return None


@dataclass
class StabilityRun:
    """One row per step (``rows``), the first collapsed step (``collapsed_at``, why: ``collapse_reason``)."""

    rows: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    @property
    def collapsed_at(self) -> int | None:
        return next((r["step"] for r in self.rows if r["collapsed"]), None)

    @property
    def collapse_reason(self) -> str | None:
        return next((r["collapse_reason"] for r in self.rows if r["collapsed"]), None)

    @property
    def summary(self) -> dict:
        last = self.rows[-1] if self.rows else {}
        secs = [r["seconds_edit"] + r["seconds_eval"] for r in self.rows]
        return {"method": self.settings.get("method"), "steps": len(self.rows), "edits": last.get("edits", 0),
                "collapsed_at": self.collapsed_at, "collapse_reason": self.collapse_reason,
                **{k: last.get(k) for k in ("retention", "efficacy", "paraphrase", "neighbourhood", "kl",
                                            "norm_ratio", "fluency")},
                "seconds_per_edit": sum(secs) / last["edits"] if secs and last.get("edits") else None}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{k: v for k, v in r.items() if k != "norm_ratios"} for r in self.rows])

    def save(self, path) -> None:
        """JSON lines (the settings, then one row per line), written atomically."""
        import json
        import os
        from pathlib import Path

        settings = {k: (v.__dict__ if isinstance(v, Collapse) else v) for k, v in self.settings.items()}
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("\n".join(json.dumps(x) for x in [settings, *self.rows]) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path) -> "StabilityRun":
        """A run :meth:`save` or ``experiments/stability_curves.py`` wrote (finished or cut short)."""
        import json
        from pathlib import Path

        lines = [json.loads(s) for s in Path(path).read_text().splitlines() if s.strip()]
        if not lines:
            raise InputError(f"{path} holds no stability run.")
        return cls(rows=lines[1:], settings=lines[0])

    def figure(self):
        """Retention, paraphrase and neighbourhood scores, the unrelated KL and the norm growth against the
        number of edits; the collapse marked."""
        from plotly.subplots import make_subplots

        x = [r["edits"] for r in self.rows]
        fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                            subplot_titles=("scores", "KL on unrelated prompts (nats)", "‖W‖ now / as loaded"))
        for key in ("retention", "efficacy", "paraphrase", "neighbourhood"):
            fig.add_scatter(x=x, y=[r[key] for r in self.rows], name=key, mode="lines+markers", row=1, col=1)
        fig.add_scatter(x=x, y=[r["kl"] for r in self.rows], name="mean KL", mode="lines+markers", row=2, col=1)
        fig.add_scatter(x=x, y=[r["kl_max"] for r in self.rows], name="max KL", mode="lines", line_dash="dot",
                        row=2, col=1)
        fig.add_scatter(x=x, y=[r["norm_ratio"] for r in self.rows], name="norm ratio", mode="lines+markers",
                        row=3, col=1)
        if self.collapsed_at is not None:
            at = next(r["edits"] for r in self.rows if r["collapsed"])
            fig.add_vline(x=at, line_dash="dash", line_color="firebrick")
            fig.add_annotation(x=at, y=1.05, yref="paper", text=f"collapse: {self.collapse_reason}",
                               showarrow=False, font_color="firebrick")
        fig.update_yaxes(range=[-0.05, 1.05], row=1, col=1)
        fig.update_xaxes(title_text="edits", row=3, col=1)
        fig.update_layout(template="plotly_white", height=620, margin=dict(l=60, r=20, t=60, b=45),
                          title=f"Sequential editing: {self.settings.get('method', '')}, "
                                f"{self.settings.get('batch', 1)} fact(s) per step"
                                + (f"<br><sub>measured with the {self.settings['formulas']}</sub>"
                                   if self.settings.get("formulas") else ""))
        return fig

    def __repr__(self):
        s = self.summary
        pct = lambda v: "–" if v is None else f"{100 * v:.0f}%"  # noqa: E731
        num = lambda v: "–" if v is None else f"{v:.3g}"  # noqa: E731
        state = f"collapsed at step {s['collapsed_at']} ({s['collapse_reason']})" if s["collapsed_at"] is not None \
            else "no collapse"
        return (f"StabilityRun({s['method']}, {s['steps']} steps, {s['edits']} edits, {state}; last: retention "
                f"{pct(s['retention'])}, PS {pct(s['paraphrase'])}, NS {pct(s['neighbourhood'])}, KL {num(s['kl'])}, "
                f"norm ×{num(s['norm_ratio'])})")


def stability_facts(facts, n: int, seed: int = 0) -> list[dict]:
    """``n`` facts to edit in order: the given ones, then generated rounds (see the module docstring).
    Each is a copy of its base fact with ``target_new`` set and ``round`` added."""
    facts = edit_facts(facts)
    objects: dict = {}
    for f in facts:
        objects.setdefault(f.get("relation"), set()).update({_obj(f["target_true"]), _obj(f["target_new"])})
    out = []
    for i in range(n):
        r, f = divmod(i, len(facts))
        f = facts[f]
        true, first = _obj(f["target_true"]), _obj(f["target_new"])
        rest = sorted(objects[f.get("relation")] - {true, first})
        random.Random(f"{seed}|{f.get('relation')}|{f['subject']}").shuffle(rest)
        candidates = [first] + rest
        out.append({**f, "target_new": candidates[r % len(candidates)], "round": r})
    return out


def stability_steps(lm: LM, facts=None, method: str = "r-rome", batch: int = 1, steps: int | None = None, *,
                    layer=None, seed: int = 0, stop_on_collapse: bool = False, n_unrelated: int = 20,
                    unrelated: list[str] | None = None, fluency_tokens: int = 0, collapse: Collapse = Collapse(),
                    keep_edits: bool = False, every: int = 1, events: bool = False, checkpoint=None, **edit_kwargs):
    """:func:`edit_stability` as a generator: yields each step's row as soon as it is measured (the run's
    edits in place meanwhile); ``every=k`` measures after every k-th step only (and the last), for long runs
    whose edits cost less than their measurements; ``events=True`` also yields, between rows, each edit's
    progress as ``{"progress": dict, "step", "steps"}`` (a widget's Cancel then acts within an edit);
    ``checkpoint``: a file to go on from and to write after each measured step (:mod:`.stability_checkpoint`).
    ``edit_kwargs`` go to the edit function (``corpus``, ``tokens``, ``settings``...). Arguments are checked
    here, before the first step; the run starts at the first ``next``."""
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise InputError(f"batch must be a positive integer, got {batch!r}.")
    base = edit_facts(facts)
    steps = -(-len(base) // batch) if steps is None else steps
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}.")
    if method in ("memit", "alphaedit") and batch > len({f["prompt"] for f in base}):
        raise InputError(f"batch {batch} is more than the {len(base)} distinct facts: a batch would edit one "
                         "prompt twice at once.")
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise InputError(f"every must be a positive integer, got {every!r}.")
    if not isinstance(n_unrelated, int) or n_unrelated < 1:
        raise InputError(f"n_unrelated must be a positive integer, got {n_unrelated!r}.")
    unrelated = list(unrelated or UNRELATED_PROMPTS)[:n_unrelated]
    plan = stability_facts(base, steps * batch, seed)
    key = None if checkpoint is None else checkpoints.run_key(
        plan, method, batch, steps, layer, seed, every, unrelated, fluency_tokens, collapse, edit_kwargs)
    return _run(lm, plan, method, batch, steps, layer, seed, stop_on_collapse, unrelated, fluency_tokens, collapse,
                keep_edits, every, edit_kwargs, events, checkpoint, key)


def _run(lm, plan, method, batch, steps, layer, seed, stop_on_collapse, unrelated, fluency_tokens, collapse,
         keep_edits, every, edit_kwargs, events=False, checkpoint=None, key=None):
    """The run; ``events=True`` also yields ``{"progress": the edit's progress dict, "step", "steps"}`` between
    rows (the widget's Cancel then acts within an edit)."""
    with (nullcontext() if keep_edits else lm.edits.temporary()):
        with lm.edits.original():
            before = next_token_dists(lm, unrelated)
            fluency_before = _fluency(lm, unrelated, fluency_tokens, seed)
        saved = None if checkpoint is None else checkpoints.resume(lm, checkpoint, key)
        saved = saved or {"step": -1, "current": {}, "paths": {}}
        current: dict[str, dict] = saved["current"]  # prompt -> its latest edited fact (with the edit's step)
        paths: dict[str, float] = saved["paths"]  # edited matrix -> its norm as loaded
        seconds_edit, skipped, measured = 0.0, [], saved["step"]  # summed since the last measured step; that step
        for step in range(measured + 1, steps):
            chunk = plan[step * batch:(step + 1) * batch]
            t0 = time.perf_counter()
            edits = _edit(lm, chunk, method, layer, seed, edit_kwargs)
            while True:
                try:
                    info = next(edits)
                except StopIteration as done:
                    entries, skipped_now = done.value
                    break
                if events:
                    yield {"progress": info, "step": step, "steps": steps}
            seconds_edit += time.perf_counter() - t0
            skipped += skipped_now
            for e in entries:
                for d in e.deltas:
                    if d.path not in paths:
                        original = lm.edits.originals.get(d.path)
                        paths[d.path] = float(original.double().norm()) if original is not None else float("nan")
            for f in chunk:
                current[f["prompt"]] = {**f, "step": step}
            if (step + 1) % every and step < steps - 1:
                continue
            t1 = time.perf_counter()
            row = _measure(lm, current, measured, unrelated, before, paths, fluency_tokens, seed)
            row.update(step=step, edits=step * batch + len(chunk), facts=[f"{f['subject']} → {f['target_new']}"
                                                                          for f in chunk],
                       skipped=skipped, seconds_edit=seconds_edit, seconds_eval=time.perf_counter() - t1,
                       fluency_before=fluency_before)
            seconds_edit, skipped, measured = 0.0, [], step
            reason = collapse.reason(row)
            row.update(collapsed=reason is not None, collapse_reason=reason)
            yield row
            if reason is not None and stop_on_collapse:
                return
            if checkpoint is not None:
                checkpoints.save(lm, checkpoint, key, step, current, paths)


def edit_stability(lm: LM, facts=None, method: str = "r-rome", batch: int = 1, steps: int | None = None, *,
                   layer=None, seed: int = 0, stop_on_collapse: bool = False, n_unrelated: int = 20,
                   unrelated: list[str] | None = None, fluency_tokens: int = 0, collapse: Collapse = Collapse(),
                   keep_edits: bool = False, every: int = 1, progress=True, **edit_kwargs) -> StabilityRun:
    """Edit ``facts`` in sequence, ``batch`` per step, for ``steps`` steps (default: each fact once; more steps
    than that edit generated counterfactuals, :func:`stability_facts`), measuring retention, PS, NS, the KL
    on unrelated prompts, norm growth (and fluency) after every step; see the module docstring for the
    definitions, the collapse test and what happens to the weights (left as found unless ``keep_edits``).

    ``facts``: dicts like the dev facts, a facts file, or None (the 43 dev facts). ``method``: ``"r-rome"``,
    ``"rome"``, ``"memit"`` or ``"alphaedit"``; ``layer``: the edit layer (ROME) or layers (MEMIT)."""
    run = StabilityRun(settings={"method": method, "batch": batch, "steps": steps, "layer": layer, "seed": seed,
                                 "keep_edits": keep_edits, "collapse": collapse, "every": every})
    gen = stability_steps(lm, facts, method, batch, steps, layer=layer, seed=seed, stop_on_collapse=stop_on_collapse,
                          n_unrelated=n_unrelated, unrelated=unrelated, fluency_tokens=fluency_tokens,
                          collapse=collapse, keep_edits=keep_edits, every=every, **edit_kwargs)
    total = steps if isinstance(steps, int) and steps > 0 else -(-len(edit_facts(facts)) // max(1, int(batch)))
    total = -(-total // every) if isinstance(every, int) and every > 0 else total
    bar = progress_bar(progress, total, f"sequential {method}")
    try:
        for row in gen:
            run.rows.append(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(retention=row["retention"], kl=f"{row['kl']:.3g}")
    finally:
        gen.close()
        if bar is not None:
            bar.close()
    return run


# ---- internals -----------------------------------------------------------------------------------
def _edit(lm, chunk, method, layer, seed, edit_kwargs):
    """Apply one step's facts, yielding the edit functions' progress dicts; returns the log entries written and
    the prompts the model already answered so."""
    if method in ("memit", "alphaedit"):
        from .memit import batch_steps

        requests = [{"prompt": f["prompt"], "subject": f["subject"], "target_new": object_target(f["target_new"])}
                    for f in chunk]
        edit = yield from batch_steps(lm, requests, layer, method=method, **edit_kwargs)
        return [edit.entry], []
    entries, skipped = [], []
    for f in chunk:
        steps = rome_steps(lm, f["prompt"], f["subject"], object_target(f["target_new"]), layer, method=method,
                           seed=seed, **edit_kwargs)
        try:
            info = next(steps)  # the request's checks run here
        except AlreadyAnswered:
            skipped.append(f["prompt"])  # nothing to write: the model already says the new object
            continue
        while True:
            yield info
            try:
                info = next(steps)
            except StopIteration as done:
                entries.append(done.value.entry)
                break
    return entries, skipped


def _measure(lm, current, measured, unrelated, before, paths, fluency_tokens, seed) -> dict:
    """The row of one measurement; "earlier" edits are those made up to the previously ``measured`` step."""
    pairs: dict[tuple[str, str], int] = {}

    def at(prompt, obj):
        return pairs.setdefault((prompt, object_target(obj)), len(pairs))

    plan = []
    for f in current.values():
        new, true = _obj(f["target_new"]), _obj(f["target_true"])
        para = [(at(p, new), at(p, true)) for p in f.get("paraphrases") or []]
        neigh = []
        for n in f.get("neighborhood") or []:
            prompt, own = (n, true) if isinstance(n, str) else (n["prompt"], _obj(n.get("target") or true))
            own = _obj(current[prompt]["target_new"]) if prompt in current else own  # itself edited
            if own != new:
                neigh.append((at(prompt, own), at(prompt, new)))
        plan.append((f, (at(f["prompt"], new), at(f["prompt"], true)), para, neigh))
    probs = pair_probs(lm, [p for p, _ in pairs], [t for _, t in pairs]).tolist()
    wins = lambda ij: float(probs[ij[0]] > probs[ij[1]])  # noqa: E731
    earlier = [wins(ij) for f, ij, _, _ in plan if f["step"] <= measured]
    now = [wins(ij) for f, ij, _, _ in plan if f["step"] > measured]
    para = [wins(ij) for _, _, ps, _ in plan for ij in ps]
    neigh = [wins(ij) for _, _, _, ns in plan for ij in ns]
    kls = kl(before, next_token_dists(lm, unrelated))
    ratios = {p: float(oriented_weight(lm.model.get_submodule(p)).detach().double().norm()) / n0
              for p, n0 in paths.items()}
    return {"retention": _mean(earlier), "earlier": len(earlier), "efficacy": _mean(now),
            "efficacy_all": _mean(earlier + now), "paraphrase": _mean(para), "neighbourhood": _mean(neigh),
            "neighbours": len(neigh), "kl": float(kls.mean()), "kl_max": float(kls.max()),
            "norm_ratio": max(ratios.values(), default=1.0), "norm_ratios": ratios,
            "fluency": _fluency(lm, unrelated, fluency_tokens, seed), "pairs": len(pairs)}


def _fluency(lm, prompts, n_tokens, seed) -> float | None:
    return ngram_entropy(generate(lm, prompts[:4], n_tokens=n_tokens, seed=seed)) if n_tokens else None


def _obj(text: str) -> str:
    return text.strip()


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None

