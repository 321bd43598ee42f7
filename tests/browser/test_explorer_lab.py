"""The explorer in a real JupyterLab 4 (headless Chromium): the tour runs, the heatmap is drawn, a click
lists the kernel's top neurons, a new prompt redraws, errors show in the widget, the slot embeds another
view, and the dark theme is followed. One server and one notebook session for the whole module."""
import os
import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.real_model]

HEAT = ".fw-activation-panel canvas.fw-heatmap-canvas"
ROWS = ".fw-neuron-table tbody tr"

# Pixel statistics of a canvas: distinct colours and mean luminance of the opaque pixels.
PIXELS = """(sel) => { const c = document.querySelector(sel); const ctx = c.getContext('2d');
  const d = ctx.getImageData(0, 0, c.width, c.height).data; const seen = new Set(); let lum = 0, n = 0;
  for (let i = 0; i < d.length; i += 4) { if (d[i + 3] < 250) continue; n++;
    seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); lum += 0.2126 * d[i] + 0.7152 * d[i + 1] + 0.0722 * d[i + 2]; }
  let h = 0; for (let i = 0; i < d.length; i += 97) h = (h * 31 + d[i]) | 0;
  return {colours: seen.size, opaque: n, lum: n ? lum / n : 0, hash: h}; }"""


@pytest.fixture(scope="module")
def page(lab):
    page = lab.open_and_run("notebooks/00_tour.ipynb", HEAT, width=1300, height=1100)
    page.wait_for_function(f"() => document.querySelector('{HEAT}').dataset.cols > 0")
    frames = []  # what the browser sends to the kernel, to check that hover and click send nothing
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(str(payload))))
    page.frames_sent = frames
    return page


def shot(page, name):
    """Save a screenshot of the explorer when FFN_WIDGETS_SCREENSHOTS names a folder (for the docs)."""
    folder = os.environ.get("FFN_WIDGETS_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": 2400})  # the whole widget on screen
    root = page.locator(".fw-root").first
    root.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=str(Path(folder) / name), clip=root.bounding_box())
    page.set_viewport_size(size)


def show_token(token):
    """What js/src/core/format.ts showToken draws for a token: every whitespace character visible."""
    return re.sub(r"\r\n|\s", lambda m: {"\r\n": "⏎", "\n": "⏎", "\r": "⏎", "\t": "⇥"}.get(m.group(), "␣"), token) or "∅"


def cell_point(page, layer, token):
    """Page coordinates of a heatmap cell, from the geometry the heatmap publishes on its canvas."""
    page.locator(HEAT).scroll_into_view_if_needed()
    box = page.locator(HEAT).bounding_box()
    geo = page.evaluate(f"() => JSON.parse(document.querySelector('{HEAT}').dataset.geometry)")
    rows = int(page.locator(HEAT).get_attribute("data-rows"))
    row = rows - 1 - layer if geo["flip"] else layer
    return box["x"] + geo["x0"] + (token + 0.5) * geo["cw"], box["y"] + geo["y0"] + (row + 0.5) * geo["ch"]


def hover_cell(page, layer, token):
    page.mouse.move(*cell_point(page, layer, token))


def click_cell(page, layer, token):
    page.mouse.click(*cell_point(page, layer, token))


def test_heatmap_is_drawn_and_a_click_lists_the_kernels_top_neurons(lab, page):
    stats = page.evaluate(PIXELS, HEAT)
    assert stats["colours"] > 20, stats  # a real colour scale over many cells, not a blank canvas
    n_tokens = lab.kernel_json("len(ex.data['tokens'])")
    assert page.locator(HEAT).get_attribute("data-cols") == str(n_tokens)
    shot(page, "explorer-light.png")
    layer, token = 18, n_tokens - 1
    page.wait_for_timeout(500)  # let the comm settle so that only gestures are counted below
    page.frames_sent.clear()
    hover_cell(page, layer, token)
    tip = page.wait_for_selector(".fw-activation-panel .fw-tooltip", state="visible")
    assert f"layer {layer} · token {token}" in tip.inner_text()
    # the map fills its panel, and a tooltip at the bottom-right corner stays inside the visible box
    box = page.locator(".fw-activation-panel .fw-heatmap").bounding_box()
    assert page.locator(HEAT).bounding_box()["width"] > box["width"] - 3
    hover_cell(page, 0, token)
    page.wait_for_function("() => document.querySelector('.fw-activation-panel .fw-tooltip').textContent.includes('layer 0 ·')")
    t = tip.bounding_box()
    assert box["x"] <= t["x"] and t["x"] + t["width"] <= box["x"] + box["width"] + 1, (t, box)
    assert box["y"] <= t["y"] and t["y"] + t["height"] <= box["y"] + box["height"] + 1, (t, box)
    click_cell(page, layer, token)
    page.wait_for_function(f"() => document.querySelectorAll('{ROWS}').length > 0")
    # hover and click asked the kernel nothing (the clicked cell is synced state, not a custom message)
    assert not [f for f in page.frames_sent if '"method":"custom"' in f.replace(" ", "")]
    shown = page.eval_on_selector_all(ROWS, "rows => rows.map(r => [+r.dataset.layer, +r.dataset.neuron])")
    # the kernel saw the click (synced state) and its own ranking is what the browser lists
    assert lab.kernel_json("ex.cell") == {"layer": layer, "token": token}
    want = lab.kernel_json(f"ex.top_neurons({layer}, {token}, by='contribution').neurons")
    assert shown == [[layer, n] for n in want]
    # value-vector tokens of the first row: the same as fw.value_tokens in the kernel
    first = want[0]
    page.wait_for_function(f"() => !document.querySelector('{ROWS}').textContent.includes('…')")
    chips = page.eval_on_selector(ROWS, "r => [...r.querySelectorAll('.fw-token')].map(s => s.textContent)")
    expected = lab.kernel_json(f"[t for t, _ in fw.value_tokens(lm, {layer}, {first}, k={len(chips)}).top]")
    assert chips == [show_token(t) for t in expected]
    shot(page, "explorer-clicked.png")
    # picking a neuron: the kernel hears it and the heatmap switches to that neuron's activations
    page.locator(ROWS).first.click()
    page.wait_for_function(f"() => document.querySelector('{HEAT}').closest('.fw-heatmap').dataset.stat === 'neuron'")
    assert lab.kernel_json("[ex.neuron['layer'], ex.neuron['neuron'], ex.stat]") == [layer, first, "neuron"]
    page.locator('.fw-activation-panel button[data-value="max_act"]').click()
    page.wait_for_function(f"() => document.querySelector('{HEAT}').closest('.fw-heatmap').dataset.stat === 'max_act'")


def test_typing_a_prompt_redraws_and_errors_show_in_the_widget(lab, page):
    before = page.evaluate(PIXELS, HEAT)
    prompt = "Mount Fuji is the highest mountain in the country of"
    lab.execute("ex.cell = {'layer': 18, 'token': 0}")
    box = page.locator('input[aria-label="prompt"]')
    box.fill(prompt)
    box.press("Enter")
    n = lab.kernel_json(f"len(lm.encode({prompt!r}))")
    page.wait_for_function(f"() => document.querySelector('{HEAT}').dataset.cols === '{n}'")
    after = page.evaluate(PIXELS, HEAT)
    assert after["hash"] != before["hash"] and after["colours"] > 20
    assert lab.kernel_json("ex.prompt") == prompt
    # the selection (layer 18) follows the new prompt's last token, in the kernel and the page
    assert lab.kernel_json("ex.cell") == {"layer": 18, "token": n - 1}
    title = ".fw-neurons-panel .fw-panel-head .fw-title"
    page.wait_for_function(f"() => document.querySelector('{title}').textContent.includes('token {n - 1} ')")
    box.fill("   ")
    box.press("Enter")
    page.wait_for_selector(".fw-error-text", state="visible")
    assert "prompt is empty" in page.locator(".fw-error-text").first.text_content()
    assert lab.kernel_json("ex.prompt") == prompt  # the old run stays


def test_a_new_prompt_streams_in_parts_and_the_other_lens_stage_comes_when_asked(lab, page):
    content = ".fw-content[data-prompt]"
    # in the kernel the assignment returns after the heatmap; the rest follows (finished as the cell ends)
    prompt = "The Colosseum is located in the city of"
    got = lab.kernel_json(f"(setattr(ex, 'prompt', {prompt!r}), sorted(k for k in ('grids', 'top', 'lens') if k in ex.data),"
                          " ex._runner.running)[1:]")
    assert got == [["grids"], True]
    page.wait_for_function(f"() => document.querySelector('{content}').dataset.prompt === {prompt!r}"
                           f" && document.querySelector('{content}').dataset.missing === ''")
    assert lab.kernel_json("[ex.data['pending'], sorted(ex.data['lens']), ex.progress]") == [[], ["post"], {}]
    # the lens before each MLP: computed when the button asks for it, drawn when it arrives
    page.locator('.fw-lens-panel button[data-value="mid"]').click()
    page.wait_for_function("() => document.querySelector('.fw-lens-panel').dataset.pending === 'false'"
                           " && document.querySelector('.fw-lens-panel button[data-value=\"mid\"]').classList.contains('fw-on')")
    assert lab.kernel_json("[ex.lens_stage, sorted(ex.data['lens'])]") == ["mid", ["mid", "post"]]
    page.locator('.fw-lens-panel button[data-value="post"]').click()
    page.wait_for_function("() => document.querySelector('.fw-lens-panel button[data-value=\"post\"]').classList.contains('fw-on')")
    # a prompt typed in the page streams as a task: the kernel answers a gesture in between (value vectors
    # read from a cold cache take seconds), and a newer prompt typed meanwhile replaces the older one's rest
    lab.execute("lm.forget()")
    box = page.locator('input[aria-label="prompt"]')
    first, second = "The Louvre is located in the city of", "The Brandenburg Gate is located in the city of"
    box.fill(first)
    box.press("Enter")
    state = f"document.querySelector('{content}').dataset"
    page.wait_for_function(f"() => {state}.prompt === {first!r} && !{state}.missing.includes('top')")
    page.locator(ROWS).first.click()  # select_neuron: answered by the kernel while the values are read
    page.wait_for_function(f"() => document.querySelector('{HEAT}').closest('.fw-heatmap').dataset.stat === 'neuron'"
                           f" && {state}.missing.includes('values')")
    box.fill(second)
    box.press("Enter")
    page.wait_for_function(f"() => {state}.prompt === {second!r} && {state}.missing === ''")
    assert lab.kernel_json("[ex.data['prompt'], ex.data['pending'], ex._runner.running]") == [second, [], False]
    page.locator('.fw-activation-panel button[data-value="max_act"]').click()
    page.wait_for_function(f"() => document.querySelector('{HEAT}').closest('.fw-heatmap').dataset.stat === 'max_act'")


def test_slot_shows_another_view(lab, page):
    lab.execute("ex.show(fw.LogitLens(lm, ex.prompt), 'Logit lens on its own')")
    page.wait_for_selector(".fw-slot .fw-lens-panel canvas.fw-heatmap-canvas", state="visible")
    assert page.locator(".fw-slot .fw-panel-head .fw-title").first.text_content() == "Logit lens on its own"
    page.locator('.fw-slot button[aria-label="Close panel"]').click()
    page.wait_for_selector(".fw-slot", state="hidden")
    assert lab.kernel_json("len(ex.slot)") == 0


def test_dark_theme_is_followed(lab, page):
    light = page.evaluate(PIXELS, HEAT)
    lab.theme("JupyterLab Dark")
    page.wait_for_function(f"(h) => {{ const c = document.querySelector('{HEAT}'); return c && ({PIXELS})('{HEAT}').hash !== h; }}",
                           arg=light["hash"])
    dark = page.evaluate(PIXELS, HEAT)
    assert dark["lum"] < light["lum"] - 40, (light, dark)  # cells recede into a dark background
    text = page.evaluate("() => getComputedStyle(document.querySelector('.fw-root')).color")
    r, g, b = (int(v) for v in text[text.index("(") + 1:text.index(")")].split(",")[:3])
    assert 0.2126 * r + 0.7152 * g + 0.0722 * b > 150, text  # light text on dark
    shot(page, "explorer-dark.png")
    lab.theme("JupyterLab Light")
