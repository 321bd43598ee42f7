"""``AveragedTrace``: ROME's averaged causal trace over many facts, filling in as each fact is traced.

One heatmap per kind (hidden state, MLP, attention): ROME's six token groups down, layers across, the average
indirect effect in each cell; hover for the mean p(target) restored and how many facts the cell averages. The
header counts the facts traced and the ones skipped (the model does not predict their target, as ROME keeps
only known facts); the peaks sit under the maps.

    avg = fw.AveragedTrace(lm, fw.load_facts(), kind="mlp", samples=3)   # starts at once in a kernel
    avg.result               # the TraceAverage so far (.figure(), .line_figure(), .to_frame())
    avg.wait()               # finish here; the same numbers as fw.trace_many(lm, facts, ...)
    with fw.cluster(workers=2):
        fw.AveragedTrace(lm, facts)          # one fact per worker at a time, each averaged in as it arrives

The numbers are :func:`~ffn_widgets.tracing.average.trace_many_steps` on the kernel's event loop: in process one
batched forward per step, so Cancel lands within a fact; on a cluster the job polls its workers. The weights are
only read; an edit while it runs starts it again on the new weights (nothing from two models is averaged).
"""
from __future__ import annotations

import time

import traitlets

from ..model import LM, InputError
from ..tracing.average import GROUPS, TraceAverage, trace_many_steps
from ..tracing.setup import check_kinds
from .base import ViewWidget, describe, handles
from .runner import PROGRESS_EVERY, StepRunner
from .serialize import pack


class AveragedTrace(ViewWidget):
    view = traitlets.Unicode("trace_average").tag(sync=True)
    grid = traitlets.Dict({}).tag(sync=True)  # see _publish
    status = traitlets.Unicode("idle").tag(sync=True)  # idle, running, done, cancelled, failed

    def __init__(self, lm: LM, facts, kind="all", samples: int = 10, noise: float | None = None, window: int = 10,
                 seed: int = 0, *, cluster=None, start: bool = True):
        """``facts``: dicts with ``prompt``, ``subject`` and ``target_true`` (or ``target``), e.g.
        ``fw.load_facts()``; the rest as :func:`~ffn_widgets.trace_many`. ``cluster``: a kept ``fw.cluster(...)``
        (default: the open block's, held now, since the job outlives the cell)."""
        from ..sharded.session import current

        super().__init__()
        self.lm, self.facts, self.cluster = lm, list(facts), cluster or current()
        self.kinds = check_kinds(kind)
        self._asked = dict(kind=kind, samples=samples, noise=noise, window=window, seed=seed)
        trace_many_steps(lm, self.facts, cluster=self.cluster, **self._asked).close()  # bad input: refused now
        self.average: TraceAverage | None = None
        self._runner = StepRunner(self._on_step, self._ended)
        self._counts, self._failure, self._said = {"done": 0, "skipped": 0}, None, 0.0
        self.title = f"Averaged causal trace over {len(self.facts)} fact{'s' * (len(self.facts) != 1)}"
        self._publish()
        self.follow_weights(lm, "mark")
        if start:
            self.start()

    # ---- the Python API ------------------------------------------------------------------------
    @property
    def result(self) -> TraceAverage | None:
        """The average over the facts traced so far (None before the first known fact)."""
        return self.average

    def start(self) -> TraceAverage | None:
        """Trace (again, from the first fact). In a kernel it continues in the background and returns None;
        elsewhere it runs here and returns the :class:`TraceAverage`."""
        self.average, self._counts, self._failure = None, {"done": 0, "skipped": 0}, None
        with self.hold_sync():
            self.status, self.error = "running", ""
            self.progress = {"message": f"Tracing {len(self.facts)} facts", "fraction": 0.0}
            self._publish()
        if self._runner.start(self._job(), lm=self.lm, restart=self._job):
            return None
        return self.wait()

    def wait(self) -> TraceAverage | None:
        """Finish here and now (continuing the background task's work); raises what made it fail."""
        self._runner.finish()
        if self._failure is not None:
            raise self._failure
        return self.average

    def cancel(self) -> None:
        """Stop before the next batched forward (or, on a cluster, now: every worker's task is dropped)."""
        self._runner.cancel()

    def _job(self):
        """A fresh job on the weights as they are now (a start, Recompute, or the runner's restart after an edit)."""
        self.average, self._counts = None, {"done": 0, "skipped": 0}
        self.weights_version, self.stale = self.lm.state_version, ""  # what it will show describes these weights
        return trace_many_steps(self.lm, self.facts, cluster=self.cluster, **self._asked)

    def _result(self):
        if self.average is None:
            raise InputError("Nothing averaged yet: wait for the first fact the model knows.")
        return self.average

    # ---- running -------------------------------------------------------------------------------
    def _on_step(self, event: dict) -> None:
        if event.get("stage") == "restart":  # the weights moved: started again, nothing kept
            self.average, self._counts = None, {"done": 0, "skipped": 0}
            with self.hold_sync():
                self._publish()
                self.progress = {"message": event["message"], "fraction": None}
            return
        now = time.monotonic()
        if not event["updated"] and event["done"] == self._counts["done"] and now - self._said < PROGRESS_EVERY:
            return  # nothing new to draw and the progress line was just updated
        self._said = now
        with self.hold_sync():
            if event["updated"]:
                self.average = event["result"]
            if event["updated"] or event["done"] != self._counts["done"]:
                self._counts = {"done": event["done"], "skipped": event["skipped"]}
                self._publish()
            self.progress = {"message": event["message"], "fraction": event["fraction"]}

    def _ended(self, status: str, value) -> None:
        if status == "done":
            self.average = value
            self._counts = {"done": len(self.facts), "skipped": len(value.skipped)}
        with self.hold_sync():
            self.status, self.progress = status, {}
            if status == "failed":
                self._failure, self.error = value, describe(value)
            self._publish()

    def _recompute(self) -> None:
        """Trace again on the current weights (the Recompute button of an average of earlier weights)."""
        self._runner.stop()
        self.start()

    def _publish(self) -> None:
        a = self.average
        self.grid = {
            "groups": list(GROUPS), "kinds": list(self.kinds), "n_layers": self.lm.n_layers,
            "total": len(self.facts), "done": self._counts["done"], "skipped_count": self._counts["skipped"],
            "samples": self._asked["samples"], "window": self._asked["window"], "status": self.status,
            "workers": getattr(self.cluster, "workers", 0) if self.cluster is not None else 0,
            "n_facts": 0 if a is None else a.n_facts,
            "counts": [] if a is None else [int(c) for c in a.counts],
            "p_clean": None if a is None else a.p_clean, "p_corrupted": None if a is None else a.p_corrupted,
            "indirect": {} if a is None else {k: pack(a.indirect[k].T, "float32") for k in a.kinds},
            "scores": {} if a is None else {k: pack(a.scores[k].T, "float32") for k in a.kinds},
            "peaks": {} if a is None else {k: list(a.peak(k)) for k in a.kinds},
            "skipped": [] if a is None else [[prompt, reason] for prompt, reason in a.skipped[:50]],
        }

    # ---- gestures ------------------------------------------------------------------------------
    @handles("cancel")
    def _on_cancel(self, msg):
        self.cancel()

    @handles("start")
    def _on_start(self, msg):
        self.start()
