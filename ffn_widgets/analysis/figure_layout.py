"""Layout rules every ``.figure()`` shares, so a figure lays out without clipping or overlap at any width
from about 800 to 1400+ px: no fixed width, a height from the data (px per row plus the margins the title
and axes need), margins grown by plotly's automargin, and each heatmap panel's colour bar in its own gap.

    fig = make_subplots(rows=1, cols=3, horizontal_spacing=BAR_GAP, subplot_titles=...)
    ...
    colorbars_beside(fig)
    fig.update_layout(title=title("Causal trace", "clean p = ..."))
    return sized(fig, ROW_PX * n_tokens, lines=2, panel_titles=True)
"""
from __future__ import annotations

import math

ROW_PX = 24  # a heatmap row or a bar: room for one line of tick label
MIN_PLOT_PX = 200  # shorter plot areas crowd a colour bar's ticks
BAR_GAP = 0.1  # of the plot width after each panel, for its colour bar (70 px at 800 px wide)
_TITLE_LINE_PX, _PANEL_TITLE_PX = 28, 30


def title(text: str, sub: str | None = None) -> dict:
    """A title pinned to the top of the figure (``sub``: plotly's subtitle, a smaller second line); it
    pushes the top margin rather than overlap the plot if it needs more room than :func:`sized` left."""
    out = {"text": text, "y": 1, "yref": "container", "yanchor": "top", "pad": {"t": 12}, "automargin": True}
    if sub is not None:
        out["subtitle"] = {"text": sub}
    return out


def sized(fig, plot_px: float, *, lines: int = 1, panel_titles: bool = False, bottom: int = 60,
          min_plot_px: int = MIN_PLOT_PX):
    """Height = a plot area of ``plot_px`` (at least ``min_plot_px``) plus the top margin for ``lines``
    title lines (and subplot titles) and ``bottom`` for the x axis; left and right margins start small and
    grow to fit the labels, legends and colour bars (automargin)."""
    top = 20 + _TITLE_LINE_PX * lines + (_PANEL_TITLE_PX if panel_titles else 0)
    if panel_titles:
        fig.update_annotations(font_size=14)
    fig.update_layout(height=int(top + bottom + max(min_plot_px, plot_px)), width=None,
                      margin={"l": 10, "r": 10, "t": top, "b": bottom})
    return fig


def colorbars_beside(fig, thickness: int = 10) -> None:
    """Each trace's colour bar just right of its own panel (``x`` = the end of its x axis' domain), in
    the gap that ``horizontal_spacing=BAR_GAP`` leaves; the last one pushes the right margin."""
    for trace in fig.data:
        axis = fig.layout["xaxis" + (trace.xaxis or "x")[1:]]
        trace.colorbar.update(x=axis.domain[1], xanchor="left", xpad=6, y=0.5, yanchor="middle", len=1,
                              thickness=thickness)


def log_ticks(max_value: float, plot_px: float) -> dict:
    """A log axis' ticks: 1, 2, 5, 10, ... where a decade has room for three labels, else powers of ten
    (plotly's own choice on a short axis labels 8 and 9 on top of each other)."""
    decades = max(1.0, math.log10(max(float(max_value), 1.0) * 2))
    return {"dtick": "D2" if plot_px / decades >= 60 else 1}


def integer_ticks(n: int) -> dict:
    """Axis settings for ``n`` layers: whole-number ticks (plotly picks 0.2, 0.5... on short ranges)."""
    return {"tick0": 0, "dtick": 1} if n <= 12 else {}


def clip(text: str, n: int = 60) -> str:
    """``text`` shortened to ``n`` characters for a title: plotly does not wrap, a long prompt overflows."""
    return text if len(text) <= n else text[: n - 1] + "…"
