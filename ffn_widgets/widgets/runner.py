"""``StepRunner``: run a long job (a generator of progress dicts) without freezing the notebook.

Inside a kernel the job runs as a task on its event loop, one step per turn, so comm messages (a Cancel
press, a slider) are handled between steps; outside one, :meth:`StepRunner.finish` runs it in place. Cancel
closes the generator before its next step: a job that writes only at its end (``rome_steps``,
``batch_steps``) writes nothing. A step dict with ``"cancellable": False`` ends the part that can be
cancelled (after it the job is measuring what it wrote, and finishes). Starting a job while one runs
replaces it (the views that stream a prompt's parts: the newest prompt wins), and :meth:`StepRunner.stop` drops
it without ``on_end``.

No job mixes two models. A job started with ``lm=`` reads that model's state version before every step; when
it moved (an edit landed between two steps, an undo, a write) the job is dropped and started again from
scratch with ``restart()`` (views whose parts stream: explorer, trace, localisation) or, without one, ends
``("failed", WeightsChanged)``. Jobs that write weights themselves (the Editor's, the localisation's, the
stability monitor's) are guarded too: their own writes happen inside a step, and the runner takes the version
after each step, so only a change made *between* steps counts. The rule between a job and an edit: **the edit
goes first**: while another job holds the weights in between (it paused inside an edit block,
:attr:`~ffn_widgets.model.watch.StateWatch.held_by`) a guarded job waits, and writes from elsewhere are refused
with a message until it is done; a job that holds them is told so by ``held_by`` and ``holder``.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator

from ..model.watch import WeightsChanged, same_model

PROGRESS_EVERY = 0.2  # seconds between a view's progress messages that carry nothing new (a polled cluster job)


class StepRunner:
    """``on_step(info)`` after every step; ``on_end(status, value)`` once: ``("done", returned value)``,
    ``("cancelled", None)`` or ``("failed", exception)``."""

    def __init__(self, on_step: Callable[[dict], None], on_end: Callable[[str, object], None]):
        self._on_step, self._on_end = on_step, on_end
        self._job: Generator | None = None
        self._cancel = False
        self._cancellable = True
        self.task = None
        self._lm, self._restart, self.version, self._stepped = None, None, None, False
        owner = getattr(on_step, "__self__", None)
        self.name = f"the {type(owner).__name__} view's job" if owner is not None else "a running job"
        self._generation = 0
        self.restarts = 0  # jobs started again because the weights moved (for tests and the curious)

    @property
    def running(self) -> bool:
        return self._job is not None

    def start(self, job: Generator, lm=None, restart: Callable[[], Generator] | None = None) -> bool:
        """Start ``job`` (closing one still running); True if it continues in the background (a running event
        loop), False if the caller should :meth:`finish` it. ``lm``: the model the job reads (guarded, see
        the module docstring); ``restart()``: a fresh job for when its weights moved."""
        self.stop()
        self._generation += 1
        self._job, self._cancel, self._cancellable = job, False, True
        self._lm, self._restart, self._stepped = lm, restart, False
        self.version = None if lm is None else lm.state_version
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self.task = loop.create_task(self._drive(self._generation))
        return True

    def stop(self) -> None:
        """Drop the running job now, without ``on_end`` (a newer job takes its place)."""
        job, self._job = self._job, None
        self._let_go()
        if job is not None:
            job.close()

    def cancel(self) -> None:
        """Stop before the next step (ignored once the job has passed its cancellable part)."""
        self._cancel = True

    def finish(self) -> None:
        """Run the rest of the job here and now (continuing the background task's work)."""
        while self.advance():
            pass

    def advance(self) -> bool:
        """One step; False when there is nothing more to do."""
        job = self._job
        if job is None:
            return False
        self._let_go()  # the job's own step may write: the weights are its own again
        if self._cancel and self._cancellable:
            self._job = None
            job.close()
            self._on_end("cancelled", None)
            return False
        if self._lm is not None and self._lm.state_version != self.version:
            if not self._stepped:  # nothing read yet: the job simply starts on the weights as they are now
                self.version = self._lm.state_version
            else:
                return self._weights_moved(job)
        self._stepped = True
        try:
            info = next(job)
        except StopIteration as done:
            self._job = None
            self._on_end("done", done.value)
            return False
        except Exception as exc:  # noqa: BLE001 - handed to on_end, which shows it
            self._job = None
            self._on_end("failed", exc)
            return False
        if info.get("cancellable") is False:
            self._cancellable = False
        if self._lm is not None:
            self.version = self._lm.state_version  # its own writes in this step are part of the job
            if self._lm.watch.busy:  # paused inside an edit block: it holds the weights until its next step
                self._lm.watch.held_by, self._lm.watch.holder = self.name, self
        self._on_step(info)
        return True

    def preempt(self) -> None:
        """A write from elsewhere goes first (:meth:`~ffn_widgets.model.watch.StateWatch.make_way`): close the job
        now, so that its edit blocks put the log back; it starts again at its next step, on the weights the write
        leaves, or ends ``("failed", WeightsChanged)``."""
        job = self._job
        self._let_go()
        if job is None:
            return
        self._job = None
        job.close()
        if self._restart is None:
            self._on_end("failed", WeightsChanged(
                f"{self.name[0].upper()}{self.name[1:]} stopped: an edit, undo or reset was made while it ran, and "
                "the edit goes first (the job held the weights in between). Run it again."))
            return
        self._job, self._stepped = self._started_again(), False

    def _started_again(self):
        """The fresh job after a preemption, made at its first step (after the write has landed)."""
        self.restarts += 1
        yield {"stage": "restart", "message": "The weights changed: starting again", "fraction": None}
        return (yield from self._restart())

    def _let_go(self) -> None:
        if self._lm is not None and self._lm.watch.holder is self:
            self._lm.watch.held_by, self._lm.watch.holder = None, None

    def _weights_moved(self, job: Generator) -> bool:
        """Drop ``job``: start it again on the current weights, or fail with a message."""
        job.close()
        if self._restart is None:
            self._job = None
            try:
                same_model(self._lm, self.version)
            except WeightsChanged as exc:
                self._on_end("failed", exc)
            return False
        self.restarts += 1
        self._job, self.version, self._stepped = self._restart(), self._lm.state_version, False
        self._on_step({"stage": "restart", "message": "The weights changed: starting again", "fraction": None})
        return True

    async def _drive(self, generation: int):
        while self._generation == generation:  # a task whose job start() replaced ends here
            watch = None if self._lm is None else self._lm.watch
            if watch is not None and watch.busy and watch.holder is not self:  # an edit in between: it goes first
                await asyncio.sleep(0.05)
                continue
            if not self.advance():
                break
            await asyncio.sleep(0)
