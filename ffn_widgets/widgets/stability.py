"""``StabilityMonitor``: the edit-stability experiment, live. Curves grow as edits land; Cancel stops it.

    mon = fw.StabilityMonitor(lm, method="r-rome", steps=20)      # starts at once in a kernel
    mon                                                          # retention, PS, NS, KL, norm growth, live
    mon.run                                                      # the StabilityRun so far (.figure(), .to_frame())
    fw.StabilityMonitor(lm, method="memit", batch=5, steps=8, start=False)   # press Start (method, steps, batch)
    fw.StabilityMonitor(lm, run=fw.measured_runs()[0])           # a finished or saved run's curves, to explore

The run is :func:`~ffn_widgets.editing.stability.stability_steps` on the kernel's event loop, one piece of
work at a time (each optimisation step of each edit, each measurement), so a Cancel press lands within an
edit; the run's edits are taken out again however it ends (the model is left as it was found) unless
``keep_edits=True``. Its rows go to the browser as they are measured; collapse is marked where it happens.
"""
from __future__ import annotations


import traitlets

from ..editing.stability import METHODS, StabilityRun, stability_steps
from ..model import LM, InputError
from .base import ViewWidget, describe, handles
from .payload import finite_or_none
from .runner import StepRunner

ROW_KEYS = ("step", "edits", "retention", "earlier", "efficacy", "paraphrase", "neighbourhood", "kl", "kl_max",
            "norm_ratio", "fluency", "seconds_edit", "seconds_eval")


class StabilityMonitor(ViewWidget):
    view = traitlets.Unicode("stability").tag(sync=True)
    method = traitlets.Unicode("r-rome").tag(sync=True)
    methods = traitlets.List(list(METHODS)).tag(sync=True)
    batch = traitlets.Int(1).tag(sync=True)
    steps = traitlets.Int(20).tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)  # idle, running, done, cancelled, failed
    rows = traitlets.List([]).tag(sync=True)  # one per measurement (ROW_KEYS + facts, collapsed, collapse_reason)
    collapse = traitlets.Dict({}).tag(sync=True)  # the thresholds, for the chart's guide lines
    keep_edits = traitlets.Bool(False).tag(sync=True)  # the run's edits stay in lm.edits afterwards

    def __init__(self, lm: LM, facts=None, method: str = "r-rome", batch: int = 1, steps: int = 20, *,
                 start: bool = True, run: StabilityRun | None = None, **run_kwargs):
        super().__init__()
        self.lm, self.facts, self.run_kwargs = lm, facts, run_kwargs
        self.run = StabilityRun()
        self._runner = StepRunner(self._on_step, self._ended)
        self._failure: Exception | None = None
        self._check(method, batch, steps)
        from ..editing.stability import Collapse

        c = run_kwargs.get("collapse", Collapse())
        with self.hold_sync():
            self.method, self.batch, self.steps = method, batch, steps
            self.keep_edits = bool(run_kwargs.get("keep_edits", False))
            self.collapse = {"kl": c.kl, "norm_ratio": c.norm_ratio, "retention": c.retention}
            self.title = "Edit stability"
        if run is not None:  # show a run made elsewhere (its settings in the controls)
            settings = run.settings
            with self.hold_sync():
                self.method = settings.get("method", method)
                self.batch, self.steps = int(settings.get("batch") or batch), int(settings.get("steps") or steps)
                self.run, self.rows, self.status = run, [_row(r) for r in run.rows], "done"
        else:
            self.follow_weights(lm, "mark")
            if start:
                self.start()

    # ---- the Python API ------------------------------------------------------------------------
    def start(self, method: str | None = None, steps: int | None = None, batch: int | None = None):
        """Start a run (the given settings or the widget's). In a kernel it continues in the background and
        returns None; elsewhere it runs here and returns the :class:`StabilityRun`."""
        if self._runner.running:
            raise InputError("A run is going: wait for it or press Cancel first.")
        method = self.method if method is None else method
        steps = self.steps if steps is None else steps
        batch = self.batch if batch is None else batch
        self._check(method, batch, steps)
        job = stability_steps(self.lm, self.facts, method, batch, steps, events=True, **self.run_kwargs)
        self.run = StabilityRun(settings={"method": method, "batch": batch, "steps": steps, **self.run_kwargs})
        with self.hold_sync():
            self.method, self.steps, self.batch = method, steps, batch
            self.rows, self.status, self.error, self._failure = [], "running", "", None
            self.progress = {"message": f"Step 1 of {steps}: editing", "fraction": 0.0}
        if self._runner.start(job, lm=self.lm):
            return None
        self._runner.finish()
        if self._failure is not None:
            raise self._failure
        return self.run

    def cancel(self) -> None:
        """Stop the run within the current edit; its edits are taken out again."""
        self._runner.cancel()

    def wait(self) -> StabilityRun:
        """Finish the run here and now (continuing the background task's work)."""
        self._runner.finish()
        return self.run

    def _result(self):
        if not self.run.rows:
            raise InputError("No measurements yet: start a run and wait for its first step.")
        return self.run

    # ---- running -------------------------------------------------------------------------------
    def _on_step(self, item: dict) -> None:
        if "progress" in item:
            info, step, steps = item["progress"], item["step"], item["steps"]
            within = info.get("fraction") or 0.0
            self.progress = {"message": f"Step {step + 1} of {steps}: {info.get('message', 'editing')}",
                             "fraction": min(1.0, (step + within) / steps)}
            return
        self.run.rows.append(item)
        with self.hold_sync():
            self.rows = [*self.rows, _row(item)]
            self.progress = {"message": f"Step {item['step'] + 2} of {self.steps}: editing",
                             "fraction": (item["step"] + 1) / self.steps}

    def _ended(self, status: str, value) -> None:
        with self.hold_sync():
            self.status, self.progress = status, {}
            self.weights_version, self.stale = self.lm.state_version, ""  # the run's edits are taken out again
            if status == "failed":
                self._failure, self.error = value, describe(value)

    def _recompute(self) -> None:
        """Run again from the current weights (the Recompute button of a run made on earlier ones)."""
        if not self._runner.running:
            self.start()

    def _check(self, method, batch, steps) -> None:
        if method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
        for name, v in (("batch", batch), ("steps", steps)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError(f"{name} must be a positive integer, got {v!r}.")

    # ---- gestures ------------------------------------------------------------------------------
    @handles("start")
    def _on_start(self, msg):
        self.start(method=msg.get("method"), steps=_count(msg.get("steps"), "steps"),
                   batch=_count(msg.get("batch"), "batch"))

    @handles("cancel")
    def _on_cancel(self, msg):
        self.cancel()


def _row(item: dict) -> dict:
    """A measurement as the browser gets it: numbers (None for undefined), the step's facts, collapse."""
    row = {k: finite_or_none(item.get(k)) for k in ROW_KEYS}
    row.update(facts=[str(f) for f in item["facts"]], collapsed=bool(item["collapsed"]),
               collapse_reason=item["collapse_reason"] or "", skipped=len(item["skipped"]))
    return row


def _count(v, name):
    if v is None:
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a whole number, got {v!r}.") from None
