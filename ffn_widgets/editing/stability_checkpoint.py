"""A long stability run that can stop and go on. A run of 200 ROME edits takes hours on a CPU; with a
``checkpoint`` file it writes, after each measured step, the run's edit log and its bookkeeping to that one
file (one atomic write). Started again with the same file and settings, it replays the log (the exact writes
of the edits, each matrix checked against its checksum) and goes on after that step: the rows it yields are
those of an uninterrupted run, and so are the weights, bit for bit.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..model import InputError
from .log import saved_extra


def run_key(plan, method, batch, steps, layer, seed, every, unrelated, fluency_tokens, collapse, edit_kwargs) -> dict:
    """What a checkpoint must match to go on: the settings and a digest of the planned facts."""
    digest = hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]
    key = {"method": method, "batch": batch, "steps": steps, "layer": layer, "seed": seed, "every": every,
           "unrelated": list(unrelated), "fluency_tokens": fluency_tokens, "collapse": repr(collapse),
           "edit_kwargs": {k: repr(v) for k, v in sorted(edit_kwargs.items())}, "facts": digest}
    return json.loads(json.dumps(key))  # as it reads back from the file (tuples become lists)


def resume(lm, path, key: dict) -> dict | None:
    """Replay the checkpoint at ``path`` into ``lm`` (which must hold no edits) and return its bookkeeping
    (``step``: the last measured step, ``current``, ``paths``); None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    saved = (saved_extra(path) or {}).get("stability")
    if saved is None:
        raise InputError(f"{path} is an edit log, not a stability run's checkpoint.")
    if saved["key"] != key:
        differ = sorted(k for k in key if saved["key"].get(k) != key[k])
        raise InputError(f"{path} is the checkpoint of another run (it differs in {', '.join(differ)}); "
                         "give the same settings, or another checkpoint file to start afresh.")
    if len(lm.edits):
        raise InputError(f"A stability run goes on from its checkpoint on the model as loaded, but this one holds "
                         f"{len(lm.edits)} edit(s); reset them first (lm.edits.reset()).")
    lm.edits.load(path)
    return saved


def save(lm, path, key: dict, step: int, current: dict, paths: dict) -> None:
    lm.edits.save(path, extra={"stability": {"key": key, "step": step, "current": current, "paths": paths}})
