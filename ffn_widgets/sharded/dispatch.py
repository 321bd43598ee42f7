"""Send a job's shards to the cluster's model actors and hand results back in shard order as they finish.

Each actor holds one shard at a time (a free actor takes the next), so a slow shard never idles the others. A
worker that dies mid-shard (killed, out of memory) is replaced by a new actor (the same model, edit log and
fingerprint check) and its shard goes to the next free actor; shards are pure functions of their inputs, so the
result is unchanged. Ctrl-C stops every actor at once: they hold no state of the caller's, whose weights and
caches a job never touches before it has merged everything.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from ..model.lm import LM
from ..model.long_runs import progress_bar
from .session import Cluster, ClusterError, _cause, _ray, _unwrapped

RETRIES = 2  # a shard whose worker keeps dying is tried on another actor this many times


def stream_shards(cluster: Cluster, lm: LM, fn: Callable, shards: Sequence, *, desc: str, progress=True,
                  weights: Sequence[int] | None = None, unit: str = "it",
                  poll: float | None = None) -> Iterator[tuple[int, object] | None]:
    """Yield ``(index, fn(worker_lm, *shards[index]))`` as shards finish (any order); one progress bar for all. A
    shard is a tuple of arguments; an ObjectRef among them (a corpus put once) arrives resolved. ``poll``: yield
    None after that many seconds without a finished shard (a view's job on the event loop keeps it free)."""
    ray = _ray()
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

    lost = (ActorDiedError, ActorUnavailableError, RayActorError)
    actors = cluster.pool(lm)
    weights = list(weights) if weights is not None else [1] * len(shards)
    bar = progress_bar(progress, sum(weights), f"{desc} ({len(actors)} workers)", unit=unit)
    todo = list(range(len(shards)))[::-1]  # popped from the end: shard 0 first
    tries = [0] * len(shards)
    running: dict = {}  # ref -> (shard index, actor)
    free = list(actors)
    try:
        while todo or running:
            while todo and free:
                i, actor = todo.pop(), free.pop(0)
                running[actor.run.remote(fn, *shards[i])] = (i, actor)
            done, _ = ray.wait(list(running), num_returns=1, timeout=poll)
            if not done:
                yield None
                continue
            ref = done[0]
            i, actor = running.pop(ref)
            try:
                result = ray.get(ref)
            except lost as exc:
                tries[i] += 1
                if tries[i] > RETRIES:
                    raise ClusterError(f"Shard {i} of {desc} failed on {tries[i]} workers: {_cause(exc)}") from exc
                todo.append(i)  # next to go, to a live actor or to the dead one's replacement
                free.append(cluster.replace(actor))
                continue
            except ray.exceptions.RayTaskError as exc:  # the job's own error, raised in the worker: say it as is
                raise _unwrapped(exc) from None
            free.append(actor)
            if bar is not None:
                bar.update(weights[i])
            yield i, result
    except BaseException:
        cluster.drop()  # Ctrl-C, Cancel, an error: every worker stops now, nothing is left running
        raise
    finally:
        if bar is not None:
            bar.close()


def split(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into ``parts`` contiguous pieces of nearly equal size (empty pieces dropped)."""
    parts = max(1, min(parts, n))
    size, extra = divmod(n, parts)
    out, start = [], 0
    for p in range(parts):
        stop = start + size + (p < extra)
        out.append(range(start, stop))
        start = stop
    return [r for r in out if len(r)]
