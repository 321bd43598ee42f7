"""The caller's side of the sharded jobs: what every job shares (merging in shard order, the weights version, the
per-fact jobs). Mining and key statistics cut and merge their own shards (memories/mining.py, editing/stats.py).

Merges are exact: histogram counts add; a top-k of unique (activation, position) keys is the top-k of the
shards' top-ks; key moments are float64 sums of the same per-batch float32 products (equal to float64 rounding);
per-fact rows keep the facts' order. Results carry the caller's weights version (the workers' fingerprints were
checked against it), and a job whose caller's weights move while it runs stops, as in process.
"""
from __future__ import annotations

from collections.abc import Iterator

from ..model.watch import same_model
from .dispatch import stream_shards
from .session import Cluster
from .shards import per_fact

SHARDS_PER_WORKER = 4  # enough to balance uneven shards and to lose little when a worker dies


class InOrder:
    """Take results in any order, hand them on in shard order (so sums and checkpoints do not depend on timing)."""

    def __init__(self):
        self.waiting: dict[int, object] = {}
        self.next = 0

    def add(self, i: int, result) -> Iterator[tuple[int, object]]:
        self.waiting[i] = result
        while self.next in self.waiting:
            yield self.next, self.waiting.pop(self.next)
            self.next += 1


def for_each(lm, fn, items: list, args: tuple, desc: str, progress, stats: dict | None = None, *,
             restores: bool = False) -> list:
    """``[fn(lm, item, *args) for item in items]``: inside ``fw.cluster()`` one item per shard on the workers (with the
    caller's key ``stats``), else here with one progress bar. Either way the items see one model: a move of the
    weights between items stops the job (``restores``: each item edits and undoes, so only the caller's own end
    state is compared)."""
    from ..model.long_runs import progress_bar
    from .session import current

    if current() is not None:
        return cluster_per_fact(current(), lm, fn, items, args, desc, progress, stats)
    version, out = lm.state_version, []
    bar = progress_bar(progress, len(items), desc, unit="fact")
    try:
        for item in items:
            out.append(fn(lm, item, *args))
            if not restores:
                same_model(lm, version, desc)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out


def cluster_per_fact(cluster: Cluster, lm, fn, facts: list, args: tuple, desc: str, progress,
                     stats: dict | None = None) -> list:
    """``[fn(lm, fact, *args) for fact in facts]`` on the workers (with the caller's key statistics), in order;
    results are stamped with the caller's weights version."""
    version = started(cluster, lm)
    out: list = [None] * len(facts)
    shards = [(fn, fact, args, stats or {}) for fact in facts]
    for i, result in stream_shards(cluster, lm, per_fact, shards, desc=desc, progress=progress, unit="fact"):
        out[i] = stamped(result, version)
    same_model(lm, version, desc)
    return out


def started(cluster: Cluster, lm) -> int:
    """Make (or reuse) the workers for ``lm`` and return the weights version the job is computed on (taken after:
    packing the recipe suspends and restores the logged edits, which moves the version)."""
    cluster.pool(lm)
    return lm.state_version


def stamped(result, version: int, depth: int = 2):
    """Give a worker's result, and the results it holds (a Localization's traces and knowledge neurons, a TraceSet's
    kinds), the caller's weights version: the worker's own counter means nothing here."""
    if isinstance(result, dict):
        for value in result.values():
            stamped(value, version, depth)
    fields = getattr(result, "__dataclass_fields__", {})
    if "weights_version" in fields:
        result.weights_version = version
    if depth:
        for name in fields:
            value = getattr(result, name)
            if isinstance(value, dict) or hasattr(value, "__dataclass_fields__"):
                stamped(value, version, depth - 1)
    return result
