"""Before and after one edit (or one batch): p(true), p(new) and the top tokens on the edited prompt, its
paraphrases and its neighbours, with greedy continuations. The Editor widget and ``edit.report()`` show this.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

from ..data.facts import load_facts, target
from ..model import LM
from .metrics import generate, next_token_dists, pair_probs


# ---- one edit: before and after -----------------------------------------------------------------
@dataclass
class EditReport:
    """``rows``: per prompt (the edited one, paraphrases, neighbours) p(true), p(new) and the top tokens
    before and after; ``continuations``: greedy text after the prompt, before and after."""

    rows: list[dict]
    continuations: dict
    weights_version: int = -1  # the model state it was made on (``LM.state_version``; the edit applied or not)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{"kind": r["kind"], "prompt": r["prompt"], "true": r["true"], "new": r["new"],
                              "p_true before": r["before"]["p_true"], "p_true after": r["after"]["p_true"],
                              "p_new before": r["before"]["p_new"], "p_new after": r["after"]["p_new"],
                              "top after": r["after"]["top"][0][0]} for r in self.rows])

    def figure(self):
        import plotly.graph_objects as go

        labels = [f"{r['kind']}: {r['prompt']}" for r in self.rows]
        fig = go.Figure()
        for when, dash in (("before", 0.45), ("after", 1.0)):
            fig.add_bar(y=labels, x=[r[when]["p_new"] for r in self.rows], orientation="h", opacity=dash,
                        name=f"p(new) {when}")
            fig.add_bar(y=labels, x=[r[when]["p_true"] for r in self.rows], orientation="h", opacity=dash,
                        name=f"p(true) {when}")
        fig.update_layout(barmode="group", template="plotly_white", xaxis_title="probability",
                          height=120 + 60 * len(self.rows), yaxis_autorange="reversed",
                          margin=dict(l=20, r=20, t=40, b=40), title="Before and after the edit")
        return fig

    def __repr__(self):
        lines = [f"{r['kind']:<10} {r['prompt'][:60]!r}: p(new) {r['before']['p_new']:.3f} → {r['after']['p_new']:.3f}, "
                 f"p(true) {r['before']['p_true']:.3f} → {r['after']['p_true']:.3f}" for r in self.rows]
        if self.continuations:
            lines += [f"before: …{self.continuations['before']!r}", f"after:  …{self.continuations['after']!r}"]
        return "\n".join(lines)


def edit_report(edit, fact: dict | None = None, paraphrases=(), neighbours=(), k: int = 5,
                continuation_tokens: int = 20) -> EditReport:
    """Before/after of an edit. ``fact`` (a line of the facts file) gives paraphrases and neighbours; without
    one, the dev fact with the same prompt is used if there is one. "Before" is the model without this edit
    (other edits kept)."""
    lm = edit.lm
    fact = fact or next((f for f in load_facts() if f["prompt"] == edit.prompt), None)
    true = target(fact["target_true"]) if fact else None
    rows = [("prompt", edit.prompt, true)]
    rows += [("paraphrase", p, true) for p in (list(paraphrases) or (fact or {}).get("paraphrases", []))]
    for n in list(neighbours) or (fact or {}).get("neighborhood", []):
        prompt, own = (n, None) if isinstance(n, str) else (n["prompt"], target(n["target"]))
        rows.append(("neighbour", prompt, own))

    def measure() -> tuple[list[dict], str]:
        sides = measure_rows(lm, [(p, t, edit.target) for _, p, t in rows], k)
        return sides, generate(lm, [edit.prompt], n_tokens=continuation_tokens, top_k=1)[0]

    if edit.applied:
        with lm.edits.without(edit):
            before, text_before = measure()
        after, text_after = measure()
    else:
        before, text_before = measure()
        with lm.edits.temporary():
            lm.edits.apply(edit.entry)
            after, text_after = measure()
        edit.entry.version_after = None
    rows = [(kind, prompt, true, edit.target) for kind, prompt, true in rows]
    return EditReport(report_rows(rows, before, after), {"before": text_before, "after": text_after},
                      lm.state_version)


def measure_rows(lm: LM, rows: list[tuple[str, str | None, str]], k: int = 5) -> list[dict]:
    """For each (prompt, true object or None, new object): p(true), p(new) and the top ``k`` next tokens, one
    batched pass; a missing true object is the model's own top token."""
    dists = next_token_dists(lm, [p for p, _, _ in rows])
    trues = [t or lm.token_strings([int(d.argmax())])[0] for (_, t, _), d in zip(rows, dists)]
    probs = pair_probs(lm, [p for p, _, _ in rows] * 2, trues + [new for _, _, new in rows]).tolist()
    out = []
    for i, d in enumerate(dists):
        top = d.exp().topk(k)
        out.append({"p_true": probs[i], "p_new": probs[len(rows) + i], "true": trues[i],
                    "top": [[s, float(p)] for s, p in zip(lm.token_strings(top.indices.tolist()), top.values)]})
    return out


def batch_rows(facts: list[dict]) -> list[tuple[str, str, str | None, str]]:
    """(kind, prompt, true, new) for the prompts and paraphrases of many facts, each with its own new object."""
    rows = []
    for f in facts:
        true = target(f["target_true"]) if f.get("target_true") else None
        new = target(f["target_new"])
        rows += [("prompt", f["prompt"], true, new)] + [("paraphrase", p, true, new) for p in f.get("paraphrases", [])]
    return rows


def batch_report(edit, facts=None, k: int = 5) -> EditReport:
    """:meth:`BatchEdit.report <.memit.BatchEdit.report>`: before (this edit left out) and after, per fact."""
    lm, known = edit.lm, {f["prompt"]: f for f in (facts if facts is not None else load_facts())}
    merged = [{**known.get(r["prompt"], {}), **r} for r in edit.requests]
    rows = batch_rows(merged)
    measurable = [(prompt, true, new) for _, prompt, true, new in rows]
    with lm.edits.without(edit) if edit.applied else nullcontext():
        before = measure_rows(lm, measurable, k)
    with nullcontext() if edit.applied else lm.edits.temporary():
        if not edit.applied:
            lm.edits.apply(edit.entry)
        after = measure_rows(lm, measurable, k)
    return EditReport(report_rows(rows, before, after), {}, lm.state_version)


def report_rows(rows, before: list[dict], after: list[dict]) -> list[dict]:
    return [{"kind": kind, "prompt": prompt, "true": b["true"], "new": new, "before": b, "after": a}
            for (kind, prompt, _, new), b, a in zip(rows, before, after)]
