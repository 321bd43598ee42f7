"""A still of a view as a little static HTML: the ``text/html`` fallback in each view's output.

Where no widget manager draws the view — ``jupyter nbconvert --to html`` of a notebook saved without widget
state (JupyterLab's default), GitHub's and nbviewer's notebook previews — the output shows this instead of
``<ffn_widgets...object at 0x…>``: the view's name, its prompt and predictions, and for the prompt views a
tiny PNG of the activation heatmap (layers × tokens), a few kilobytes per view, not the megabytes of a
working copy. A working copy comes from ``view.to_html(path)`` or ``jupyter nbconvert --to ffn_html``.
Model text is escaped: it is shown as text, never as HTML.
"""
from __future__ import annotations

import base64
import html
import struct
import zlib

import numpy as np

NOTE = ("A still of an interactive ffn_widgets view: run the notebook to use it, or save a working copy with "
        "view.to_html(path) or jupyter nbconvert --to ffn_html.")
_LOW, _HIGH = np.array([247, 251, 255], float), np.array([8, 48, 107], float)  # white to dark blue


def png(rgb: np.ndarray) -> bytes:
    """``rgb`` uint8 [h, w, 3] as PNG bytes (no imaging library needed for a few hundred pixels)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def heatmap_png(grid: np.ndarray) -> bytes:
    """[layers, tokens] values as a PNG, the top layer on top, coloured up to the 99th percentile of |value|."""
    a = np.nan_to_num(np.abs(np.asarray(grid, dtype=np.float32)))[::-1]
    top = float(np.percentile(a, 99)) if a.size else 0.0
    t = np.clip(a / top, 0, 1)[..., None] if top > 0 else np.zeros(a.shape + (1,))
    return png((_LOW + (_HIGH - _LOW) * t).round().astype(np.uint8))


def _text(s) -> str:
    return html.escape(str(s), quote=True)


def snapshot_html(view) -> str:
    """The fallback HTML of ``view`` (any ffn_widgets widget); never raises: a still is not worth an error."""
    name = type(view).__name__
    lines = [f'<div style="font-weight:600">{_text(name)}'
             + (f" · {_text(view.title)}" if getattr(view, "title", "") else "") + "</div>"]
    try:
        lines += _prompt_lines(view)
    except Exception:  # noqa: BLE001 - a partial or unusual state: the name and the note are enough
        pass
    lines.append(f'<div style="color:#6a737d;font-size:11px;margin-top:4px">{_text(NOTE)}</div>')
    return ('<div class="ffn-widgets-snapshot" style="font-family:system-ui,sans-serif;font-size:13px;'
            'border:1px solid #d0d7de;border-radius:4px;padding:8px 10px;max-width:900px">'
            + "".join(lines) + "</div>")


def _prompt_lines(view) -> list[str]:
    data = getattr(view, "data", None)
    if not isinstance(data, dict) or not data.get("tokens"):
        return []
    from .serialize import unpack

    out = [f'<div>prompt: <code style="white-space:pre-wrap">{_text(data.get("prompt", ""))}</code></div>']
    preds = data.get("predictions") or []
    if preds:
        shown = ", ".join(f"<code>{_text(repr(p['text']))}</code> {float(p['prob']):.2f}" for p in preds[:5])
        out.append(f"<div>next token: {shown}</div>")
    grid = (data.get("grids") or {}).get("max_act")
    if grid is not None:
        g = unpack(grid)
        layers, tokens = g.shape
        uri = "data:image/png;base64," + base64.b64encode(heatmap_png(g)).decode("ascii")
        width, height = min(900, 36 * tokens), max(40, min(360, 8 * layers))
        out.append(f'<div style="margin-top:4px;color:#444;font-size:11px">largest |MLP activation| per layer '
                   f"(rows: layers {layers - 1}…0, top to bottom; columns: the {tokens} tokens)</div>"
                   f'<img alt="MLP activation heatmap" src="{uri}" style="display:block;width:{width}px;'
                   f'max-width:100%;height:{height}px;image-rendering:pixelated;border:1px solid #d0d7de">')
    return out
