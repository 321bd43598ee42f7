"""``jupyter nbconvert --to ffn_html``: a notebook as HTML in which the ffn_widgets views still work, offline.

nbconvert's own HTML exporter draws widget outputs only from the widget state saved in the notebook, with
``@jupyter-widgets/html-manager`` loaded from a CDN: offline the views stay blank, and without saved state it
falls back to the output's ``text/html`` (our static still, :mod:`ffn_widgets.widgets.snapshot`). This exporter is
the HTML exporter plus one preprocessor: each of our views whose state the notebook saved becomes the same
page parts as ``view.to_html`` (:mod:`ffn_widgets.widgets.export`) — bundle inlined once, no network, no kernel —
and our models leave the notebook's widget metadata, so the CDN loader is added only for other widgets.

    jupyter nbconvert --to ffn_html notebook.ipynb              # state saved (Lab: Settings → Save Widget State
                                                                  # Automatically; headless runs save it)
    jupyter nbconvert --to ffn_html --execute notebook.ipynb    # runs it first, so the state is there

Without the entry point installed, ``--to ffn_widgets.widgets.notebook_html.FFNHTMLExporter`` does the same.
"""
from __future__ import annotations

import re

from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor

from .bundle import bundle_text
from .export import modules_block, split_modules, state_block, view_block

VIEW_MIME = "application/vnd.jupyter.widget-view+json"
STATE_MIME = "application/vnd.jupyter.widget-state+json"
_OUR_REPR = re.compile(r"^<ffn_widgets\.")
_REF = re.compile(r"^IPY_MODEL_([0-9a-f]+)$")
NOT_SAVED = ('<div class="ffn-widgets-unsaved" style="font-family:system-ui,sans-serif;font-size:13px;color:#6a737d;'
             'border:1px dashed #d0d7de;border-radius:4px;padding:8px 10px">This ffn_widgets view was not saved with '
             "the notebook. Export with <code>jupyter nbconvert --to ffn_html --execute</code>, or save the notebook "
             "from JupyterLab with Settings → Save Widget State Automatically on.</div>")


def is_ours(model: dict) -> bool:
    return model.get("model_module") == "anywidget" and str(model.get("state", {}).get("_anywidget_id", "")).startswith(
        "ffn_widgets.")


def references(state: dict, root: str) -> list[str]:
    """``root`` and every model its state refers to (``"IPY_MODEL_<id>"`` strings), recursively."""

    def refs(value):
        if isinstance(value, str):
            m = _REF.match(value)
            if m:
                yield m.group(1)
        elif isinstance(value, list):
            for v in value:
                yield from refs(v)
        elif isinstance(value, dict):
            for v in value.values():
                yield from refs(v)

    found, todo = [], [root]
    while todo:
        mid = todo.pop()
        if mid in found or mid not in state:
            continue
        found.append(mid)
        todo.extend(refs(state[mid].get("state", {})))
    return found


class WidgetViewsPreprocessor(Preprocessor):
    """Replace our widget outputs by the saved page parts (see the module docstring)."""

    def preprocess(self, nb, resources):
        saved = nb.metadata.get("widgets", {}).get(STATE_MIME) or {}
        state = saved.get("state") or {}
        outputs = [o for cell in nb.cells for o in cell.get("outputs", []) if VIEW_MIME in o.get("data", {})]
        roots = [o for o in outputs if is_ours(state.get(o["data"][VIEW_MIME].get("model_id"), {}))]
        if roots:
            split, texts = split_modules({**saved, "state": state}, bundle_text())
            closures = [references(state, o["data"][VIEW_MIME]["model_id"]) for o in roots]
            needed = {"main"} | {split["modules"][m] for c in closures for m in c if m in split["modules"]}
            for i, (out, closure) in enumerate(zip(roots, closures)):
                part = {"version_major": 2, "version_minor": 0, "state": {m: split["state"][m] for m in closure},
                        "modules": {m: k for m, k in split["modules"].items() if m in closure}}
                html = view_block(closure[0]) + state_block(part)
                if i == 0:  # the bundle(s) and the bootstrap once per page
                    html += modules_block({k: t for k, t in texts.items() if k in needed})
                out["data"] = {"text/html": html, "text/plain": out["data"].get("text/plain", "")}
        for out in outputs:  # ours without saved state: the still if it has one, else what to do
            data = out["data"]
            if VIEW_MIME in data and data[VIEW_MIME].get("model_id") not in state and _OUR_REPR.match(
                    str(data.get("text/plain", ""))):
                out["data"] = {"text/html": data.get("text/html", NOT_SAVED), "text/plain": data.get("text/plain", "")}
        if roots:  # the models other widget outputs still need stay; none left means no CDN loader at all
            keep = [m for o in outputs if VIEW_MIME in o["data"] for m in references(state, o["data"][VIEW_MIME]["model_id"])]
            if keep:
                nb.metadata["widgets"][STATE_MIME] = {**saved, "state": {m: state[m] for m in keep}}
            else:
                nb.metadata.pop("widgets", None)
        return nb, resources


class FFNHTMLExporter(HTMLExporter):
    """nbconvert's HTML exporter with the ffn_widgets views drawn from the saved state, offline."""

    export_from_notebook = "HTML with ffn_widgets views"

    def _init_preprocessors(self):
        super()._init_preprocessors()
        self.register_preprocessor(WidgetViewsPreprocessor, enabled=True)  # after --execute, which saves the state
