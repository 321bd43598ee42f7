"""Every ``.figure()`` laid out by plotly.js in headless Chromium (plotly.js bundled, offline) at 900 and
1400 px wide: no text outside the figure, no two texts overlapping, no colour bar over a plot area or
another colour bar. Text boxes are the rendered boxes, rotated with their text (getBBox + screen CTM).
``FFN_WIDGETS_SHOTS=dir`` also keeps a PNG of each figure at 900 px there, to look at."""
import json
import os
import shutil
from pathlib import Path

import pytest

import ffn_widgets as fw

from .lab import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.real_model]

PROMPT = "The Eiffel Tower is located in the city of"
WIDTHS = (900, 1400)
INSIDE, OVERLAP = 1.5, 1.0  # px of tolerance

# Per figure: every visible text's corners (rotation included), the plot areas, colour bars and legends.
MEASURE = """() => [...document.querySelectorAll('.js-plotly-plot')].map(div => {
  const box = r => ({left: r.left, top: r.top, right: r.right, bottom: r.bottom});
  const shown = el => el.getClientRects().length && el.getBoundingClientRect().width > 0;
  const texts = [];
  for (const el of div.querySelectorAll('svg.main-svg text')) {
    const text = el.textContent.trim();
    if (!text || !shown(el) || getComputedStyle(el).visibility === 'hidden') continue;
    const b = el.getBBox(), m = el.getScreenCTM();
    const corners = [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]]
      .map(([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]);
    const inPlot = !!el.closest('.annotation, .overplot, g.plot');
    texts.push({text, corners, chrome: !inPlot, where: el.closest('g[class]').getAttribute('class')});
  }
  const boxes = sel => [...div.querySelectorAll(sel)].filter(shown).map(el => box(el.getBoundingClientRect()));
  return {name: div.id, svg: box(div.querySelector('svg.main-svg').getBoundingClientRect()), texts,
          plots: boxes('.draglayer .nsewdrag'), colorbars: boxes('g.colorbar'), legends: boxes('g.legend')};
})"""


@pytest.fixture(scope="module")
def figures(default_lm, tiny_lm, tmp_path_factory):
    """Every figure the package draws: the real model where its labels matter, tiny random models elsewhere."""
    from ffn_widgets.analysis.knowledge import knowledge_experiment, knowledge_neurons
    from ffn_widgets.analysis.neuron_card import neuron_card
    from ffn_widgets.analysis.scaling import SliderEngine
    from ffn_widgets.memories.mining import mine_triggers
    from ffn_widgets.tracing.average import average

    lm = default_lm
    trace = fw.causal_trace(lm, "The iPod was developed by", "The iPod", kind="all", samples=2, progress=False)
    lens = fw.logit_lens(lm, PROMPT, target=" Paris")
    corpus = fw.load_corpus("lee", max_sentences=12)
    index = mine_triggers(tiny_lm, corpus, k=5, path=tmp_path_factory.mktemp("fig") / "idx", progress=False)
    stats = fw.geva_stats(tiny_lm, index, triggers=3, examples=40, permutations=3)
    fact = {"subject": "The Eiffel Tower", "prompt": PROMPT, "target_true": "Paris",
            "paraphrases": ["The Eiffel Tower can be found in the city of"]}
    explorer = fw.Explorer(lm, PROMPT, target=" Paris")
    avg = average([trace])
    return {
        "causal trace": trace.figure(),
        "causal trace (attn)": trace["attn"].figure(),
        "trace average": avg.figure(),
        "trace average line": avg.line_figure(),
        "logit lens": lens.figure(),
        "logit lens rank": lens.figure("mid", "rank"),
        "explorer heatmap": explorer.figure(),
        "explorer contributions": explorer.figure("contrib"),
        "value tokens": fw.value_tokens(lm, 20, 100).figure(),
        "top neurons": fw.top_neurons(lm, PROMPT, 20, by="contribution", target=" Paris").figure(),
        "prediction": SliderEngine(lm, PROMPT, target=" Paris").original.figure(),
        "neuron card": neuron_card(tiny_lm, 1, 5, index, prompt=PROMPT).figure(),
        "trigger histogram": index.figure(1, 5, mark=0.5),
        "geva agreement": stats.figure("agreement"),
        "geva composition": stats.figure("composition"),
        "token dependence": fw.token_dependence(tiny_lm, index, layers=[0, 1], neurons=6, triggers=2).figure(),
        "knowledge neurons": knowledge_neurons(tiny_lm, PROMPT, " Paris", fact["paraphrases"], steps=3,
                                               threshold=0.1, share=0.5).figure(),
        "knowledge experiment": knowledge_experiment(tiny_lm, [fact], steps=3, threshold=0.1).figure(),
    }


def page_html(figures: dict, width: int) -> str:
    """One page, plotly.js inlined once, each figure in its own div at ``width`` px."""
    from plotly.offline import get_plotlyjs

    divs, calls = [], []
    for i, (name, fig) in enumerate(figures.items()):
        spec = json.loads(fig.to_json())
        spec["layout"]["width"] = width
        divs.append(f'<div id="{name}" style="width:{width}px"></div>')
        calls.append(f"Plotly.newPlot(document.getElementById({json.dumps(name)}), {json.dumps(spec['data'])}, "
                     f"{json.dumps(spec['layout'])}, {{displayModeBar: false}})")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><script>{get_plotlyjs()}</script></head>"
            f"<body style='margin:0'>{''.join(divs)}<script>window.drawn = Promise.all([{', '.join(calls)}])"
            ".then(() => true)</script></body></html>")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM} (set FFN_WIDGETS_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def overlap(a, b) -> float:
    """Penetration depth of two convex quads (separating axes): <= 0 when they are apart."""
    depth = float("inf")
    for quad in (a, b):
        for i in range(4):
            (x0, y0), (x1, y1) = quad[i], quad[(i + 1) % 4]
            nx, ny = y0 - y1, x1 - x0
            norm = (nx * nx + ny * ny) ** 0.5 or 1.0
            pa = [(x * nx + y * ny) / norm for x, y in a]
            pb = [(x * nx + y * ny) / norm for x, y in b]
            depth = min(depth, min(max(pa), max(pb)) - max(min(pa), min(pb)))
    return depth


def quad(r) -> list:
    return [[r["left"], r["top"]], [r["right"], r["top"]], [r["right"], r["bottom"]], [r["left"], r["bottom"]]]


def problems(fig: dict) -> list[str]:
    svg, texts, out = fig["svg"], fig["texts"], []
    for t in texts:
        xs, ys = [x for x, _ in t["corners"]], [y for _, y in t["corners"]]
        cut = {"left": svg["left"] - min(xs), "right": max(xs) - svg["right"], "top": svg["top"] - min(ys),
               "bottom": max(ys) - svg["bottom"]}
        for side, by in cut.items():
            if by > INSIDE:
                out.append(f"{t['text']!r} ({t['where']}) is cut {by:.0f} px on the {side}")
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            if overlap(a["corners"], b["corners"]) > OVERLAP:
                out.append(f"{a['text']!r} ({a['where']}) overlaps {b['text']!r} ({b['where']})")
    plots = [quad(p) for p in fig["plots"]]
    for t in texts:
        if t["chrome"] and any(overlap(t["corners"], p) > OVERLAP for p in plots):
            out.append(f"{t['text']!r} ({t['where']}) is drawn over a plot area")
    bars = [quad(c) for c in fig["colorbars"]]
    for i, bar in enumerate(bars):
        if any(overlap(bar, p) > OVERLAP for p in plots):
            out.append(f"colour bar {i + 1} is drawn over a plot area")
        if any(overlap(bar, other) > OVERLAP for other in bars[i + 1:] + [quad(g) for g in fig["legends"]]):
            out.append(f"colour bar {i + 1} overlaps another colour bar or a legend")
    return out


def test_no_figure_is_wider_than_a_notebook(figures):
    """A fixed width overflows a narrow notebook; the height comes from the data."""
    wide = {name: fig.layout.width for name, fig in figures.items() if (fig.layout.width or 0) > 900}
    assert not wide, f"fixed widths over 900 px: {wide}"
    assert all(fig.layout.height for fig in figures.values())


@pytest.mark.parametrize("width", WIDTHS)
def test_every_figure_lays_out_without_clipping_or_overlap(figures, browser, width, tmp_path):
    page = browser.new_page(viewport={"width": width + 40, "height": 900})
    try:
        path = tmp_path / f"figures_{width}.html"
        path.write_text(page_html(figures, width), encoding="utf-8")
        page.goto(path.as_uri())
        page.evaluate("() => window.drawn")
        measured = page.evaluate(MEASURE)
        shots = os.environ.get("FFN_WIDGETS_SHOTS")
        if shots and width == WIDTHS[0]:
            Path(shots).mkdir(parents=True, exist_ok=True)
            for name in figures:
                page.locator(f'[id="{name}"]').screenshot(path=str(Path(shots) / f"{name.replace(' ', '_')}.png"))
    finally:
        page.close()
    assert [m["name"] for m in measured] == list(figures)
    for m in measured:  # sanity: the measurement sees the figure
        assert m["svg"]["right"] - m["svg"]["left"] == pytest.approx(width, abs=1) and len(m["texts"]) > 3, m["name"]
    found = {m["name"]: problems(m) for m in measured}
    report = "\n".join(f"{name} at {width} px:\n  " + "\n  ".join(p[:12]) for name, p in found.items() if p)
    assert not report, report
