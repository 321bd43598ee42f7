"""Where the front-end bundle lives, and what a view shows when it was not built.

Kept apart from :mod:`.base` so that the exporters read the bundle without importing the view classes.
"""
from __future__ import annotations

from pathlib import Path

BUNDLE = Path(__file__).resolve().parent.parent / "static" / "widget.js"

# Shown instead of the views when the bundle is missing; plain text only, no network.
NOT_BUILT_ESM = """
export default {
  render({ el }) {
    const box = document.createElement("div");
    box.style.cssText = "padding:8px 12px;border:1px solid #c0392b;border-radius:4px;color:#c0392b;font-family:sans-serif";
    box.textContent = "ffn_widgets: the front end was not built, so this widget cannot be drawn. " +
      "Build it with `make js` (or `cd js && npm ci && npm run build`) and restart the kernel.";
    el.appendChild(box);
  }
};
"""


def bundle_built() -> bool:
    return BUNDLE.is_file()


def bundle_text() -> str:
    """The current front-end bundle: the host of a saved page (it carries ``mountExports``)."""
    if not bundle_built():
        raise RuntimeError("ffn_widgets: the front end was not built, so views cannot be exported. "
                           "Build it with `make js` (or `cd js && npm ci && npm run build`).")
    return BUNDLE.read_text(encoding="utf-8")
