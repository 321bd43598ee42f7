"""Editor in a real JupyterLab 4 (headless Chromium), on the default model: Apply in the browser streams the
optimisation, shows the before/after rows, and the kernel's model then says " Rome"; Undo in the browser puts
the down projection back bit for bit (its hash equals the one taken before)."""
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.real_model]

# Record how many loss points the chart shows each time it changes (the optimisation streams step by step).
WATCH = """() => { window.__points = []; const seen = () => { const l = document.querySelector('.fw-chart-y');
    if (!l) return; const n = (l.getAttribute('points') || '').split(' ').filter(Boolean).length;
    if (window.__points.at(-1) !== n) window.__points.push(n); };
  new MutationObserver(seen).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['points'],
    childList: true}); }"""


def test_apply_and_undo_from_the_browser(lab):
    page = lab.open("tests/browser/editor.ipynb", width=1300, height=1400)
    lab.run_all()
    page.wait_for_selector(".fw-editor", state="visible")
    assert page.input_value('.fw-editor input[aria-label="new target"]') == " Rome"
    assert page.input_value('.fw-editor input[aria-label="layer"]') == "4"
    assert "␣Paris" in page.text_content(".fw-ed-predicts")
    page.evaluate(WATCH)
    page.click(".fw-ed-apply")
    page.wait_for_selector(".fw-ed-report .fw-ed-row", state="visible", timeout=300_000)
    assert page.get_attribute(".fw-editor", "data-status") == "done"
    points = page.evaluate("() => window.__points")
    assert points[-1] == lab.kernel_json("len(ed.edit.loss_curve)") and len(points) >= 5, points  # drawn live
    assert lab.execute("print(repr(lm.tokenizer.decode(lm.logits(prompt)[-1].argmax())))").strip() == "' Rome'"
    kinds = page.evaluate("() => [...document.querySelectorAll('.fw-ed-row')].map(r => r.dataset.kind)")
    assert kinds[0] == "prompt" and {"paraphrase", "neighbour"} <= set(kinds)
    assert page.text_content('.fw-ed-row[data-kind="prompt"] .fw-ed-verdict') == "new wins"
    assert "Rome" in page.text_content(".fw-ed-after-text")
    assert page.locator(".fw-ed-log tbody tr").count() == 1
    page.locator(".fw-editor").screenshot(path="/tmp/editor.png")

    page.click(".fw-ed-log .fw-ed-undo")
    page.wait_for_selector(".fw-ed-log-empty", state="visible")
    assert lab.kernel_json("[down_hash() == original, len(lm.edits)]") == [True, 0]
    assert "undone" in page.text_content(".fw-ed-report-note")
    assert "␣Paris" in page.text_content(".fw-ed-predicts")
    lab.theme("JupyterLab Dark")
    page.wait_for_selector("#jupyterlab-splash", state="detached")
    page.wait_for_timeout(1200)  # the views redraw once the dark stylesheet has loaded
    page.locator(".fw-editor").screenshot(path="/tmp/editor_dark.png")


def test_edit_here_opens_an_editor_below_the_trace(lab):
    page = lab.open("tests/browser/editor_from_trace.ipynb", width=1300, height=1400)
    lab.run_all()
    page.wait_for_function("() => { const m = document.querySelector('.fw-trace-map');"
                           " return m && m.closest('.fw-content').dataset.status === 'done'; }", timeout=300_000)
    mlp = '.fw-trace-map[data-kind="mlp"] canvas'
    box = page.locator(mlp).bounding_box()
    geo = page.evaluate(f"() => JSON.parse(document.querySelector('{mlp}').dataset.geometry)")
    layer, token = 4, 3  # the last subject token, " Tower"
    page.mouse.click(box["x"] + geo["x0"] + (layer + 0.5) * geo["cw"], box["y"] + geo["y0"] + (token + 0.5) * geo["ch"])
    page.click(".fw-trace-edit")
    page.wait_for_selector(".fw-trace-editor .fw-editor .fw-strip-bar", state="visible")
    assert lab.kernel_json("[tr.editor.layer, tr.editor.subject, tr.editor.hint['peak']]") == \
        [layer, "The Eiffel Tower", lab.kernel_json("int(tr.layer_hint().argmax())")]
    assert page.input_value('.fw-trace-editor input[aria-label="layer"]') == str(layer)
    peak = lab.kernel_json("tr.editor.hint['peak']")
    assert page.get_attribute(".fw-strip-bar.fw-peak", "data-layer") == str(peak)
    page.click(f'.fw-strip-bar[data-layer="{peak}"]')  # the student clicks the peak: the layer field follows
    assert page.input_value('.fw-trace-editor input[aria-label="layer"]') == str(peak)
    page.locator(".fw-trace-editor").screenshot(path="/tmp/editor_from_trace.png")
