"""``Localize``: where does a fact live? Every localisation method of the package per layer, side by side,
filling in live — the comparison Hase et al. (NeurIPS 2023) made, for any fact on any model.

    loc = fw.Localize(lm, fw.load_facts()[0], edit_layers=range(0, 30, 3))   # starts at once in a kernel
    loc                      # one row per measure, layers aligned; ROME's edit success in rows of their own
    loc.result               # the Localization so far (.figure(), .to_frame() here too)
    loc.select_layer(4)      # that layer's top neurons at the last token and the last subject token
    loc.open_card(4, 123)    # their neuron card (knowledge score and trace share joined) under the view
    fw.Localize(lm, fact, edit_layers=range(30), cluster=fw.cluster(workers=2))   # the edits on Ray workers

The numbers are :func:`~ffn_widgets.editing.localization.localize_steps`, run on the kernel's event loop one piece
at a time (each trace, the attribution, each optimisation step of each edit), so Cancel lands within an
edit; the edits are undone before each next piece, so the weights are left as they were however it ends.
"""
from __future__ import annotations

import re
import time

import traitlets
from ipywidgets import DOMWidget, widget_serialization

from ..analysis.neurons import top_neurons
from ..data.facts import target as as_target
from ..editing.localization import EDIT_MEASURES, MEASURES, Localization, as_fact, checked_request, localize_steps
from ..model import LM, InputError
from .base import ViewWidget, describe, handles
from .runner import PROGRESS_EVERY, StepRunner
from .serialize import neuron_rows, pack

FIELDS = ("prompt", "subject", "target", "target_new")
UNIT_MEASURES = (*EDIT_MEASURES, "value_agreement")  # fractions: their bars are drawn on 0..1, not to the row's peak
SHORT = {"trace_mlp": "trace: MLP, 1 layer", "trace_mlp_window": "trace: MLP, window 10",
         "kn_mass": "knowledge neurons: share", "lens_gain": "lens: rank gain (log10)",
         "value_push": "values: push on target", "value_agreement": "values: promote target", "edit_efficacy": "efficacy", "edit_paraphrase": "paraphrase",
         "edit_neighbourhood": "neighbourhood", "edit_rewrite": "rewrite score"}  # row labels; the full one on hover


class Localize(ViewWidget):
    view = traitlets.Unicode("localize").tag(sync=True)
    fact = traitlets.Dict({}).tag(sync=True)  # prompt, subject, target, target_new: text
    n_layers = traitlets.Int(0).tag(sync=True)
    measures = traitlets.Dict({}).tag(sync=True)  # name -> packed float32 [n_layers], NaN where not measured
    names = traitlets.List([]).tag(sync=True)  # [{"name", "label", "edit"}] in row order
    edit_layers = traitlets.List([]).tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)  # idle, running, done, cancelled, failed
    selected = traitlets.Int(-1).tag(sync=True)  # the clicked layer
    neurons = traitlets.Dict({}).tag(sync=True)  # {"layer", "target", "sites": [neuron_rows + "name"]}
    slot = traitlets.List(traitlets.Instance(DOMWidget)).tag(sync=True, **widget_serialization)
    slot_title = traitlets.Unicode("").tag(sync=True)

    def __init__(self, lm: LM, prompt: str | dict | None = None, subject: str | None = None, target: str | None = None,
                 target_new: str | None = None, *, fact: dict | None = None, edit_layers=None, start: bool = True,
                 index=None, k: int = 8, **localize_kwargs):
        """``index`` (a trigger index) gives the neuron cards their key side; ``k`` neurons are listed per
        site; ``localize_kwargs`` go to :func:`~ffn_widgets.localize` (``samples``, ``steps``, ``corpus``...;
        ``cluster=``, a kept ``fw.cluster(...)``, or the open block's: the edits run on its workers)."""
        from ..sharded.session import current

        super().__init__()
        if localize_kwargs.get("cluster") is None and current() is not None:
            localize_kwargs["cluster"] = current()  # the job outlives the cell: hold the block's cluster now
        self.lm, self.index, self.k, self.localize_kwargs = lm, index, k, localize_kwargs
        self.localization: Localization | None = None
        self.card = None  # the NeuronCard shown in the slot
        self._runner = StepRunner(self._on_step, self._ended)
        self._failure: Exception | None = None
        self._said = 0.0  # when the progress line was last updated
        raw = as_fact(prompt, subject, target, target_new, fact)
        self._fact, self._layers = checked_request(lm, raw, edit_layers)  # bad input: a clear error, nothing run
        with self.hold_sync():
            self.n_layers = lm.n_layers
            self.names = [{"name": n, "label": label, "short": SHORT.get(n, label), "edit": n in EDIT_MEASURES,
                           "unit": n in UNIT_MEASURES} for n, label in MEASURES.items()]
            self._show_fact()
        self.follow_weights(lm, "mark")
        if start:
            self.start()

    # ---- the Python API ------------------------------------------------------------------------
    @property
    def result(self) -> Localization | None:
        """The :class:`Localization` so far (None before the first part is measured)."""
        return self.localization

    def start(self, fact: dict | None = None, edit_layers=None):
        """Measure (another fact, or other edit layers, if given). In a kernel it continues in the background
        and returns None; elsewhere it runs here and returns the :class:`Localization`."""
        if self._runner.running:
            raise InputError("A localisation is running: wait for it or press Cancel first.")
        if fact is not None or edit_layers is not None:
            new_fact, layers = checked_request(self.lm, self._fact if fact is None else fact,
                                               self._layers if edit_layers is None else edit_layers)
            if any(new_fact[k] != self._fact[k] for k in ("prompt", "subject", "target_true")):
                self.show_card(None)
                self.neurons, self.selected = {}, -1
            self._fact, self._layers = new_fact, layers
        def job():
            return localize_steps(self.lm, self._fact, edit_layers=self._layers, **self.localize_kwargs)

        self.localization = None
        with self.hold_sync():
            self._show_fact()
            self.measures, self.status, self.error, self._failure = {}, "running", "", None
            self.progress = {"message": "Causal trace, MLP (window 1)", "fraction": 0.0}
        if self._runner.start(job(), lm=self.lm, restart=job):  # the weights moved between steps: start again
            return None
        self._runner.finish()
        if self._failure is not None:
            raise self._failure
        return self.localization

    def cancel(self) -> None:
        """Stop before the next piece of work (within an edit); the weights stay as they were."""
        self._runner.cancel()

    def wait(self) -> Localization | None:
        """Finish here and now (continuing the background task's work)."""
        self._runner.finish()
        return self.localization

    def select_layer(self, layer: int) -> dict:
        """List the layer's top neurons by contribution to the target, at the prompt's last token and at the
        last subject token (:func:`~ffn_widgets.top_neurons`); returns ``{site name: NeuronRanking}``."""
        layer = self.lm.check_layer(_whole(layer, "layer"))
        prompt, target = self._fact["prompt"], as_target(self._fact["target_true"])
        run = self.lm.run(prompt, capture=("neurons", "resid_post"))
        last_subject = self.lm.find_subject(prompt, self._fact["subject"])[1] - 1
        rankings = {name: top_neurons(self.lm, run, layer, position, self.k, by="contribution", target=target)
                    for name, position in (("last token", -1), ("last subject token", last_subject))}
        with self.hold_sync():
            self.selected = layer
            self.neurons = {"layer": layer, "target": target,
                            "sites": [neuron_rows(r, name=name) for name, r in rankings.items()]}
        return rankings

    def open_card(self, layer: int, neuron: int):
        """Open the neuron's card under the view (one card, reused), with this fact's knowledge-neuron scores
        and the MLP causal trace joined once they are measured."""
        from .neuron_card import NeuronCard

        layer, neuron = self.lm.check_unit((_whole(layer, "layer"), _whole(neuron, "neuron")))
        loc = self.localization
        knowledge = loc.knowledge if loc is not None else None
        trace = loc.traces.get("trace_mlp") if loc is not None else None
        target = as_target(self._fact["target_true"])
        if self.card is None or self.card.prompt != self._fact["prompt"]:
            self.card = NeuronCard(self.lm, layer, neuron, index=self.index, prompt=self._fact["prompt"],
                                   target=target, knowledge=knowledge, trace=trace)
        else:
            self.card.knowledge, self.card.trace, self.card.target = knowledge, trace, target
            self.card.set_neuron(layer, neuron)
        self.show_card(self.card, f"Neuron L{layer}.N{neuron}")
        return self.card

    def show_card(self, widget, title: str = "") -> None:
        """Place a widget in the slot under the view (``None`` empties it)."""
        with self.hold_sync():
            self.slot = [] if widget is None else [widget]
            self.slot_title = "" if widget is None else str(title)

    def _result(self):
        if self.localization is None:
            raise InputError("Nothing measured yet: start the localisation and wait for its first part.")
        return self.localization

    # ---- running -------------------------------------------------------------------------------
    def _on_step(self, event: dict) -> None:
        if event.get("stage") == "restart":  # the runner started the job again on new weights: nothing kept
            self.localization = None
            with self.hold_sync():
                self.measures, self.progress = {}, {"message": event["message"], "fraction": None}
            return
        now = time.monotonic()
        if event.get("polled") and now - self._said < PROGRESS_EVERY:
            return  # the cluster's workers polled, nothing new: the progress line was just updated
        self._said = now
        self.localization = event["result"]
        with self.hold_sync():
            if event.get("updated", True):
                self.measures = {k: pack(v, "float32") for k, v in self.localization.measures.items()}
            self.progress = {"message": event["message"], "fraction": event["fraction"]}

    def _ended(self, status: str, value) -> None:
        with self.hold_sync():
            self.status, self.progress = status, {}
            self.weights_version, self.stale = self.lm.state_version, ""  # its own edits are taken out again
            if status == "failed":
                self._failure, self.error = value, describe(value)

    def _recompute(self) -> None:
        """Measure again on the current weights (the Recompute button of a screen of earlier weights)."""
        if not self._runner.running:
            self.start()

    def _show_fact(self) -> None:
        f = self._fact
        self.fact = {"prompt": f["prompt"], "subject": f["subject"], "target": as_target(f["target_true"]),
                     "target_new": as_target(f["target_new"]) if f.get("target_new") else ""}
        self.edit_layers = list(self._layers)
        self.title = f"Localize: {f['subject']} → {self.fact['target']}"

    # ---- gestures ------------------------------------------------------------------------------
    @handles("start")
    def _on_start(self, msg):
        fact = None
        if any(msg.get(name) is not None for name in FIELDS):
            typed = {("target_true" if n == "target" else n): msg[n] for n in FIELDS if msg.get(n) is not None}
            same = all(typed.get(k, self._fact[k]) == self._fact[k] for k in ("prompt", "subject"))
            keep = self._fact if same else {k: self._fact.get(k) for k in ("prompt", "subject", "target_true",
                                                                           "target_new")}
            fact = {**keep, **typed}  # another fact: not this one's paraphrases and neighbours
        layers = msg.get("edit_layers")
        if isinstance(layers, str):
            layers = range(self.lm.n_layers) if layers.strip().lower() == "all" else parse_layers(layers)
        self.start(fact, layers)

    @handles("cancel")
    def _on_cancel(self, msg):
        self.cancel()

    @handles("select")
    def _on_select(self, msg):
        self.select_layer(msg.get("layer"))

    @handles("open_card")
    def _on_open_card(self, msg):
        self.open_card(msg.get("layer"), msg.get("neuron"))

    @handles("close_card")
    def _on_close_card(self, msg):
        self.show_card(None)


def parse_layers(text: str) -> list[int]:
    """``"0, 4, 8-10"`` → ``[0, 4, 8, 9, 10]``; ``"none"`` or empty → ``[]``."""
    out = []
    for part in re.split(r"[,\s]+", text.strip()):
        if not part or part.lower() == "none":
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if m is None:
            raise InputError(f"Edit layers are numbers and ranges like '0, 4, 8-10', got {part!r}.")
        a, b = int(m[1]), int(m[2] or m[1])
        out += range(a, b + 1)
    return out


def _whole(v, name: str) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        raise InputError(f"The {name} must be a whole number, got {v!r}.") from None
