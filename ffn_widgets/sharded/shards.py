"""What a worker runs around a job's own shard function: the caller's key statistics at hand instead of the disk
cache (workers never compute or write the caller's caches). Shard functions live beside their jobs (mining,
key statistics, ...) and are pure in their arguments, so a shard rerun after a worker died gives the same answer."""
from __future__ import annotations

from contextlib import contextmanager

_PROVIDED: dict = {}  # key statistics a worker got with its job, by cache file name


def given(name: str):
    """The statistics sent with the running job under this cache file name, or None."""
    return _PROVIDED.get(name)


@contextmanager
def provided(stats: dict):
    """Use these statistics (``{cache file name: C}``) instead of the disk cache while the block runs."""
    _PROVIDED.update(stats)
    try:
        yield
    finally:
        for name in stats:
            _PROVIDED.pop(name, None)


def per_fact(lm, fn, fact, args: tuple, stats: dict):
    """``fn(lm, fact, *args)`` with the caller's key statistics at hand."""
    with provided(stats):
        return fn(lm, fact, *args)
