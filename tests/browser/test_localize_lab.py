"""Localize in a real JupyterLab 4 (headless Chromium) on the default model, two edit layers: the rows fill in
while the kernel measures and end equal to the kernel's numbers, the fact shows as text, a click on a layer lists
that layer's top neurons, a card opens in the slot under the view with its joined fields and a working slider,
Cancel from the browser stops a second run, and the weights are left as they were. Screenshots go to the
folder FFN_WIDGETS_SHOTS names (default: the temp folder)."""
import math
import os
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.real_model]

VIEW = ".fw-localize"
SHOTS = Path(os.environ.get("FFN_WIDGETS_SHOTS", tempfile.gettempdir()))

# Record how many cells hold a number each time the grid changes (it must grow while the kernel measures).
WATCH = """() => { window.__filled = []; const seen = () => {
    const n = document.querySelectorAll('.fw-loc-cell:not(.fw-loc-na)').length;
    if (window.__filled.at(-1) !== n) window.__filled.push(n); };
  seen(); new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, attributes: true}); }"""


@pytest.fixture(scope="module")
def page(lab):
    page = lab.open("tests/browser/localize.ipynb", width=1300, height=2600)
    lab.run_all()
    page.wait_for_selector(VIEW, state="visible")
    page.evaluate(WATCH)
    page.wait_for_selector(f'{VIEW}[data-status="done"]', timeout=400_000)
    return page


def test_rows_fill_in_live_and_equal_the_kernel(lab, page):
    filled = page.evaluate("() => window.__filled")
    assert len(filled) >= 3 and filled == sorted(filled), filled  # part after part, never fewer
    names = lab.kernel_json("list(loc.result.measures)")
    n_layers = lab.kernel_json("lm.n_layers")
    for name in names:
        shown = page.evaluate(f"""() => [...document.querySelectorAll('.fw-loc-cell[data-measure="{name}"]')]
                                        .map(c => c.dataset.value)""")
        kernel = lab.kernel_json(f"[None if v != v else float(v) for v in loc.result.measures[{name!r}]"
                                 ".astype('float32')]")
        assert len(shown) == n_layers == len(kernel), name
        for s, k in zip(shown, kernel):
            assert (s == "nan") if k is None else math.isclose(float(s), k, rel_tol=1e-6, abs_tol=1e-12), (name, s, k)
    edited = page.evaluate("() => [...document.querySelectorAll('.fw-loc-cell.fw-loc-edit"
                           "[data-measure=\"edit_efficacy\"]:not(.fw-loc-na)')].map(c => Number(c.dataset.layer))")
    assert edited == [2, 4]
    fact = lab.kernel_json("fact")
    assert page.text_content(f"{VIEW} .fw-loc-prompt") == fact["prompt"]
    assert page.text_content(f"{VIEW} .fw-loc-subject") == fact["subject"]
    assert lab.kernel_json("[weights_hash() == original, len(lm.edits), loc.error]") == [True, 0, ""]
    page.locator(VIEW).screenshot(path=str(SHOTS / "localize.png"))


def test_click_a_layer_then_open_a_card(lab, page):
    page.click(f'{VIEW} .fw-loc-cell[data-measure="kn_mass"][data-layer="4"]')
    page.wait_for_selector(f"{VIEW} .fw-loc-neurons .fw-loc-site", state="visible")
    assert "fw-loc-on" in page.get_attribute(f'{VIEW} .fw-loc-cell[data-measure="trace_mlp"][data-layer="4"]', "class")
    expected = lab.kernel_json("[fw.top_neurons(lm, fact['prompt'], 4, p, k=8, by='contribution', target=' Paris')"
                               ".neurons for p in (-1, lm.find_subject(fact['prompt'], fact['subject'])[1] - 1)]")
    shown = page.evaluate(f"""() => [...document.querySelectorAll('{VIEW} .fw-loc-site')].map(s =>
        [...s.querySelectorAll('tbody tr')].map(r => Number(r.dataset.neuron)))""")
    assert shown == expected
    neuron = expected[1][0]
    page.click(f'{VIEW} .fw-loc-site[data-site="last subject token"] tr[data-neuron="{neuron}"] .fw-loc-card')
    card = f"{VIEW} .fw-slot .fw-neuron-card"
    page.wait_for_function(f"() => document.querySelector('{card} .fw-title')?.textContent === 'Neuron L4.N{neuron}'",
                           timeout=120_000)
    joined = lab.kernel_json("[loc.card.card['knowledge']['rank'], loc.card.card['trace']['samples']]")
    assert f"rank {joined[0]:,} of" in page.text_content(f"{card} .fw-card-knowledge")
    assert "brings back" in page.text_content(f"{card} .fw-card-trace") and joined[1] == 3
    assert page.text_content(f"{card} .fw-card-edit") == "No edit in lm.edits touched layer 4."
    page.evaluate(f"""() => {{ const r = document.querySelector('{card} .fw-card-slider input[type=range]');
        r.value = '0'; r.dispatchEvent(new Event('input', {{bubbles: true}})); }}""")
    page.wait_for_function(f"() => /^×0\\.000: p/.test(document.querySelector('{card} .fw-card-readout').textContent)")
    p_after = lab.kernel_json(f"fw.SliderEngine(lm, fact['prompt'], ' Paris')"
                              f".predict({{(4, {neuron}): 0.0}}).target_prob")
    assert lab.kernel_json("loc.card.scaled['after']['p']") == pytest.approx(p_after, rel=1e-6)
    page.locator(VIEW).screenshot(path=str(SHOTS / "localize_card.png"))
    page.locator(card).screenshot(path=str(SHOTS / "localize_card_only.png"))


def test_cancel_from_the_browser(lab, page):
    page.click(f"{VIEW} .fw-loc-run")
    page.wait_for_selector(f'{VIEW}[data-status="running"]')
    page.click(f"{VIEW} .fw-loc-cancel")
    page.wait_for_selector(f'{VIEW}[data-status="cancelled"]', timeout=120_000)
    assert lab.kernel_json("[weights_hash() == original, len(lm.edits), loc.status]") == [True, 0, "cancelled"]
