"""StabilityMonitor and the batch Editor in a real JupyterLab 4 (headless Chromium), on the default model:
Start in the browser streams the curves step by step, the run's edits are gone afterwards (the down
projections' hash equals the one taken before), Cancel stops a run within an edit; a MEMIT batch applied
from the browser shows every fact before → after and Undo restores the weights."""
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.real_model]

# Record how many points the retention-and-scores chart's efficacy line has each time it changes.
WATCH = """() => { window.__rows = []; const seen = () => {
    const g = document.querySelector('.fw-series[data-name="efficacy"]'); if (!g) return;
    const n = [...g.querySelectorAll('polyline')].map(p => (p.getAttribute('points') || '').split(' ').filter(Boolean).length)
      .reduce((a, b) => a + b, 0);
    if (window.__rows.at(-1) !== n) window.__rows.push(n); };
  new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, attributes: true}); }"""


def test_stability_run_and_cancel_from_the_browser(lab):
    page = lab.open("tests/browser/stability.ipynb", width=1300, height=1500)
    lab.run_all()
    page.wait_for_selector(".fw-stability", state="visible")
    assert page.get_attribute(".fw-stability", "data-status") == "idle"
    assert page.input_value('.fw-stability input[aria-label="steps"]') == "3"
    page.evaluate(WATCH)
    page.click(".fw-st-start")
    page.wait_for_selector('.fw-stability[data-status="done"]', timeout=400_000)
    rows = page.evaluate("() => window.__rows")
    assert rows[-3:] == [1, 2, 3] and rows == sorted(rows), rows  # one point per step, live
    summary = page.text_content(".fw-st-summary")
    kernel = lab.kernel_json("[len(mon.run.rows), mon.run.rows[-1]['retention'], len(lm.edits), "
                             "weights_hash() == original]")
    assert kernel[0] == 3 and kernel[2:] == [0, True]
    assert f"retention {round(100 * kernel[1])}%" in summary and "3 edits" in summary
    page.locator(".fw-stability").screenshot(path="/tmp/stability.png")

    page.fill('.fw-stability input[aria-label="steps"]', "5")
    page.click(".fw-st-start")
    page.wait_for_function("() => /Step 2 of 5/.test(document.querySelector('.fw-progress-text')?.textContent || '')",
                           timeout=300_000)
    page.click(".fw-st-cancel")
    page.wait_for_selector('.fw-stability[data-status="cancelled"]', timeout=120_000)
    assert lab.kernel_json("[mon.steps, len(lm.edits), weights_hash() == original]") == [5, 0, True]


def test_batch_editor_from_the_browser(lab):
    page = lab.open("tests/browser/stability.ipynb", width=1300, height=1500)
    lab.run_all()
    page.wait_for_selector(".fw-editor .fw-ed-facts", state="visible")
    assert page.locator(".fw-ed-facts tbody tr").count() == 2
    assert page.text_content(".fw-ed-layer-note") == "layers 0–4"
    page.click(".fw-ed-apply")
    page.wait_for_selector(".fw-ed-report .fw-ed-row", state="visible", timeout=400_000)
    assert page.get_attribute(".fw-editor", "data-status") == "done"
    head = page.text_content(".fw-ed-report .fw-title")
    assert head.startswith("Before → after: 2 facts, MEMIT at layers 0–4")
    assert page.locator('.fw-ed-row[data-kind="prompt"]').count() == 2
    assert lab.kernel_json("[len(lm.edits), lm.edits[0].method, ed.comparison['efficacy']]")[:2] == [1, "MEMIT"]
    page.locator(".fw-editor").screenshot(path="/tmp/editor_batch.png")
    page.click(".fw-ed-log .fw-ed-undo")
    page.wait_for_selector(".fw-ed-log-empty", state="visible")
    assert lab.kernel_json("[len(lm.edits), weights_hash() == original]") == [0, True]
