"""The :class:`~ffn_widgets.Editor`'s batch mode: many facts written by one Apply, with MEMIT or AlphaEdit
(one call, one log entry, ``layer`` the last of a five-layer range) or ROME / r-ROME (one edit per fact, in
order, one entry each). Before → after is measured on every fact's prompt and paraphrases.

A cancelled or failed sequence leaves the weights as they were: the edits it had written are undone.
A fact the model already completes with its new object is skipped (there is nothing to write) and named.
"""
from __future__ import annotations

from ..data.facts import target
from ..editing.report import EditReport, batch_rows, measure_rows, report_rows
from ..editing.memit import batch_steps, check_requests, default_layers
from ..editing.rome import AlreadyAnswered, rome_steps
from ..model import InputError
from .payload import comparison_rows, entry_key, finite_or_none

BATCH_METHODS = ("memit", "alphaedit", "r-rome", "rome")


def check_batch(lm, facts) -> list[dict]:
    """The facts of a batch (a list of dicts or a facts file), checked as MEMIT checks its requests."""
    if isinstance(facts, str) or hasattr(facts, "__fspath__"):
        from ..data.facts import load_facts

        facts = load_facts(path=facts)
    facts = [dict(f) for f in facts]
    check_requests(lm, facts)
    return facts


def batch_job(editor, facts: list[dict], method: str, layer: int):
    """The steps of one batch Apply (progress dicts); returns the list of edits written."""
    lm = editor.lm
    rows = batch_rows(facts)
    measurable = [(prompt, true, new) for _, prompt, true, new in rows]
    yield {"message": f"Measuring {len(facts)} facts before the edit", "fraction": None}
    before = measure_rows(lm, measurable, k=3)
    edits, skipped = [], []
    try:
        if method in ("memit", "alphaedit"):
            requests = [{"prompt": f["prompt"], "subject": f["subject"], "target_new": target(f["target_new"])}
                        for f in facts]
            edits.append((yield from batch_steps(lm, requests, default_layers(lm, layer), method=method,
                                                 **editor._edit_options())))
        else:
            for i, f in enumerate(facts):
                steps = rome_steps(lm, f["prompt"], f["subject"], target(f["target_new"]), layer, method=method,
                                   **editor._edit_options())
                try:
                    info = next(steps)
                except AlreadyAnswered:
                    skipped.append(f["prompt"])
                    continue
                except InputError as exc:
                    raise InputError(f"Fact {i} ({f['prompt']!r}): {exc}") from None
                edits.append((yield from _numbered(steps, info, i, len(facts))))
    except BaseException:  # cancelled (GeneratorExit), failed, interrupted: nothing of this Apply stays
        for e in reversed(edits):
            if e.applied:
                e.undo()
        raise
    editor.edit = edits
    editor._mine.extend(e.entry for e in edits)
    editor._log_changed()
    yield {"message": "Measuring after the edit", "fraction": None, "cancellable": False}
    after = measure_rows(lm, measurable, k=3)
    editor.report = EditReport(report_rows(rows, before, after), {}, editor.lm.state_version)
    _publish(editor, facts, method, layer, edits, skipped)
    return edits


def _numbered(steps, first: dict, i: int, n: int):
    """ROME's steps for fact ``i`` of ``n``, their messages and fractions placed in the whole sequence."""
    info = first
    while True:
        yield {**info, "message": f"Fact {i + 1} of {n}: {info.get('message', '')}",
               "fraction": (i + (info.get("fraction") or 0)) / n}
        try:
            info = next(steps)
        except StopIteration as done:
            return done.value


def _publish(editor, facts, method, layer, edits, skipped) -> None:
    rows = comparison_rows(editor.report)
    won = lambda kind: [r["after"]["p_new"] > r["after"]["p_true"] for r in rows if r["kind"] == kind]  # noqa: E731
    es, ps = won("prompt"), won("paraphrase")
    editor.comparison = {
        "rows": rows, "continuations": {}, "layer": layer, "method": method, "batch": True,
        "layers": sorted({x for e in edits for x in e.entry.layers}), "facts": len(facts), "skipped": skipped,
        "subject": f"{len(facts)} facts", "target": "", "efficacy": sum(es) / len(es) if es else None,
        "paraphrase": sum(ps) / len(ps) if ps else None,
        "delta_norm": finite_or_none(sum(d.norm ** 2 for e in edits for d in e.entry.deltas) ** 0.5),
        "applied": any(e.applied for e in edits), "keys": [entry_key(e.entry) for e in edits]}
