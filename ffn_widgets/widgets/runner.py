"""``StepRunner``: run a long job (a generator of progress dicts) without freezing the notebook.

Inside a kernel the job runs as a task on its event loop, one step per turn, so comm messages (a Cancel
press, a slider) are handled between steps; outside one, :meth:`StepRunner.finish` runs it in place. Cancel
closes the generator before its next step: a job that writes only at its end (``rome_steps``,
``batch_steps``) writes nothing. A step dict with ``"cancellable": False`` ends the part that can be
cancelled (after it the job is measuring what it wrote, and finishes). Starting a job while one runs
replaces it (the views that stream a prompt's parts: the newest prompt wins), and :meth:`StepRunner.stop` drops
it without ``on_end``.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator


class StepRunner:
    """``on_step(info)`` after every step; ``on_end(status, value)`` once: ``("done", returned value)``,
    ``("cancelled", None)`` or ``("failed", exception)``."""

    def __init__(self, on_step: Callable[[dict], None], on_end: Callable[[str, object], None]):
        self._on_step, self._on_end = on_step, on_end
        self._job: Generator | None = None
        self._cancel = False
        self._cancellable = True
        self.task = None

    @property
    def running(self) -> bool:
        return self._job is not None

    def start(self, job: Generator) -> bool:
        """Start ``job`` (closing one still running); True if it continues in the background (a running event
        loop), False if the caller should :meth:`finish` it."""
        self.stop()
        self._job, self._cancel, self._cancellable = job, False, True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self.task = loop.create_task(self._drive(job))
        return True

    def stop(self) -> None:
        """Drop the running job now, without ``on_end`` (a newer job takes its place)."""
        job, self._job = self._job, None
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
        if self._cancel and self._cancellable:
            self._job = None
            job.close()
            self._on_end("cancelled", None)
            return False
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
        self._on_step(info)
        return True

    async def _drive(self, job: Generator):
        while self._job is job and self.advance():  # a replaced job's task ends here
            await asyncio.sleep(0)
