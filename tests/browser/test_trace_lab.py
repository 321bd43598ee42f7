"""CausalTrace in a real JupyterLab 4 (headless Chromium), on the default model: the three heatmaps fill in
row by row while the kernel computes, and a click on an MLP cell lists that layer's neurons. AveragedTrace beside
it: two facts averaged in one by one, and a hovered cell reads the kernel's number (that the widget's numbers are
``fw.trace_many``'s is tests/test_trace_average_widget.py's)."""
import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.real_model]

MAP = '.fw-trace-map[data-kind="{}"] canvas'
# Record every row count the view shows, from the moment the widget appears (the trace streams).
WATCH = """() => { window.__rows = []; const seen = () => { const r = document.querySelector('.fw-trace-map');
    const root = r && r.closest('.fw-content'); if (!root) return;
    const n = root.dataset.finished; if (n !== undefined && window.__rows.at(-1) !== n) window.__rows.push(n);
  const a = document.querySelector('.fw-avg-map'); const avg = a && a.closest('.fw-content');
  if (avg && window.__facts.at(-1) !== avg.dataset.nFacts) window.__facts.push(avg.dataset.nFacts); };
  window.__facts = [];
  new MutationObserver(seen).observe(document.body, {subtree: true, attributes: true,
    attributeFilter: ['data-finished', 'data-n-facts'], childList: true}); }"""
FILLED = """(sel) => { const c = document.querySelector(sel); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const seen = new Set(); for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 250) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  return seen.size; }"""


def test_the_trace_heatmaps_fill_in_and_an_mlp_click_lists_neurons(lab):
    page = lab.open("tests/browser/trace.ipynb", width=1300, height=1100)
    page.evaluate(WATCH)
    lab.run_all()
    page.wait_for_selector(MAP.format("mlp"), state="visible")
    page.wait_for_function("() => document.querySelector('.fw-trace-map').closest('.fw-content').dataset.status === 'done'",
                           timeout=300_000)
    rows = [int(n) for n in page.evaluate("() => window.__rows")]
    n_tokens = lab.kernel_json("len(tr.setup.tokens)")
    assert rows[-1] == n_tokens + 2  # the last token arrives kind by kind, then one row per token
    assert len(rows) >= 4 and rows == sorted(rows)  # seen filling in, not only finished
    colours = [page.evaluate(FILLED, MAP.format(kind)) for kind in ("hidden", "mlp", "attn")]
    assert min(colours) > 8, colours  # a colour scale over many cells, not a blank canvas
    canvas = page.locator(MAP.format("mlp"))
    canvas.scroll_into_view_if_needed()
    box, geo = canvas.bounding_box(), page.evaluate(f"() => JSON.parse(document.querySelector('{MAP.format('mlp')}').dataset.geometry)")
    layer, token = 5, 2  # an early-middle layer at the last subject token
    page.mouse.click(box["x"] + geo["x0"] + (layer + 0.5) * geo["cw"], box["y"] + geo["y0"] + (token + 0.5) * geo["ch"])
    page.wait_for_selector(".fw-trace-neurons tbody tr", state="visible")
    assert lab.kernel_json("tr.selected") == {"kind": "mlp", "layer": layer, "token": token}
    shown = page.evaluate("() => [...document.querySelectorAll('.fw-trace-neurons tbody tr')].map(r => +r.dataset.neuron)")
    assert shown == lab.kernel_json("[int(n) for n in fw.widgets.unpack(tr.neurons['neurons'])]")


AVG = '.fw-avg-map[data-kind="mlp"] canvas'


def test_the_averaged_trace_fills_in_fact_by_fact_and_shows_the_kernels_numbers(lab):
    page = lab.page  # the notebook above, run: its last cell averages two facts
    page.wait_for_function("() => { const a = document.querySelector('.fw-avg-map');"
                           " return a && a.closest('.fw-content').dataset.status === 'done'; }", timeout=300_000)
    facts = [int(n) for n in page.evaluate("() => window.__facts")]
    assert facts[-1] == 2 and 1 in facts and facts == sorted(facts)  # averaged in as each fact finished
    want = lab.kernel_json("avg.result.indirect['mlp'].tolist()")
    canvas = page.locator(AVG)
    canvas.scroll_into_view_if_needed()
    box, geo = canvas.bounding_box(), page.evaluate(f"() => JSON.parse(document.querySelector('{AVG}').dataset.geometry)")
    layer, group = 4, 2  # the last subject token in an early layer: ROME's early site
    page.mouse.move(box["x"] + geo["x0"] + (layer + 0.5) * geo["cw"], box["y"] + geo["y0"] + (group + 0.5) * geo["ch"])
    tip = page.locator(".fw-avg-map .fw-tooltip").first
    tip.wait_for(state="visible")
    shown = re.search(r"average indirect effect = (\S+)", tip.inner_text())
    assert shown and float(shown[1]) == pytest.approx(want[layer][group], rel=5e-3, abs=5e-4)  # 3 digits shown
    assert page.evaluate(FILLED, AVG) > 8  # a colour scale over the cells, not a blank canvas
