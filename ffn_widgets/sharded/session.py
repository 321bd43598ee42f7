"""``fw.cluster(...)``: run the dataset-scale jobs on a Ray cluster, with the same calls and the same answers.

    with fw.cluster(workers=2):                      # a local Ray cluster on this machine
        index = fw.mine_triggers(lm, corpus)         # sharded over two model actors, merged exactly
    with fw.cluster("auto", gpus_per_worker=1):      # join a running cluster (RAY_ADDRESS or `ray start --head`)
        report = fw.evaluate_edits(lm, facts)

A view that keeps running after its cell (``fw.Localize``) takes a cluster kept open instead of a block:

    c = fw.cluster(workers=2)                        # open until c.close() (or the kernel ends)
    fw.Localize(lm, fact, edit_layers=range(0, 30, 3), cluster=c)   # the edit rows fill in from the workers

Ray is an optional extra (``pip install 'ffn_widgets[ray]'``); without a ``with fw.cluster()`` block every job
runs in this process as before. Inside one, the jobs that scale with data (mining, key statistics, trace_many,
evaluate_edits, edit_layer_sweep, knowledge_experiment, localize_many, compare_methods) send shards to model
actors (:mod:`.worker`) and merge the results in shard order, so the answer equals the in-process one.
"""
from __future__ import annotations

import os
import socket

from ..model import InputError
from ..model.lm import LM

_CURRENT: list["Cluster"] = []


class ClusterError(InputError):
    """The cluster cannot run the job (unreachable, Ray missing, a worker that cannot load the model)."""


def current() -> "Cluster | None":
    """The innermost active ``fw.cluster`` block's cluster, or None (jobs run in this process)."""
    return _CURRENT[-1] if _CURRENT else None


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise ClusterError("Running on a cluster needs Ray: pip install 'ffn_widgets[ray]' (or pip install ray). "
                           "Without a `with fw.cluster()` block every job runs in this process.") from exc
    return ray


def cluster(address: str | None = None, workers: int = 2, gpus_per_worker: float = 0,
            threads_per_worker: int | None = None, timeout: float = 300.0) -> "Cluster":
    """Run the sharded jobs inside ``with fw.cluster(...):`` on ``workers`` model actors of a Ray cluster (closed
    at the block's end), or keep the returned cluster open for views (``cluster=``) and ``close()`` it later.

    ``address=None`` starts a local cluster on this machine (stopped at the end of the block); ``"auto"`` joins the
    one ``ray start --head`` runs here or ``RAY_ADDRESS`` names; ``"host:port"`` or ``"ray://host:10001"`` joins that
    one. ``gpus_per_worker=1`` gives each actor a GPU (one actor per GPU); ``threads_per_worker`` defaults to this
    machine's cores split between the workers on a local cluster. ``timeout``: seconds a worker may take to load
    the model."""
    return Cluster(address, workers, gpus_per_worker, threads_per_worker, timeout)


class Cluster:
    """A connection to Ray and the model actors made for it (one pool per model state, made on first use)."""

    def __init__(self, address, workers, gpus_per_worker, threads_per_worker, timeout):
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise InputError(f"workers must be a positive integer, got {workers!r}.")
        if gpus_per_worker < 0:
            raise InputError(f"gpus_per_worker must be at least 0, got {gpus_per_worker!r}.")
        ray = _ray()
        self.workers, self.gpus, self.timeout = workers, float(gpus_per_worker), float(timeout)
        self.local = address is None
        cores = os.cpu_count() or 1
        self.threads = threads_per_worker or (max(1, cores // workers) if self.local else 1)
        self._started, self.closed = False, False
        self._pool: tuple | None = None  # (model key, actors, a function making one more such actor)
        if address is not None:
            _check_reachable(address)
        if ray.is_initialized():
            pass  # a session the user started: use it as it is
        elif self.local:
            ray.init(num_cpus=max(cores, workers * self.threads), include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
            self._started = True
        else:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            except Exception as exc:  # noqa: BLE001 - any failure to join gets one clear message
                raise ClusterError(f"Could not join the Ray cluster at {address!r}: {type(exc).__name__}: {exc}") from exc
            self._started = True
        self._check_resources(ray)

    def _check_resources(self, ray) -> None:
        """Refuse a request the cluster can never place, instead of waiting for it forever."""
        have = ray.cluster_resources()
        need_gpu = self.gpus * self.workers
        if need_gpu and have.get("GPU", 0) < need_gpu:
            self.close()
            raise ClusterError(f"{self.workers} workers with {self.gpus:g} GPU each need {need_gpu:g} GPUs; the "
                               f"cluster has {have.get('GPU', 0):g}. Ask for fewer workers or gpus_per_worker=0.")
        if have.get("CPU", 0) < self.workers:
            self.close()
            raise ClusterError(f"{self.workers} workers need {self.workers} CPUs; the cluster has "
                               f"{have.get('CPU', 0):g}.")

    def pool(self, lm: LM) -> list:
        """Actors holding ``lm`` as it is now (its recipe, its edit log, its fingerprint checked): made when the
        model or its edit log changed since the last job, and waited for until every one has loaded."""
        from .worker import ModelWorker, WorkerMismatch, edit_log_bytes, model_recipe

        ray = _ray()
        if self.closed:
            raise ClusterError("This cluster was closed: open another with fw.cluster(...).")
        key = (id(lm), lm.fingerprint, repr(lm.recipe))
        if self._pool is not None and self._pool[0] == key:
            return self._pool[1]
        self.drop()
        recipe, log = model_recipe(lm), edit_log_bytes(lm)
        device = "cuda" if self.gpus else "cpu"
        remote = ray.remote(ModelWorker).options(num_cpus=1, num_gpus=self.gpus)
        refs = ray.put(recipe), ray.put(log)  # kept while the pool lives: a replacement actor reads them again

        def make():
            return remote.remote(*refs, lm.fingerprint, self.threads, device)

        actors = [make() for _ in range(self.workers)]
        self._pool = (key, actors, make)
        try:
            ray.get([a.ready.remote() for a in actors], timeout=self.timeout)
        except BaseException as exc:
            self.drop()
            if isinstance(exc, KeyboardInterrupt):
                raise
            if isinstance(exc, ray.exceptions.GetTimeoutError):
                raise ClusterError(f"The workers did not load {lm.name} within {self.timeout:g} s (timeout=).") from exc
            inner = _unwrapped(exc)
            if isinstance(inner, WorkerMismatch):
                raise inner from None
            raise ClusterError(f"A worker could not load {lm.name}: {type(inner).__name__}: {inner}") from None
        return actors

    def replace(self, dead):
        """A new actor in place of one that died (killed, out of memory): it loads the same model and edit log."""
        _, actors, make = self._pool
        fresh = make()
        actors[actors.index(dead)] = fresh
        _ray().kill(dead, no_restart=True)
        return fresh

    def drop(self) -> None:
        """Stop the actors (a cancelled job, a changed model): nothing of theirs keeps running."""
        if self._pool is not None:
            ray = _ray()
            for actor in self._pool[1]:
                ray.kill(actor, no_restart=True)
            self._pool = None

    def close(self) -> None:
        self.drop()
        self.closed = True
        if self._started:
            _ray().shutdown()
            self._started = False

    def __enter__(self) -> "Cluster":
        _CURRENT.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _CURRENT.remove(self)
        self.close()

    def __repr__(self):
        return f"Cluster(workers={self.workers}, gpus_per_worker={self.gpus:g}, threads_per_worker={self.threads})"


def _check_reachable(address: str) -> None:
    """A named host:port that does not answer fails at once with a clear message (Ray itself retries for a minute)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"A cluster address is 'auto', 'host:port' or 'ray://host:port', got {address!r}.")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ClusterError(f"No Ray cluster answers at {address!r} ({exc}). Start one with `ray start --head` "
                           "there, or use fw.cluster() for a local one.") from exc


def _unwrapped(exc) -> BaseException:
    """The exception a worker raised (an InputError stays an InputError), without Ray's wrapping."""
    try:
        inner = exc.as_instanceof_cause()
        cause = getattr(inner, "cause", None)
        return cause if isinstance(cause, BaseException) else inner
    except Exception:  # noqa: BLE001 - not a task error, or Ray could not rebuild it: its own message says it
        return exc


def _cause(exc: BaseException) -> str:
    """The worker's own error, without Ray's wrapping."""
    for attr in ("cause", "__cause__"):
        inner = getattr(exc, attr, None)
        if inner is not None and inner is not exc:
            return f"{type(inner).__name__}: {inner}"
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
