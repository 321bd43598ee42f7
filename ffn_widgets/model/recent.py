"""What the kernel computed lately, per model: the few newest knowledge-neuron results and causal traces, so a
view (the neuron card) can join them without computing them again.

They live in :meth:`LM.memo`, so they are dropped as soon as the weights change: a result of other weights is
never joined silently. Only the newest :data:`KEEP` of each kind are held (a trace keeps a few MB).

    remember(lm, "trace", result)
    recall(lm, "trace", lambda r: r.prompt == prompt)      # the newest match, or None
"""
from __future__ import annotations

from collections.abc import Callable

KEEP = 4


def remember(lm, kind: str, result) -> None:
    """Hold ``result`` as the newest of its ``kind`` (until the weights change)."""
    held = lm.memo(("recent", kind), list)
    held[:] = [result] + [r for r in held if r is not result][:KEEP - 1]


def recall(lm, kind: str, match: Callable[[object], bool] = lambda _: True):
    """The newest held result of ``kind`` for which ``match`` is true; None if there is none."""
    return next((r for r in lm.memo(("recent", kind), list) if match(r)), None)
