"""A saved page in headless Chromium, opened from disk with every network request blocked: the explorer
exported by ``to_html`` draws, hovers, clicks, switches statistic and lens stage without a kernel, and a
gesture for the kernel says it needs one; a notebook run headless and converted with ``--to ffn_html`` shows
the views too, where nbconvert's own HTML leaves them blank."""
import shutil
from pathlib import Path

import nbformat
import pytest

import ffn_widgets as fw
from ffn_widgets.widgets.base import bundle_built

from .lab import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser]

PROMPT = 'The Eiffel Tower <b>bold</b> <img src=x onerror="window.pwned=1"> </script> is in'
HEAT = ".fw-activation-panel canvas.fw-heatmap-canvas"
LENS = ".fw-lens-panel canvas.fw-heatmap-canvas"
PIXELS = """(sel) => { const c = document.querySelector(sel); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const seen = new Set(); let h = 0; for (let i = 0; i < d.length; i += 4) { if (d[i + 3] < 250) continue;
  seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); h = (h * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) | 0; }
  return {colours: seen.size, hash: h}; }"""


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM} (set FFN_WIDGETS_CHROMIUM)")
    if not bundle_built():
        pytest.fail("The front end is not built: run `make js` before the browser tests.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def open_offline(browser, path: Path):
    """A page on ``file://path`` where any other request is refused and recorded in ``page.blocked``."""
    context = browser.new_context(viewport={"width": 1200, "height": 1300})
    blocked = []

    def route(r):
        if r.request.url == path.resolve().as_uri():
            return r.continue_()
        blocked.append(r.request.url)
        return r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.set_default_timeout(15000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.blocked, page.errors = blocked, errors
    page.goto(path.resolve().as_uri())
    return page


def cell_point(page, canvas, layer, token):
    """The page point over a cell, the map first scrolled (token maps start at their last token) to show it."""
    geo = page.evaluate(f"() => JSON.parse(document.querySelector('{canvas}').dataset.geometry)")
    page.evaluate("""([sel, x]) => { for (let e = document.querySelector(sel).parentElement; e; e = e.parentElement)
        if (e.scrollWidth > e.clientWidth) e.scrollLeft = Math.max(0, x - 40); }""", [canvas, geo["x0"] + token * geo["cw"]])
    box = page.locator(canvas).bounding_box()
    rows = int(page.locator(canvas).get_attribute("data-rows"))
    row = rows - 1 - layer if geo["flip"] else layer
    return box["x"] + geo["x0"] + (token + 0.5) * geo["cw"], box["y"] + geo["y0"] + (row + 0.5) * geo["ch"]


def tooltip(page, panel):
    tip = page.locator(f"{panel} .fw-tooltip")
    tip.wait_for(state="visible")
    return tip.inner_text()


@pytest.fixture(scope="module")
def saved(tiny_lm, tmp_path_factory):
    ex = fw.Explorer(tiny_lm, PROMPT)
    path = ex.to_html(tmp_path_factory.mktemp("export") / "explorer.html", title="Eiffel")
    return ex, path


def test_saved_explorer_works_from_disk_without_network_or_kernel(browser, saved):
    ex, path = saved
    page = open_offline(browser, path)
    page.wait_for_function(f"() => document.querySelector('{HEAT}')?.dataset.cols > 0")
    tokens = ex.data["tokens"]
    assert page.locator(HEAT).get_attribute("data-cols") == str(len(tokens))
    before = page.evaluate(PIXELS, HEAT)
    assert before["colours"] > 5, before  # a colour scale over the cells, not a blank canvas

    # model text stays text: the prompt box holds it, no element came out of it
    assert page.locator(".fw-root input[type=text], .fw-root textarea").first.input_value() == PROMPT
    assert page.evaluate("() => document.querySelectorAll('main b, main img').length") == 0
    assert page.evaluate("() => window.pwned") is None

    page.mouse.move(*cell_point(page, HEAT, 1, 2))
    text = tooltip(page, ".fw-activation-panel")
    assert text.startswith("layer 1 · token 2") and "max |activation|" in text

    # statistic switch: drawn from the arrays in the page
    page.locator(".fw-activation-panel .fw-seg button[data-value=contrib]").click()
    page.wait_for_function(f"() => document.querySelector('{HEAT}').parentElement.dataset.stat === 'contrib'")
    assert page.evaluate(PIXELS, HEAT)["hash"] != before["hash"]

    # a click on a cell lists its top neurons, value tokens included (sent before the export)
    page.mouse.click(*cell_point(page, HEAT, 1, 3))  # (the map scrolls sideways past the viewport's tokens)
    rows = page.locator(".fw-neuron-table tbody tr")
    rows.first.wait_for(state="visible")
    assert rows.count() == ex.k
    assert rows.locator(".fw-token").count() >= ex.k and "…" not in rows.first.inner_text()

    # lens stage toggle: the stage not shown in the kernel was sent with the export
    lens_before = page.evaluate(PIXELS, LENS)
    page.locator(".fw-lens-panel .fw-seg button[data-value=mid]").click()
    page.wait_for_function(f"() => document.querySelector('{LENS}').closest('.fw-lens-panel').dataset.pending === 'false'")
    assert page.evaluate(PIXELS, LENS)["hash"] != lens_before["hash"]
    page.mouse.move(*cell_point(page, LENS, 0, 1))
    assert "before MLP" in tooltip(page, ".fw-lens-panel")

    # picking a neuron needs the kernel: a notice in the view, not an alert
    notice = page.locator(".fw-kernel-notice")
    assert notice.is_hidden()
    rows.first.click()
    notice.wait_for(state="visible")
    assert "needs a running kernel" in notice.inner_text()
    assert page.blocked == [] and page.errors == []
    page.context.close()


def test_notebook_run_headless_shows_its_views_with_ffn_html_not_with_plain_html(browser, tmp_path):
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    from ffn_widgets.widgets.notebook_html import FFNHTMLExporter

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import torch\ntorch.set_num_threads(1)\nimport ffn_widgets as fw\n"
                                          "lm = fw.load_model()"),
                nbformat.v4.new_code_cell("fw.Explorer(lm, 'The Eiffel Tower is in')")]
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert "widgets" in nb.metadata  # a headless run saves the widget state
    pages = {}
    for name, exporter in (("plain", HTMLExporter()), ("ffn", FFNHTMLExporter())):
        body, _ = exporter.from_notebook_node(nbformat.from_dict(nb))
        pages[name] = tmp_path / f"{name}.html"
        pages[name].write_text(body, encoding="utf-8")

    plain = open_offline(browser, pages["plain"])  # nbconvert alone: the manager comes from a CDN; offline, nothing
    plain.wait_for_timeout(1000)
    assert plain.locator(".fw-root").count() == 0
    assert any("html-manager" in u for u in plain.blocked)
    plain.context.close()

    page = open_offline(browser, pages["ffn"])
    page.wait_for_function(f"() => document.querySelector('{HEAT}')?.dataset.cols > 0")
    assert page.evaluate(PIXELS, HEAT)["colours"] > 5
    page.mouse.move(*cell_point(page, HEAT, 3, 1))
    assert tooltip(page, ".fw-activation-panel").startswith("layer 3 · token 1")
    # our views fetch nothing: what is left is nbconvert's template (require.js, MathJax) and the manager
    # for the notebook's other widgets (the model loading progress bar)
    assert set(page.blocked) <= set(plain.blocked) and page.errors == []
    page.context.close()
