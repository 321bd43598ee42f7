"""Jupyter Notebook 7 (headless Chromium): the package's extension loads, the tour notebook's views render in
the light and dark themes, and a view docks into Notebook 7's right side panel. The harness's Notebook 7 server
(``nb7``) and the default model, as the tour uses it."""
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.real_model]

HEAT = ".jp-OutputArea .fw-activation-panel canvas.fw-heatmap-canvas"
COLOURS = """(sel) => { const c = document.querySelector(sel); const d = c.getContext('2d')
  .getImageData(0, 0, c.width, c.height).data; const seen = new Set();
  for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 250) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  return seen.size; }"""
LUMINANCE = """(sel) => { const c = getComputedStyle(document.querySelector(sel)).backgroundColor.match(/\\d+/g).map(Number);
  return (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255; }"""


@pytest.fixture(scope="module")
def page(nb7):
    page = nb7.open_and_run("notebooks/00_tour.ipynb", HEAT, width=1300, height=1000)
    page.wait_for_function(f"() => document.querySelector('{HEAT}').dataset.cols > 0")
    return page


def test_the_extension_loads_in_notebook_7(nb7, page):
    assert page.evaluate("() => !document.querySelector('.jp-LabShell') && !!document.querySelector('#main.lm-Widget')")
    assert page.evaluate("""() => [jupyterapp.hasPlugin('ffn-widgets:plugin'), jupyterapp.isPluginActivated('ffn-widgets:plugin'),
        jupyterapp.commands.hasCommand('ffn-widgets:explore-selection')]""") == [True, True, True]


def test_the_tours_views_render_in_light_and_dark(nb7, page):
    views = page.locator(".jp-OutputArea .fw-root")
    assert views.count() >= 1
    assert page.locator(".jp-OutputArea .fw-root .fw-error").count() == 0
    assert page.evaluate(COLOURS, HEAT) > 20  # a drawn heatmap, not a blank canvas
    assert page.locator(".jp-OutputArea .fw-root > .fw-dock-button").count() == views.count()  # the dock button
    nb7.theme("JupyterLab Dark")
    assert page.evaluate(LUMINANCE, ".jp-OutputArea .fw-root") < 0.3
    assert page.evaluate(COLOURS, HEAT) > 20
    nb7.theme("JupyterLab Light")
    assert page.evaluate(LUMINANCE, ".jp-OutputArea .fw-root") > 0.7


def test_a_view_docks_into_notebook_7s_right_panel(nb7, page):
    nb7.execute("ex.dock()")
    page.wait_for_selector(".fw-dock .fw-activation-panel canvas", state="visible")
    assert page.evaluate("() => [...jupyterapp.shell.widgets('right')].some(w => w.title.label === 'FFN' && w.isVisible)")
