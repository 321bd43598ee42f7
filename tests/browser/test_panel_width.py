"""Every view docked in the FFN side panel at 380 px, its default width (real JupyterLab 4, headless Chromium, a
tiny random model): the last token's column of each token map, where the prediction is read, is inside the
panel's visible rectangle, and nothing of the view sticks out past the panel's edges except inside a horizontal
scroller of the view's own whose box is inside. Screenshots go to FFN_WIDGETS_SCREENSHOTS when it is set."""
import pytest

from .test_dock_lab import shot

pytestmark = pytest.mark.browser

PANEL_WIDTH = 380
ITEM = ".fw-dock .fw-dock-item"

# name -> (code making `v`, what shows once the view is drawn in the panel, code to run after docking)
VIEWS = {
    "explorer": ('v = fw.Explorer(lm, prompt, target=" Paris")', ".fw-neuron-table tbody tr",
                 'v.wait(); v.cell = {"layer": 1, "token": n_tokens - 1}'),
    "logit-lens": ('v = fw.LogitLens(lm, prompt, target=" Paris")', ".fw-lens-panel[data-pending=false] canvas", "v.wait()"),
    "activations": ("v = fw.ActivationHeatmap(lm, prompt)", ".fw-activation-panel canvas[data-geometry]", "v.wait()"),
    "sliders": ('v = fw.NeuronSliders(lm, prompt, [(1, 7), (0, 3)], target=" Paris", continuation=4)',
                ".fw-continuation span", ""),
    "neuron-card": ("v = fw.NeuronCard(lm, 1, 7, prompt=prompt)", ".fw-card-prompt .fw-card-tok", ""),
    "causal-trace": ('v = fw.CausalTrace(lm, prompt, "The Eiffel Tower")',
                     ".fw-content[data-status=done] .fw-trace-map canvas", "v.wait(); v.show_neurons(1, n_tokens - 1)"),
    "averaged-trace": ('v = fw.AveragedTrace(lm, [{"prompt": prompt, "subject": "The Eiffel Tower"}], samples=2)',
                       ".fw-content[data-status=done] .fw-avg-map canvas", "v.wait()"),
    "editor": ('from ffn_widgets.editing.rome import RomeSettings\n'
               'v = fw.Editor(lm, prompt, "The Eiffel Tower", " Rome", layer=1, corpus=fw.load_corpus("lee"),'
               ' tokens=512, settings=RomeSettings(steps=3, prefix_lengths=((3, 1),)))',
               ".fw-ed-report .fw-ed-row", "v.apply(); v.wait()"),
    "localize": ('from ffn_widgets.editing.rome import RomeSettings\n'
                 'v = fw.Localize(lm, prompt, "The Eiffel Tower", " Paris", " Rome", edit_layers=[0, 1], samples=2,'
                 ' steps=4, corpus=fw.load_corpus("lee"), tokens=512,'
                 ' edit_kwargs={"settings": RomeSettings(steps=3, prefix_lengths=((3, 1),))})',
                 '.fw-localize[data-status="done"]', "v.wait(); v.select_layer(1)"),
    "stability": ('from ffn_widgets.editing.rome import RomeSettings\n'
                  'v = fw.StabilityMonitor(lm, fw.load_facts()[:2], method="r-rome", steps=2, corpus=fw.load_corpus("lee"),'
                  ' tokens=512, n_unrelated=3, settings=RomeSettings(steps=3, prefix_lengths=((3, 1),)))',
                  '.fw-stability[data-status="done"]', "v.wait()"),
}

# Sizes the right side area so the panel is `width` px wide (the split's handles make a try a pixel or so off).
SET_WIDTH = """(width) => { const split = window.jupyterapp.shell._hsplitPanel;
    const panel = document.getElementById('ffn-widgets-panel'); const total = split.node.clientWidth;
    const sizes = split.relativeSizes(); const right = sizes[sizes.length - 1];
    const want = Math.min(0.9, right + (width - panel.getBoundingClientRect().width) / total);
    sizes[1] += right - want; sizes[sizes.length - 1] = want; split.setRelativeSizes(sizes); split.fit();
    return panel.getBoundingClientRect().width; }"""

# Geometry of the docked view, measured in the page. A box "sticks out" when it passes the panel's left or right
# edge and no horizontal scroller of the view (an element with overflow-x other than visible, below the dock's
# own body) clips it within the panel. The last token column of a map is where its canvas draws the column
# (data-geometry), clipped by every scroller above it.
MEASURE = """() => {
  const panel = document.getElementById('ffn-widgets-panel').getBoundingClientRect();
  const item = document.querySelector('.fw-dock .fw-dock-item');
  const body = item.querySelector('.fw-dock-body');
  const scrolls = (e) => getComputedStyle(e).overflowX !== 'visible';
  const clip = (e) => { const r = e.getBoundingClientRect(); return {left: r.left + e.clientLeft, right: r.left + e.clientLeft + e.clientWidth}; };
  const area = clip(body);  // the width the panel gives the view
  const visible = (e) => { let v = {left: panel.left, right: panel.right};
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) if (scrolls(a)) {
      const c = clip(a); v = {left: Math.max(v.left, c.left), right: Math.min(v.right, c.right)}; }
    return v; };
  const name = (e) => e.tagName.toLowerCase() + (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
  const out = [];
  const check = (r, from, what) => {  // r: an element's box or a line of text; `from`: the first that may clip it
    if (!r.width || !r.height || (r.right <= area.right + 1 && r.left >= area.left - 1)) return;
    let scroller = null;
    for (let a = from; a && a !== body; a = a.parentElement) if (scrolls(a)) { scroller = a; break; }
    const box = scroller && scroller.getBoundingClientRect();
    if (!box || box.right > area.right + 1 || box.left < area.left - 1)
      out.push(`${what} spans ${Math.round(r.left)}..${Math.round(r.right)}`);
  };
  for (const e of item.querySelectorAll('*')) {
    if (!e.checkVisibility()) continue;
    check(e.getBoundingClientRect(), e.parentElement, name(e));
  }
  const texts = document.createTreeWalker(item, NodeFilter.SHOW_TEXT);
  for (let t = texts.nextNode(); t; t = texts.nextNode()) {
    if (!t.parentElement.checkVisibility() || !t.data.trim()) continue;
    const range = document.createRange(); range.selectNodeContents(t);
    for (const r of range.getClientRects()) check(r, t.parentElement, `text "${t.data.slice(0, 30)}" in ${name(t.parentElement)}`);
  }
  const maps = [...item.querySelectorAll('canvas.fw-heatmap-canvas[data-geometry]')].map((c) => {
    const g = JSON.parse(c.dataset.geometry); const r = c.getBoundingClientRect();
    const x = r.left + g.x0 + (Number(c.dataset.cols) - 0.5) * g.cw; const v = visible(c);
    return {label: c.getAttribute('aria-label'), x, left: v.left, right: v.right};
  });
  const chips = [...item.querySelectorAll('.fw-card-prompt .fw-card-tok:last-child')].map((t) => {
    const r = t.getBoundingClientRect(); const v = visible(t);
    return {label: 'last token of the card\\'s prompt', x: r.right - 1, left: v.left, right: v.right};
  });
  return {panel: [area.left, area.right], inside: area.left >= panel.left && area.right <= panel.right, sticking: out, lastTokens: [...maps, ...chips],
          bodyOverflow: body.scrollWidth - body.clientWidth};
}"""


@pytest.fixture(scope="module")
def page(lab):
    page = lab.open("tests/browser/panel_width.ipynb", width=1400, height=1300)
    lab.run_all()
    return page


def dock(lab, page, name):
    make, ready, after = VIEWS[name]
    lab.execute(make + "\nv.dock()")
    page.wait_for_selector(f"{ITEM} .fw-root", state="attached")
    if after:
        lab.execute(after)
    page.wait_for_selector(f"{ITEM} {ready}", state="attached", timeout=300_000)
    width = 0
    for _ in range(4):  # the side area's new size lays out on the next frame
        width = page.evaluate(SET_WIDTH, PANEL_WIDTH)
        page.wait_for_timeout(300)
        width = page.evaluate("() => document.getElementById('ffn-widgets-panel').getBoundingClientRect().width")
        if abs(width - PANEL_WIDTH) <= 2:
            break
    assert abs(width - PANEL_WIDTH) <= 2, width
    page.wait_for_timeout(400)  # maps redraw for their new width (ResizeObserver)


@pytest.mark.parametrize("name", list(VIEWS))
def test_a_docked_view_fits_the_panel_at_380px(lab, page, name):
    dock(lab, page, name)
    shot(page, f"width-{name}.png")
    m = page.evaluate(MEASURE)
    try:
        assert m["inside"], f"{name}: the dock's body {m['panel']} is not inside the panel"
        assert m["sticking"] == [], f"{name}: sticks out of the panel {m['panel']}"
        assert m["bodyOverflow"] <= 1, f"{name}: the dock's body scrolls sideways by {m['bodyOverflow']} px"
        if name not in ("sliders", "editor", "localize", "stability"):  # no token map in these
            assert m["lastTokens"], f"{name}: no token map measured"
        for t in m["lastTokens"]:
            assert t["left"] <= t["x"] <= t["right"], f"{name}: {t['label']}: the last column at x={t['x']:.0f} is" \
                                                      f" outside the visible {t['left']:.0f}..{t['right']:.0f}"
    finally:
        lab.execute("fw.undock(v)")
        page.wait_for_selector(ITEM, state="detached")
