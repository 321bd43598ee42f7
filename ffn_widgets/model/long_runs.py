"""Long runs (mining, key statistics, evaluations): Ctrl-C at a safe point, and one kind of progress bar.

Loops and weight writes hold a notebook's interrupt until the running step is complete, so nothing is left
half written."""
from __future__ import annotations

import signal
from contextlib import contextmanager


@contextmanager
def deferred_interrupt():
    """Hold Ctrl-C until the ``with`` body is done, then raise it; a second Ctrl-C aborts at once."""
    pending = []

    def hold(signum, frame):
        if pending:
            raise KeyboardInterrupt
        pending.append(signum)

    try:
        previous = signal.signal(signal.SIGINT, hold)
    except ValueError:  # not the main thread: signals cannot arrive here anyway
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


def run_steps(steps):
    """Run a step generator (the streamed form of an analysis or edit) to its end; return what it returns."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def progress_bar(progress, total: int, desc: str, initial: int = 0, unit: str = "it"):
    """A tqdm bar (notebook-aware) when ``progress`` is true, else None."""
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit=unit, unit_scale=unit == "tok", desc=desc)
