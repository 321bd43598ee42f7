"""A cluster worker: one copy of the caller's model, rebuilt from its recipe and edit log, running shards of a job.

A worker is never handed weights it has to trust: it loads the model the way the caller did (``load_model`` with
the same name or path and dtype), or, for a model the caller built in memory, from the caller's unedited weights;
it replays the caller's edit log (each matrix checked against its checksum) and then compares the fingerprint of
all its weights with the caller's. A mismatch (the caller's weights were changed outside the edit log, another
version of the checkpoint on this node) stops the job with both fingerprints: a different model is never used
silently. Workers never write the caller's caches; key statistics they need arrive with the job.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from ..model import InputError
from ..model.lm import LM


class WorkerMismatch(InputError):
    """A worker's rebuilt model is not the caller's."""


def model_recipe(lm: LM) -> dict:
    """How a worker rebuilds ``lm`` as it was before its logged edits (no weights travel for a loaded model)."""
    if lm._interventions % 2:  # an intervene block is open: its hooks live in this process only
        raise InputError("A temporary intervention (lm.intervene) is active: run cluster jobs outside its block.")
    if lm.is_split:
        raise InputError("This model is spread over devices by accelerate; on a cluster each worker loads its own "
                         "copy: load it with load_model(name) on one device and run the job with that.")
    if getattr(lm, "recipe", None) is not None:
        return {"kind": "load", **lm.recipe}
    with lm.edits.original():
        state = {name: t.detach().cpu().clone() for name, t in lm.model.state_dict().items()}
    return {"kind": "weights", "config": lm.model.config, "state": state, "tokenizer": lm.tokenizer,
            "name": lm.name, "dtype": str(lm.dtype).replace("torch.", "")}


def edit_log_bytes(lm: LM) -> bytes | None:
    """The caller's edit log as the bytes of its saved file (None when nothing is logged)."""
    if not len(lm.edits):
        return None
    with tempfile.TemporaryDirectory(prefix="ffn-widgets-log-") as folder:
        return lm.edits.save(Path(folder) / "edits.safetensors").read_bytes()


def build(recipe: dict, device: str) -> LM:
    """The model of a recipe, on ``device``."""
    from ..model.loading import load_model

    if recipe["kind"] == "load":
        return load_model(recipe["name_or_path"], dtype=recipe["dtype"], device=device)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(recipe["config"]).to(getattr(torch, recipe["dtype"]))
    model.load_state_dict(recipe["state"])
    return LM(model.to(device), recipe["tokenizer"], name=recipe["name"])


class ModelWorker:
    """The actor's body (Ray wraps it): built once per cluster, model and edit log; then runs shard functions."""

    def __init__(self, recipe: dict, log: bytes | None, fingerprint: str, threads: int, device: str):
        # an error here is kept and raised by ready(): the caller gets it as it is (not as a dead actor that Ray
        # would restart to fail the same way again)
        self.error: BaseException | None = None
        try:
            self._load(recipe, log, fingerprint, threads, device)
        except Exception as exc:  # noqa: BLE001 - handed to the caller by ready()
            self.error = exc

    def _load(self, recipe, log, fingerprint, threads, device) -> None:
        torch.set_num_threads(threads)
        self.lm = build(recipe, device)
        if log is not None:
            with tempfile.TemporaryDirectory(prefix="ffn-widgets-log-") as folder:
                path = Path(folder) / "edits.safetensors"
                path.write_bytes(log)
                self.lm.edits.load(path)
        if self.lm.fingerprint != fingerprint:
            raise WorkerMismatch(
                f"The worker's copy of {self.lm.name} has weights {self.lm.fingerprint}, the caller's have "
                f"{fingerprint}: the caller's weights were changed outside the edit log (a write through .data, "
                "load_state_dict), or this node holds another version of the model. Workers rebuild the model "
                "from how it was loaded plus the edit log; load it again (or log the change as an edit).")

    def ready(self) -> int:
        if self.error is not None:
            raise self.error
        return os.getpid()

    def run(self, fn, *args, **kwargs):
        self.ready()
        return fn(self.lm, *args, **kwargs)
