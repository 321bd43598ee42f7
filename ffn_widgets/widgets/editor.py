"""``Editor``: rewrite one fact with ROME, watch the optimisation converge, compare before and after, undo.

A form (the prompt, its subject, the new target, the layer — typed, or clicked on a strip of a per-layer
hint such as a causal trace's MLP indirect effects — and the method), then Apply: the edit runs as a task
on the kernel's event loop, one step at a time (key statistics batches, then each optimisation step, its
loss drawn live), so the notebook stays responsive and Cancel stops it between steps with the weights
untouched. Outside a kernel :meth:`Editor.apply` runs it in place. Afterwards: p(true) and p(new) before →
after on the prompt, its paraphrases and neighbouring facts, the greedy continuations before and after,
and the model's whole edit log (``lm.edits``, edits made from code included) with Undo per entry and Reset.

    ed = fw.Editor(lm, "The Eiffel Tower is located in the city of", "The Eiffel Tower", " Rome")
    ed                                   # press Apply, or from code:
    ed.apply(); ed.edit, ed.report       # the RomeEdit and its before/after EditReport
    ed.undo()                            # this edit off again, bit for bit; ed.reset(): all edits
    fw.Editor(lm, prompt, subject, layer_hint=trace["mlp"].indirect[:, last_subject_token])
    ed.show_in(explorer)                 # in the explorer's panel
    fw.Editor(lm, facts=facts, method="memit")   # batch mode: a list of facts (or a facts file) in one Apply,
                                                 # MEMIT / AlphaEdit (one entry) or ROME / r-ROME (one per fact)

The science is :func:`~ffn_widgets.editing.rome.rome_steps` and :func:`~ffn_widgets.editing.report.edit_report`;
this class drives and serialises them.
"""
from __future__ import annotations

import asyncio
import math
import weakref

import torch
import traitlets

from ..editing.rome import default_layer, default_layer_reason, rome_steps
from ..editing.stats import DEFAULT_TOKENS
from ..model import LM, InputError
from .base import ViewWidget, describe, handles
from .editor_batch import BATCH_METHODS, batch_job, check_batch
from .payload import comparison_rows, entry_key, finite_or_none
from .runner import StepRunner
from .serialize import pack

SINGLE_METHODS = ("r-rome", "rome")
CURVE_KEYS = ("step", "loss", "nll", "kl", "decay", "p_target", "delta_norm")


class Editor(ViewWidget):
    view = traitlets.Unicode("editor").tag(sync=True)
    prompt = traitlets.Unicode("").tag(sync=True)
    subject = traitlets.Unicode("").tag(sync=True)
    target = traitlets.Unicode("").tag(sync=True)
    layer = traitlets.Int(0).tag(sync=True)
    method = traitlets.Unicode("r-rome").tag(sync=True)
    n_layers = traitlets.Int(0).tag(sync=True)
    hint = traitlets.Dict({}).tag(sync=True)  # {"values": packed [n_layers], "peak": int, "label": str}
    status = traitlets.Unicode("idle").tag(sync=True)  # idle, running, done, cancelled, failed
    curve = traitlets.List([]).tag(sync=True)  # the running optimisation's steps (CURVE_KEYS)
    comparison = traitlets.Dict({}).tag(sync=True)  # the last edit's report, as plain JSON
    edit_log = traitlets.List([]).tag(sync=True)  # every entry of lm.edits
    prediction = traitlets.Dict({}).tag(sync=True)  # the model's top next token after the prompt, now
    batch = traitlets.List([]).tag(sync=True)  # batch mode: the facts to write [{prompt, subject, target}]
    methods = traitlets.List(list(SINGLE_METHODS)).tag(sync=True)

    def __init__(self, lm: LM, prompt: str | None = None, subject: str | None = None, target: str | None = None,
                 layer: int | None = None, fact: dict | None = None, paraphrases=(), neighbours=(),
                 layer_hint=None, *, hint_label: str | None = None, method: str = "r-rome", seed: int = 0,
                 tokens: int = DEFAULT_TOKENS, corpus=None, facts=None, settings=None, **kwargs):
        super().__init__(**kwargs)
        self.facts = check_batch(lm, facts) if facts is not None else None
        if self.facts is not None:
            prompt = prompt or self.facts[0]["prompt"]
            self.methods = list(BATCH_METHODS)
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"The editor needs a prompt to edit, got {prompt!r}.")
        if method not in self.methods:
            raise InputError(f"method must be one of {', '.join(self.methods)}, got {method!r}.")
        if fact is not None and not isinstance(fact, dict):
            raise InputError(f"fact must be a dict like the lines of the facts file, got {type(fact).__name__}.")
        from ..data.facts import target as continuation

        fact = fact or {}
        self.lm, self.fact, self.seed, self.tokens, self.corpus = lm, fact or None, seed, tokens, corpus
        self.settings = settings  # RomeSettings / MemitSettings for the edits made here (None: the defaults)
        self.paraphrases, self.neighbours = list(paraphrases), list(neighbours)
        self.edit = None  # the last RomeEdit this widget made (batch mode: the list of edits of the last Apply)
        self.report = None  # its EditReport
        self._runner = StepRunner(self._show, self._ended)
        self._failure: Exception | None = None
        self._mine: list = []  # log entries made here
        hint = _hint_values(lm, layer_hint)
        if layer is None:
            layer = int(torch.nan_to_num(hint, nan=-math.inf).argmax()) if hint is not None else default_layer(lm)
        with self.hold_sync():
            self.prompt, self.n_layers, self.method = prompt, lm.n_layers, method
            if self.facts is not None:
                self.batch = [{"prompt": f["prompt"], "subject": f["subject"], "target": continuation(f["target_new"])}
                              for f in self.facts]
            self.subject = subject if subject is not None else fact.get("subject", "")
            new = target if target is not None else fact.get("target_new")
            self.target = "" if new is None else (lm.continuation(prompt, new) if target is not None else continuation(new))
            self.layer = lm.check_layer(int(layer))
            if hint is not None:
                self.hint = {"values": pack(hint, "float32"), "label": hint_label or "layer hint",
                             "peak": int(torch.nan_to_num(hint, nan=-math.inf).argmax()),
                             "default": default_layer(lm), "default_reason": default_layer_reason(lm)}
            self.title = f"Edit: {prompt}" if self.facts is None else f"Edit {len(self.facts)} facts"
        self._refresh_due = False
        ref = weakref.ref(self)
        lm.edits.on_change(lambda _log: (w := ref()) is not None and w._log_changed_soon())
        self._log_changed()
        self.follow_weights(lm, "mark")

    # ---- the Python API ------------------------------------------------------------------------
    def apply(self, subject: str | None = None, target: str | None = None, layer: int | None = None,
              method: str | None = None):
        """Make the edit of the form's fields (or the given ones; batch mode: every fact, ``layer`` the last of
        MEMIT's range). Input errors raise at once. Inside a running event loop (a kernel) it continues as a
        background task and returns None (watch ``status``; ``edit`` and ``report`` once done); elsewhere it
        runs here and returns the :class:`RomeEdit` (batch mode: the list of edits written)."""
        self._check_idle()
        with self.hold_sync():
            if subject is not None:
                self.subject = str(subject)
            if target is not None:
                self.target = self.lm.continuation(self.prompt, str(target))  # the README's target rule
            if method is not None:
                if method not in self.methods:
                    raise InputError(f"method must be one of {', '.join(self.methods)}, got {method!r}.")
                self.method = method
            if layer is not None:
                self.layer = self.lm.check_layer(int(layer))
        self.error = ""
        if self.facts is not None:
            job = batch_job(self, self.facts, self.method, self.layer)
        else:
            job = self._single_job(rome_steps(self.lm, self.prompt, self.subject, self.target, self.layer,
                                              method=self.method, **self._edit_options()))
        first = next(job)  # the checks of subject, target, layer and dtype run before the first step
        with self.hold_sync():
            self._failure, self.curve, self.comparison, self.status = None, [], {}, "running"
            self._show(first)
        if self._runner.start(job, lm=self.lm):
            return None
        self._runner.finish()
        if self._failure is not None:
            raise self._failure
        return self.edit

    def cancel(self) -> None:
        """Stop the running edit before its next step; nothing is written."""
        self._runner.cancel()

    def undo(self, i=None) -> None:
        """Undo an edit, bit for bit: ``i`` an index into ``lm.edits`` (negative counts from the end), a log entry
        or a RomeEdit; None: this widget's last edit (batch mode: every edit of its last Apply) if it is still
        applied, else the log's last edit."""
        self._check_idle()
        log = self.lm.edits
        if i is None and isinstance(self.edit, list) and any(e.applied for e in self.edit):
            for e in reversed(self.edit):  # a batch Apply's edits, all of them
                if e.applied:
                    log.undo(e)
            return
        if i is None:
            i = self.edit if self.edit is not None and not isinstance(self.edit, list) and self.edit.applied else None
        elif isinstance(i, int) and not isinstance(i, bool):
            if not -len(log) <= i < len(log):
                raise InputError(f"There is no edit {i} in the log: it holds {len(log)} edit(s).")
            i = log.entries[i]
        log.undo(i)

    def reset(self) -> None:
        """Every edit of the model off: the weights as loaded, bit for bit."""
        self._check_idle()
        self.lm.edits.reset()

    def wait(self):
        """Finish a running edit here and now (continuing the background task's work) and return it."""
        self._runner.finish()
        return self.edit

    def show_in(self, explorer, title: str | None = None) -> "Editor":
        """Place this editor in an :class:`~ffn_widgets.Explorer`'s panel."""
        explorer.show(self, title or f"ROME edit: {self.prompt}")
        return self

    def _result(self):
        if self.report is None:
            raise InputError("No edit yet: press Apply (or call apply()) first.")
        return self.report

    # ---- running -------------------------------------------------------------------------------
    def _single_job(self, steps):
        """ROME's steps, then (no longer cancellable: the edit is written) the before/after report."""
        edit = yield from steps
        self.edit = edit
        self._mine.append(edit.entry)
        self._log_changed()
        yield {"message": "Measuring before and after the edit", "fraction": None, "cancellable": False}
        self._make_report()
        return edit

    def _edit_options(self) -> dict:
        options = {"seed": self.seed, "corpus": self.corpus, "tokens": self.tokens}
        return options if self.settings is None else {**options, "settings": self.settings}

    def _ended(self, status: str, value) -> None:
        with self.hold_sync():
            self.status, self.progress = status, {}
            if status == "failed":
                self._failure, self.error = value, describe(value)

    def _show(self, info: dict) -> None:
        self.progress = {"message": info.get("message", ""), "fraction": info.get("fraction"),
                         "stage": info.get("stage")}
        if info.get("stage") == "optimise":
            if info.get("step") == 0:
                self.curve = []  # batch mode: each fact's optimisation drawn anew
            point = {k: finite_or_none(info.get(k)) for k in CURVE_KEYS}
            if info.get("fraction"):
                point["of"] = round((info["step"] + 1) / info["fraction"])  # the planned number of steps
            self.curve = [*self.curve, point]

    def _make_report(self) -> None:
        from ..editing.report import edit_report

        edit = self.edit
        self.report = edit_report(edit, self.fact, paraphrases=self.paraphrases, neighbours=self.neighbours)
        rows = comparison_rows(self.report)
        with self.hold_sync():
            self.comparison = {"rows": rows, "continuations": dict(self.report.continuations), "layer": edit.layer,
                               "subject": edit.subject, "target": edit.target, "method": edit.method,
                               "delta_norm": finite_or_none(edit.delta_norm), "applied": edit.applied,
                               "key": entry_key(edit.entry)}
            self.weights_version, self.stale = self.lm.state_version, ""

    def _recompute(self) -> None:
        """The prediction on the current weights, and the last edit's report again while it is applied."""
        self._log_changed()
        if self.edit is not None and getattr(self.edit, "applied", False) and not self._runner.running:
            self._make_report()
        elif self.comparison:
            self.comparison = {**self.comparison, "applied": False}

    def _check_idle(self) -> None:
        if self._runner.running:
            raise InputError("An edit is being computed: wait for it to finish or press Cancel first.")

    # ---- the edit log --------------------------------------------------------------------------
    def _log_changed_soon(self) -> None:
        """In a kernel, refresh once the running code yields (a sweep's hundreds of edits and undos cost one
        refresh); elsewhere at once. A closed widget does nothing."""
        if self.comm is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._log_changed()
            return
        if not self._refresh_due:
            self._refresh_due = True
            loop.call_soon(self._log_changed)

    def _log_changed(self) -> None:
        """Called after every apply, undo, reset and load of ``lm.edits`` (errors shown here, never raised into
        the caller of the log)."""
        self._refresh_due = False
        try:
            log = self.lm.edits
            rows = []
            for i, e in enumerate(log.entries):
                r = e.row()
                rows.append({"key": entry_key(e), "index": i, "method": r["method"], "facts": e.facts, "layers": e.layers,
                             "norm": finite_or_none(r["update norm"]), "time": r["time"], "mine": e in self._mine})
            with self.hold_sync():
                self.edit_log = rows
                if self.comparison:
                    keys = self.comparison.get("keys") or [self.comparison.get("key")]
                    self.comparison = {**self.comparison, "applied": any(r["key"] in keys for r in rows)}
                self.prediction = self._predict()
        except Exception as exc:  # noqa: BLE001 - a log listener must not break lm.edits
            self.error = describe(exc)

    def _predict(self) -> dict:
        probs = self.lm.logits(self.prompt)[-1].softmax(-1)
        p, i = probs.max(-1)
        return {"token": self.lm.token_strings([int(i)])[0], "prob": float(p)}

    # ---- gestures ------------------------------------------------------------------------------
    @handles("apply")
    def _on_apply(self, msg):
        target = msg.get("target")
        layer = msg.get("layer")
        self.apply(subject=msg.get("subject"), target=target, method=msg.get("method"),
                   layer=None if layer is None else _layer(layer))

    @handles("cancel")
    def _on_cancel(self, msg):
        self.cancel()

    @handles("undo")
    def _on_undo(self, msg):
        key = msg.get("key")
        entry = next((e for e in self.lm.edits.entries if entry_key(e) == key), None)
        if entry is None:
            raise InputError("That edit is no longer in the log (undone or reset meanwhile).")
        self.undo(entry)

    @handles("reset")
    def _on_reset(self, msg):
        self.reset()


# ---- serialising ------------------------------------------------------------------------------------
def _layer(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        raise InputError(f"The layer must be a whole number, got {v!r}.") from None


def _hint_values(lm: LM, hint) -> torch.Tensor | None:
    """A per-layer hint as ``[n_layers]`` float32 (NaN where unknown): an array, a ``{layer: value}`` dict, or a
    layer sweep (:class:`~ffn_widgets.editing.evaluate.LayerSweep`: its score per layer)."""
    if hint is None:
        return None
    if hasattr(hint, "by_layer"):
        hint = {layer: m["score"] for layer, m in hint.by_layer().items()}
    if isinstance(hint, dict):
        out = torch.full((lm.n_layers,), float("nan"))
        for layer, v in hint.items():
            out[lm.check_layer(int(layer))] = float(v)
        return out
    try:
        out = torch.as_tensor(hint.detach().cpu() if hasattr(hint, "detach") else hint, dtype=torch.float32).flatten()
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"layer_hint must be one number per layer, got {type(hint).__name__}.") from None
    if out.numel() != lm.n_layers:
        raise InputError(f"layer_hint must have one value per layer ({lm.n_layers}), got {out.numel()}.")
    return out
