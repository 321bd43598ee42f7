"""The edit log: every weight edit of a model, in order, undoable to the bit.

Each entry stores its weight changes as low-rank factors (``W += left @ right`` in the matrix's
``[out, in]`` orientation) and the log keeps the original of every matrix it touched. Undo and reset do not
subtract in floating point: they restore the original and replay the remaining entries' factors in order,
the same operations on the same inputs, so the result is bit-identical to never having made the edit.

    e = fw.rome_edit(lm, prompt, subject="The Eiffel Tower", target=" Rome")
    lm.edits                    # the log; lm.edits.to_frame() as a table
    lm.edits.undo()             # the last edit; lm.edits.undo(e) any one (later ones kept, in order)
    lm.edits.reset()            # the weights as loaded
    with lm.edits.temporary():  # edits made inside are removed on exit, errors included
        ...
    lm.edits.save("edits.safetensors"); lm.edits.load("edits.safetensors")
"""
from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..model import LM, InputError
from ..model.identity import fingerprint
from ..model.long_runs import deferred_interrupt
from ..model.placement import writable

FORMAT = "ffn_widgets.edit_log"
VERSION = 1


@dataclass
class WeightDelta:
    """``W += left @ right`` for the weight of module ``path`` in ``[out, in]`` orientation (float32)."""

    path: str
    left: torch.Tensor  # [out, rank]
    right: torch.Tensor  # [rank, in]

    @property
    def norm(self) -> float:
        """Frobenius norm of the change (without forming it)."""
        gram = (self.left.T @ self.left) * (self.right @ self.right.T)
        return float(gram.sum().clamp_min(0).sqrt())


@dataclass(eq=False)
class LogEntry:
    """One edit call: its method, facts and layers, the weight changes, and when it landed."""

    method: str
    facts: list[dict]
    layers: list[int]
    deltas: list[WeightDelta]
    info: dict = field(default_factory=dict)  # norms, seconds, settings: shown in tables, saved with the log
    time: float = field(default_factory=time.time)
    version_after: int | None = None  # the model's weights version once this entry was applied
    crc_after: dict[str, int] = field(default_factory=dict)  # checksums of the touched matrices after it
    edit: object | None = None  # the edit object that made it (a RomeEdit...), when made in this process
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # what later edits of its method read (keys)

    def row(self) -> dict:
        facts = "; ".join(f"{f.get('subject', '?')} → {f.get('target', '?')!r}" for f in self.facts)
        return {"method": self.method, "facts": facts, "layers": ", ".join(map(str, self.layers)),
                "update norm": sum(d.norm for d in self.deltas),
                "time": time.strftime("%H:%M:%S", time.localtime(self.time)), "version": self.version_after,
                **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str))}}


class LoggedEdit:
    """What every edit object shares (``lm`` and ``entry`` attributes): whether its entry is in the log, undo,
    and ``with``, which undoes it when the block ends, errors included."""

    @property
    def applied(self) -> bool:
        return self.entry is not None and self.entry in self.lm.edits.entries

    def undo(self) -> None:
        self.lm.edits.undo(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.applied:
            self.undo()


def oriented_weight(module: torch.nn.Module) -> torch.Tensor:
    """The weight as ``[out, in]`` (a view: writes reach what the model computes with, offloaded or not)."""
    return LM.oriented_weight(module, writable=True)


def _crc(t: torch.Tensor) -> int:
    return zlib.crc32(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())


class EditLog:
    """The weight edits of one model (``lm.edits``); see the module docstring."""

    def __init__(self, lm):
        self.lm = lm
        self.entries: list[LogEntry] = []
        self.originals: dict[str, torch.Tensor] = {}  # path -> the matrix as loaded ([out, in] copy)
        self._base_fingerprint: str | None = None
        self._seen: dict[str, tuple[int, int]] = {}  # path -> (data_ptr, version) after our last write
        self._listeners: list[Callable[[EditLog], None]] = []

    # ---- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def __getitem__(self, i) -> LogEntry:
        return self.entries[i]

    def __bool__(self) -> bool:
        return True  # an empty log is still the log (``if lm.edits:`` would otherwise mislead)

    def __repr__(self):
        if not self.entries:
            return "EditLog(no edits: the weights are as loaded)"
        lines = [f"EditLog({len(self.entries)} edit{'s' * (len(self.entries) != 1)}):"]
        for i, e in enumerate(self.entries):
            r = e.row()
            lines.append(f"  {i}. {r['method']} at layer {r['layers']}: {r['facts']}  (‖ΔW‖ {r['update norm']:.3g})")
        return "\n".join(lines)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([e.row() for e in self.entries])

    @property
    def base_fingerprint(self) -> str:
        """The fingerprint of the weights as loaded (before any edit of this log): keys statistics caches,
        which ROME, MEMIT and AlphaEdit define on the unedited model."""
        if self._base_fingerprint is None or not self.entries:
            if self.entries:
                with self.original():
                    self._base_fingerprint = fingerprint(self.lm.model)
            else:
                self._base_fingerprint = self.lm.fingerprint
        return self._base_fingerprint

    def on_change(self, callback: Callable[["EditLog"], None]) -> None:
        """Call ``callback(log)`` after every apply, undo, reset and load (views refresh their edit lists)."""
        self._listeners.append(callback)

    # ---- writing -------------------------------------------------------------------------------
    def apply(self, entry: LogEntry) -> LogEntry:
        """Write ``entry``'s deltas into the weights and append it. Ctrl-C waits until the write is whole;
        any error on the way puts every touched matrix back as it was."""
        self._check_untouched()
        if not self.entries:
            self._base_fingerprint = self.lm.fingerprint
        paths = [d.path for d in entry.deltas]
        with deferred_interrupt():
            before = {p: self._weight(p).detach().clone() for p in paths}
            try:
                for p in paths:
                    self.originals.setdefault(p, before[p])
                for d in entry.deltas:
                    self._add(d)
                entry.version_after = self.lm.weights_version
                entry.crc_after = {p: _crc(self._weight(p)) for p in paths}
                self.entries.append(entry)
            except BaseException:
                with torch.no_grad():
                    for p, w in before.items():
                        self._weight(p).copy_(w)
                raise
            self._remember(paths)
        self._changed()
        return entry

    def undo(self, entry: LogEntry | object | None = None) -> LogEntry:
        """Remove the last edit, or ``entry`` (a log entry or the edit object that made it); later edits
        stay, in order, as the same weight changes."""
        self.lm.watch.make_way()  # before reading the log: a job holding the weights puts its own edits back first
        if not self.entries:
            raise InputError("There is no edit to undo: the weights are as loaded.")
        i = len(self.entries) - 1 if entry is None else self._index(entry)
        self._rebuild(self.entries[:i] + self.entries[i + 1:])
        return self._last_removed

    def reset(self) -> None:
        """Back to the weights as loaded, bit for bit."""
        self.lm.watch.make_way()
        self._rebuild([])

    def forget(self) -> None:
        """Drop the log and keep the current weights as they are (after writes made outside the log)."""
        self.lm.watch.make_way()
        self.entries, self.originals, self._seen, self._base_fingerprint = [], {}, {}, None
        self._changed()

    @contextmanager
    def temporary(self):
        """Edits made inside the ``with`` body are undone on exit, errors and Ctrl-C included."""
        self.lm.watch.make_way()  # the log as it stands, without a paused job's temporary edits
        keep, version = list(self.entries), self.lm.weights_version
        with self.lm.watch.editing() as hold:  # views hear of the weights once the body is done, not in between
            try:
                yield self
            finally:
                replayed = self.entries != keep
                if replayed:
                    self._rebuild([e for e in self.entries if e in keep])
                # the weights as before, bit for bit: replayed from the originals, or never written
                hold.restores = self.entries == keep and (replayed or self.lm.weights_version == version)

    @contextmanager
    def original(self):
        """The weights as loaded during the ``with`` body (every edit suspended), the edits back on exit."""
        self.lm.watch.make_way()
        keep = list(self.entries)
        if not keep:
            yield self
            return
        with self.lm.watch.editing(restores=True):
            self._rebuild([], notify=False)
            try:
                yield self
            finally:
                self._rebuild(keep, notify=False)

    @contextmanager
    def without(self, entry):
        """The weights without one edit during the ``with`` body (the others kept, in order), all back on exit:
        how an edit's "before" is measured once later edits exist."""
        self.lm.watch.make_way()
        keep = list(self.entries)
        i = self._index(entry)
        with self.lm.watch.editing(restores=True):
            self._rebuild(keep[:i] + keep[i + 1:], notify=False)
            try:
                yield self
            finally:
                self._rebuild(keep, notify=False)

    # ---- saving --------------------------------------------------------------------------------
    def save(self, path, extra: dict | None = None) -> Path:
        """Write the log to one safetensors file: the factors as tensors, the entries as JSON in its header
        (with ``extra``, JSON kept beside them and read back by :func:`saved_extra`: one file, one atomic write)."""
        from safetensors.torch import save_file

        path = Path(path)
        tensors, entries = {}, []
        for i, e in enumerate(self.entries):
            for j, d in enumerate(e.deltas):
                tensors[f"{i}.{j}.left"], tensors[f"{i}.{j}.right"] = d.left.contiguous(), d.right.contiguous()
            for name, t in e.state.items():
                tensors[f"{i}.state.{name}"] = t.contiguous()
            entries.append({"method": e.method, "facts": e.facts, "layers": e.layers, "info": _jsonable(e.info),
                            "time": e.time, "paths": [d.path for d in e.deltas], "crc_after": e.crc_after})
        meta = {"format": FORMAT, "version": VERSION, "model": self.lm.name,
                "base_fingerprint": self.base_fingerprint, "entries": entries, "extra": extra}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        save_file(tensors, tmp, metadata={"ffn_widgets": json.dumps(meta)})
        tmp.replace(path)
        return path

    def load(self, path) -> "EditLog":
        """Replace this log by the one saved at ``path``: reset, then replay its edits. Refused (weights
        untouched) when it was made for other weights; each replayed matrix is checked against its checksum."""
        self.lm.watch.make_way()
        meta, tensors = _read(path)
        if meta["base_fingerprint"] != self.base_fingerprint:
            raise InputError(f"{path} holds edits of other weights ({meta['model']}, fingerprint "
                             f"{meta['base_fingerprint']}); this model ({self.lm.name}) has {self.base_fingerprint}. "
                             "Load it into the model it was made for.")
        loaded = []
        for i, e in enumerate(meta["entries"]):
            deltas = [WeightDelta(p, tensors[f"{i}.{j}.left"], tensors[f"{i}.{j}.right"])
                      for j, p in enumerate(e["paths"])]
            state = {k.split(".", 2)[2]: t for k, t in tensors.items() if k.startswith(f"{i}.state.")}
            loaded.append(LogEntry(e["method"], e["facts"], e["layers"], deltas, e["info"], e["time"],
                                   crc_after={k: int(v) for k, v in e["crc_after"].items()}, state=state))
        keep = list(self.entries)
        try:
            self._rebuild(loaded, verify=True)
        except InputError:
            self._rebuild(keep)
            raise
        return self

    # ---- internals -----------------------------------------------------------------------------
    def _weight(self, path: str) -> torch.Tensor:
        return oriented_weight(self.lm.model.get_submodule(path))

    def _add(self, d: WeightDelta) -> None:
        w = self._weight(d.path)
        with torch.no_grad():
            change = d.left.to(w.device, torch.float32) @ d.right.to(w.device, torch.float32)
            w.add_(change.to(w.dtype))

    def _index(self, entry) -> int:
        for i, e in enumerate(self.entries):
            if e is entry or (e.edit is not None and e.edit is entry):
                return i
        raise InputError("That edit is not in this model's log (already undone, or made on another model).")

    def _rebuild(self, entries: list[LogEntry], notify: bool = True, verify: bool = False) -> None:
        """Weights = originals + ``entries`` replayed in order (exact: the same writes as when they landed)."""
        self._check_untouched()
        removed = [e for e in self.entries if e not in entries]
        paths = set(self.originals) | {d.path for e in entries for d in e.deltas}
        with deferred_interrupt():
            for p in paths:
                w = self._weight(p)
                self.originals.setdefault(p, w.detach().clone())
                with torch.no_grad():
                    w.copy_(self.originals[p])
            for e in entries:
                for d in e.deltas:
                    self._add(d)
                if verify and any(_crc(self._weight(p)) != c for p, c in e.crc_after.items()):
                    raise InputError(f"Replaying the saved edit '{e.method}' on {e.facts} did not give the saved "
                                     "weights (the file or the model differs).")
                e.version_after = self.lm.weights_version
            self.entries = list(entries)
            self._remember(paths)
        self._last_removed = removed[-1] if removed else None
        if not self.entries:
            self.originals = {}
        if notify:
            self._changed()

    def _remember(self, paths) -> None:
        for p in paths:
            w = writable(self.lm.model.get_submodule(p))
            self._seen[p] = (w.data_ptr(), w._version)

    def _check_untouched(self) -> None:
        self.lm.watch.make_way()  # a job holding the weights in between lets go first: nothing is lost
        for p, seen in self._seen.items():
            w = writable(self.lm.model.get_submodule(p))
            if (w.data_ptr(), w._version) != seen:
                raise InputError(f"The weights of {p} were changed outside the edit log since its last edit, so "
                                 "undo and reset could not restore them exactly. Call lm.edits.forget() to keep "
                                 "the weights as they are now and start a new log.")

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback(self)
        self.lm.watch.notify()  # views that show what the weights compute hear it too


def saved_extra(path) -> dict | None:
    """The ``extra`` JSON an edit log was saved with (None if none), read without touching any model."""
    return _read(path, tensors=False)[0].get("extra")


def _read(path, tensors: bool = True) -> tuple[dict, dict]:
    from safetensors import safe_open

    try:
        with safe_open(Path(path), "pt") as f:
            meta = json.loads(f.metadata()["ffn_widgets"])
            found = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise InputError(f"{path} is not a readable edit log ({type(exc).__name__}: {exc}).") from exc
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise InputError(f"{path} is not an edit log of this version of ffn_widgets.")
    return meta, found


def _jsonable(info: dict) -> dict:
    return {k: v for k, v in info.items() if isinstance(v, (int, float, str, bool, list, dict, type(None)))}
