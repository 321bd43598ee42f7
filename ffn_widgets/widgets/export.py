"""Views as one self-contained HTML file: a page to send to someone without a kernel.

    ex = fw.Explorer(lm, "The Eiffel Tower is located in the city of")
    ex.to_html("eiffel.html")                       # or fw.export_html([ex, sliders], "lesson.html", title="…")

The file holds the front-end bundle and every view's synced state (binary arrays base64, the widgets a view
embeds included), and a tiny host (``js/src/standalone.ts``) plays the kernel's part: whatever a view does in
the browser — hover, clicking cells, the statistic and lens switches, the neuron tables already sent — works
when the file is opened from disk, with no network; a gesture that needs the kernel shows a "needs a running
kernel" notice. The state is the ipywidgets embed format, so a notebook's saved widget state goes through the
same page parts (:mod:`ffn_widgets.widgets.notebook_html`). All inlined JSON has ``<`` escaped: no ``</script>``.
"""
from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from .bundle import bundle_text

STATE_TYPE = "application/x-ffn-widgets-state+json"
VIEW_TYPE = "application/x-ffn-widgets-view+json"
MODULE_TYPE = "application/x-ffn-widgets-module"

# Loads the bundle from its inlined text (a Blob URL import works from file://) and draws every saved view.
BOOTSTRAP = """<script type="module">
if (!window.ffnWidgetsBooted) {
  window.ffnWidgetsBooted = true;
  const texts = {};
  for (const el of document.querySelectorAll('script[type="%(module)s"]')) texts[el.dataset.ffnModule] = JSON.parse(el.textContent);
  const load = (text) => import(URL.createObjectURL(new Blob([text], { type: "text/javascript" })));
  try {
    const main = await load(texts.main);
    await main.mountExports(document, main.default, texts, load);
  } catch (err) {
    for (const el of document.querySelectorAll("[data-ffn-view]")) {
      const p = document.createElement("p");
      p.textContent = "This saved view could not start: " + err;
      el.append(p);
    }
  }
}
</script>""" % {"module": MODULE_TYPE}

PAGE_CSS = """
body { margin: 0; background: #fff; color: #1f2328; font-family: system-ui, sans-serif; }
.ffn-export-page { max-width: 1280px; margin: 0 auto; padding: 12px 20px 40px; }
.ffn-export-page h1 { font-size: 18px; font-weight: 600; margin: 8px 0 4px; }
.ffn-export-note { color: #6a737d; font-size: 12px; margin: 0 0 12px; }
.ffn-export-view + .ffn-export-view { margin-top: 24px; }
"""


def script_json(value) -> str:
    """JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` escaped, so no ``</script>`` or
    ``<!--`` can end it early (``JSON.parse`` reads the escapes back as the same characters)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _as_list(views) -> list:
    from ipywidgets import Widget

    views = [views] if isinstance(views, Widget) else list(views)
    if not views or not all(isinstance(v, Widget) for v in views):
        raise TypeError("export_html takes a widget or a list of widgets, e.g. fw.export_html([ex], 'page.html').")
    return views


def saved_state(views, complete_first: bool = True) -> dict:
    """The ipywidgets embed state of ``views`` and every widget they refer to (``IPY_MODEL_`` references
    resolved recursively), buffers base64, without defaults dropped: each model's state is its ``get_state()``."""
    from ipywidgets.embed import dependency_state

    views = _as_list(views)
    if complete_first:
        for w in _closure(views):  # embedded views stream too (an ActivationHeatmap in a slot)
            if isinstance(getattr(w, "settle", None), Callable):
                w.settle()
    return {"version_major": 2, "version_minor": 0, "state": dependency_state(views, drop_defaults=False)}


def _closure(views: list) -> list:
    """``views`` and the widgets their synced traits hold, recursively (what ``dependency_state`` follows)."""
    from ipywidgets import Widget

    def inside(value):
        if isinstance(value, Widget):
            yield value
        elif isinstance(value, (list, tuple)):
            for v in value:
                yield from inside(v)
        elif isinstance(value, dict):
            for v in value.values():
                yield from inside(v)

    found: dict[str, Widget] = {}
    todo = list(views)
    while todo:
        w = todo.pop()
        if w.model_id not in found:
            found[w.model_id] = w
            todo.extend(ref for key in w.keys for ref in inside(getattr(w, key, None)))
    return list(found.values())


def split_modules(saved: dict, main: str) -> tuple[dict, dict[str, str]]:
    """Take each anywidget model's ``_esm`` text out of its state so the page carries each module once:
    the current bundle is ``"main"``; a model whose ``_esm`` differs (an older bundle in a saved notebook,
    another anywidget) gets a key of its own in ``saved["modules"]``."""
    texts, keys, modules, out = {"main": main}, {main: "main"}, {}, {}
    for model_id, m in saved["state"].items():
        state = m.get("state", {})
        esm = state.get("_esm")
        if m.get("model_module") == "anywidget" and isinstance(esm, str):
            key = keys.get(esm)
            if key is None:
                key = keys[esm] = f"m{len(texts)}"
                texts[key] = esm
            if key != "main":
                modules[model_id] = key
            m = {**m, "state": {k: v for k, v in state.items() if k != "_esm"}}
        out[model_id] = m
    return {**saved, "state": out, "modules": {**saved.get("modules", {}), **modules}}, texts


def view_block(model_id: str) -> str:
    """Where one view is drawn: the host finds ``[data-ffn-view]`` and the model id inside."""
    return (f'<div class="ffn-export-view" data-ffn-view><script type="{VIEW_TYPE}">'
            f'{script_json({"model_id": model_id})}</script></div>')


def state_block(saved: dict) -> str:
    return f'<script type="{STATE_TYPE}">{script_json(saved)}</script>'


def modules_block(texts: dict[str, str]) -> str:
    """The bundle(s) as JSON strings (exact text back from ``JSON.parse``) and the bootstrap that imports them."""
    parts = [f'<script type="{MODULE_TYPE}" data-ffn-module="{html.escape(key)}">{script_json(text)}</script>'
             for key, text in texts.items()]
    return "\n".join([*parts, BOOTSTRAP])


def page(saved: dict, texts: dict[str, str], roots: Iterable[str], title: str, heading: bool = True) -> str:
    """A whole HTML document drawing the models ``roots`` of ``saved``."""
    head = f"<h1>{html.escape(title)}</h1>\n" if heading else ""
    views = "\n".join(view_block(r) for r in roots)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{PAGE_CSS}</style>
</head>
<body>
<main class="ffn-export-page">
{head}<p class="ffn-export-note">A saved ffn_widgets view: hover and click work here; changing the prompt or
picking a neuron needs a running kernel.</p>
{views}
</main>
{state_block(saved)}
{modules_block(texts)}
</body>
</html>
"""


def html_page(views, title: str | None = None) -> str:
    """The self-contained page of ``views`` as text (see :func:`export_html`)."""
    views = _as_list(views)
    saved, texts = split_modules(saved_state(views), bundle_text())
    name = title if title is not None else "ffn_widgets: " + ", ".join(type(v).__name__ for v in views)
    return page(saved, texts, [v.model_id for v in views], name, heading=title is not None)


def export_html(views, path: str | Path, title: str | None = None) -> Path:
    """Write ``views`` (a widget or a list) and every widget they embed as one self-contained HTML file
    that works opened from disk, offline, without a kernel; returns the path."""
    path = Path(path)
    path.write_text(html_page(views, title), encoding="utf-8")
    return path
