"""The package's JupyterLab extension and the FFN side panel in a real JupyterLab 4 (headless Chromium), on a tiny
random model: the extension is installed and active; its commands say what to run in a kernel without the
package, and on a selection insert an explorer, a causal trace or a neuron card, or dock an explorer; a view
docks by its button and by view.dock(), and a docked slider still drives the bars; an edit shows in the panel and
its Undo restores the weights; an edit applied in a docked Editor moves every docked view to the edited weights and
the panel's Undo moves them back; the panel goes when the kernel restarts. One server and notebook for the module."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

PROMPT = "The Eiffel Tower is located in the city of"
DOCKED = ".fw-dock .fw-sliders"
IDS = ["explore-selection", "explore-selection-docked", "causal-trace-selection", "open-neuron-card", "show-panel"]

NOTEBOOK = "() => window.jupyterapp.shell.currentWidget.content"
CELL_SOURCES = f"() => ({NOTEBOOK})().widgets.map(c => c.model.sharedModel.getSource())"


@pytest.fixture(scope="module")
def page(lab):
    return lab.open("tests/browser/dock.ipynb", width=1500, height=950)


@pytest.fixture(scope="module")
def ran(lab, page):
    lab.run_all()
    page.wait_for_selector(".jp-OutputArea .fw-sliders input[type=range]", state="visible")
    return page


def shot(page, name):
    """Save a screenshot when FFN_WIDGETS_SCREENSHOTS names a folder (docs/panel.png comes from there)."""
    folder = os.environ.get("FFN_WIDGETS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(400)
        page.screenshot(path=str(Path(folder) / name))


def select(page, index, text):
    """Select ``text`` in cell ``index``'s editor (CodeMirror) and return the page point over the selection."""
    return page.evaluate(f"""([i, text]) => {{ const nb = ({NOTEBOOK})(); nb.activeCellIndex = i;
        const cell = nb.widgets[i]; const ed = cell.editor; const a = cell.model.sharedModel.getSource().indexOf(text);
        ed.setSelection({{start: ed.getPositionAt(a), end: ed.getPositionAt(a + text.length)}}); ed.focus();
        const p = ed.getCoordinateForPosition(ed.getPositionAt(a + Math.floor(text.length / 2)));
        return {{x: p.left, y: (p.top + p.bottom) / 2}}; }}""", [index, text])


def command(page, name, args=None):
    page.evaluate("([id, args]) => { window.jupyterapp.commands.execute(id, args || {}); }", [f"ffn-widgets:{name}", args])


def dialog_text(page):
    return page.locator(".jp-Dialog .jp-Dialog-content").inner_text()


def answer(page, text=None):
    """Fill the open dialog's input (if any) and press its accept button."""
    dialog = page.locator(".jp-Dialog").element_handle()
    if text is not None:
        page.locator(".jp-Dialog input").fill(text)
    page.locator(".jp-Dialog .jp-mod-accept").click()
    dialog.wait_for_element_state("hidden")  # this one: the next dialog may open at once


def new_cell(page, lab, start, needle, ready):
    """Wait for the cell a command inserted (its source holds ``needle``) to run and show ``ready``."""
    page.wait_for_function(f"(n) => ({CELL_SOURCES})().some(s => s.includes(n))", arg=needle)
    index = next(i for i, s in enumerate(page.evaluate(CELL_SOURCES)) if needle in s)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.locator(ready).first.wait_for(state="attached")
    assert page.evaluate(CELL_SOURCES)[:index] == start[:index]  # inserted below, nothing above changed
    errors = cell.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], .fw-error")
    assert errors.count() == 0, errors.first.inner_text()
    return cell


def test_the_extension_is_installed_and_active(lab, page):
    listing = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True)
    line = next((x for x in re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr).splitlines()
                 if "ffn-widgets" in x), "")
    assert "enabled" in line and "OK" in line, listing.stdout + listing.stderr
    state = page.evaluate("""(ids) => [jupyterapp.hasPlugin('ffn-widgets:plugin'),
        jupyterapp.isPluginActivated('ffn-widgets:plugin'), ids.map(i => jupyterapp.commands.hasCommand('ffn-widgets:' + i))]""",
                          IDS)
    assert state == [True, True, [True] * len(IDS)]


def test_a_command_says_what_to_run_when_the_package_is_not_imported(lab, page):
    before = page.evaluate(CELL_SOURCES)
    select(page, 1, PROMPT)
    command(page, "explore-selection")
    page.wait_for_selector(".jp-Dialog")
    text = dialog_text(page)
    assert "not imported" in text and "import ffn_widgets as fw" in text and "fw.load_model()" in text
    answer(page)
    assert page.evaluate(CELL_SOURCES) == before


def test_explore_selection_from_the_context_menu_inserts_an_explorer(lab, ran):
    page = ran
    start = page.evaluate(CELL_SOURCES)
    point = select(page, 1, PROMPT)
    page.mouse.click(point["x"], point["y"], button="right")
    items = page.locator(".lm-Menu .lm-Menu-itemLabel").all_inner_texts()
    ours = ["Explore selection", "Explore selection in the side panel", "Causal trace of selection", "Open neuron card…"]
    first = items.index(ours[0])
    assert items[first:first + len(ours)] == ours  # one group: nothing of JupyterLab's between them
    page.locator(".lm-Menu-item:has(.lm-Menu-itemLabel:text-is('Explore selection'))").click()
    cell = new_cell(page, lab, start, f'fw.Explorer(fw.current_model(), "{PROMPT}")', ".fw-activation-panel canvas")
    assert cell.locator(".fw-prompt input").input_value() == PROMPT


def test_explore_selection_in_the_side_panel_from_the_palette_on_rendered_markdown(lab, ran):
    """The document's selection (rendered markdown) survives the palette taking the focus; no cell is added."""
    page = ran
    start = page.evaluate(CELL_SOURCES)
    page.evaluate(f"""() => {{ const nb = ({NOTEBOOK})(); nb.activeCellIndex = 0;
        const p = nb.widgets[0].node.querySelector('.jp-RenderedMarkdown p'); const text = p.firstChild;
        const a = text.data.indexOf('a tiny random model'); const sel = document.getSelection();
        sel.setBaseAndExtent(text, a, text, a + 'a tiny random model'.length); }}""")
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:activate-command-palette')")
    page.locator(".lm-CommandPalette-input").fill("Explore selection in the side panel")
    page.wait_for_timeout(300)
    page.keyboard.press("Enter")
    page.wait_for_selector(".fw-dock .fw-activation-panel canvas", state="visible")
    assert page.locator(".fw-dock .fw-prompt input").input_value() == "a tiny random model"
    assert page.evaluate(CELL_SOURCES) == start
    page.click(".fw-dock .fw-dock-item .fw-panel-head button")  # Undock
    page.wait_for_selector(".fw-dock .fw-dock-item", state="detached")
    assert lab.kernel_json("len(fw.panel().docked)") == 0


def drag(page, track, fraction):
    """A real mouse drag on a range input from its middle to ``fraction`` of its width."""
    track.scroll_into_view_if_needed()
    page.wait_for_timeout(200)
    box = track.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    for i in range(1, 9):
        page.mouse.move(box["x"] + box["width"] * (0.5 + (fraction - 0.5) * i / 8), y)
    page.mouse.up()


def bars(page, root):
    return page.evaluate("(root) => [...document.querySelectorAll(root + ' .fw-bars > *')].map(e => e.textContent)", root)


def test_a_view_docks_by_its_button_and_a_docked_slider_drives_the_bars(lab, ran):
    page = ran
    page.locator(".jp-OutputArea .fw-root:has(.fw-sliders) > .fw-dock-button").click()
    page.wait_for_selector(f"{DOCKED} input[type=range]", state="visible")
    assert page.locator(".fw-dock .fw-dock-button").count() == 0 or not page.locator(".fw-dock .fw-dock-button").first.is_visible()
    assert page.evaluate("() => [...jupyterapp.shell.widgets('right')].find(w => w.title.label === 'FFN').isVisible")
    before = bars(page, DOCKED)
    drag(page, page.locator(f"{DOCKED} input[type=range]"), 1.0)  # towards ×3
    page.wait_for_function(f"""() => {{ const r = document.querySelector('{DOCKED}');
        return r.dataset.sent !== undefined && r.dataset.seq === r.dataset.sent; }}""", polling=20, timeout=60000)
    value = float(page.locator(f"{DOCKED} input[type=range]").input_value())
    assert value > 1.5 and lab.kernel_json("w.scales")[0] == pytest.approx(value)
    after = bars(page, DOCKED)
    assert after != before
    page.wait_for_function("(b) => JSON.stringify(b) === JSON.stringify([...document.querySelectorAll("
                           "'.jp-OutputArea .fw-sliders .fw-bars > *')].map(e => e.textContent))", arg=after)
    shot(page, "panel-light.png")
    lab.theme("JupyterLab Dark")
    lum = page.evaluate("""() => { const c = getComputedStyle(document.querySelector('.fw-dock-item')).backgroundColor
        .match(/\\d+/g).map(Number); return (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255; }""")
    assert lum < 0.3  # the panel follows the dark theme
    shot(page, "panel-dark.png")
    lab.theme("JupyterLab Light")


def test_view_dock_from_python(lab, ran):
    page = ran
    lab.execute("card = fw.NeuronCard(lm, 1, 7)\ncard.dock()")
    page.wait_for_selector(".fw-dock .fw-dock-item:nth-child(2) .fw-card-promoted", state="attached")
    assert page.locator(".fw-dock .fw-dock-title").all_inner_texts()[1] == "L1.N7"
    assert lab.kernel_json("[type(v).__name__ for v in fw.panel().docked]") == ["NeuronSliders", "NeuronCard"]


def test_an_edit_shows_in_the_panel_and_its_undo_restores_the_weights(lab, ran):
    page = ran
    lab.execute("""from ffn_widgets.editing.rome import RomeSettings
w0 = lm.values(1).clone()
fw.rome_edit(lm, prompt, "The Eiffel Tower", " Rome", 1, corpus=fw.load_corpus("lee"), tokens=512,
             settings=RomeSettings(steps=3, prefix_lengths=((3, 1),)), progress=False)""")
    row = page.locator(".fw-dock .fw-dock-edit")
    row.wait_for(state="visible")
    assert "The Eiffel Tower → Rome" in row.inner_text()
    assert lab.kernel_json("bool(torch.equal(lm.values(1), w0))") is False
    row.locator("button").click()
    row.wait_for(state="detached")
    assert lab.kernel_json("[bool(torch.equal(lm.values(1), w0)), len(lm.edits)]") == [True, 0]


def test_causal_trace_and_neuron_card_commands_ask_then_insert_cells(lab, ran):
    page = ran
    start = page.evaluate(CELL_SOURCES)
    select(page, 1, PROMPT)
    command(page, "causal-trace-selection")
    page.wait_for_selector(".jp-Dialog input")
    assert page.locator(".jp-Dialog input").input_value() == "The Eiffel Tower"  # the guessed subject
    answer(page)
    new_cell(page, lab, start, f'fw.CausalTrace(fw.current_model(), "{PROMPT}", "The Eiffel Tower")', ".fw-trace-maps")

    start = page.evaluate(CELL_SOURCES)
    select(page, 1, PROMPT)
    command(page, "open-neuron-card")
    page.wait_for_selector(".jp-Dialog input")
    answer(page, "L5.N3")  # the tiny model has 2 layers: said, then asked again
    page.wait_for_selector(".jp-Dialog:has-text('layers 0–1')")
    answer(page)
    page.wait_for_selector(".jp-Dialog input")
    answer(page, "1:7")
    new_cell(page, lab, start, f'fw.NeuronCard(fw.current_model(), 1, 7, prompt="{PROMPT}")', ".fw-card-prompt")


PLAIN_BARS = """
def plain_probs(scale, k=10):
    \"\"\"Top-k next-token probabilities from a plain HF forward, neuron L1.N7 scaled by hand at every position.\"\"\"
    def scaled(module, args):
        x = args[0].clone()
        x[..., 7] *= scale
        return (x,)
    h = lm.model.model.layers[1].mlp.down_proj.register_forward_pre_hook(scaled)
    try:
        with torch.no_grad():
            p = lm.model(input_ids=lm.encode(prompt)[None]).logits[0, -1].float().softmax(-1)
    finally:
        h.remove()
    return p.topk(k).values.tolist()
"""


def pct(p):
    """The sliders' number format (js/src/views/sliders.ts)."""
    return f"{100 * p:.1f}%" if p >= 0.1 else f"{100 * p:#.2g}%".replace("e-0", "e-")  # toPrecision(2) keeps zeros


def numbers(page, selector):
    """Text of the matching elements, shown or scrolled out of view."""
    return page.evaluate("(s) => [...document.querySelectorAll(s)].map(e => e.textContent)", selector)


def docked_versions(page):
    """The weights version each docked view says its numbers describe, and whether any says it is stale."""
    return page.evaluate("""() => [...document.querySelectorAll('.fw-dock .fw-root[data-weights-version]')]
        .map(r => [r.dataset.weightsVersion, r.classList.contains('fw-is-stale')])""")


def test_an_edit_from_a_docked_editor_moves_the_docked_views_and_the_panels_undo_brings_them_back(lab, ran):
    """Issue 24: Apply in a docked Editor while sliders and explorers are docked. Every docked view then shows the
    edited weights (the bars equal a plain HF forward of the edited model, the cell copy agrees), and the panel's
    Undo brings back the original numbers."""
    page = ran
    lab.execute(PLAIN_BARS + """
from ffn_widgets.editing.rome import RomeSettings
ex = fw.Explorer(lm, prompt, target=" Paris")
ed = fw.Editor(lm, prompt, "The Eiffel Tower", " Rome", layer=1, corpus=fw.load_corpus("lee"), tokens=512,
               settings=RomeSettings(steps=4, prefix_lengths=((3, 1),)))
ex.dock(); ed.dock()""")
    page.wait_for_selector(".fw-dock .fw-editor .fw-ed-apply", state="visible")
    version = str(lab.kernel_json("lm.state_version"))
    page.wait_for_function("(v) => [...document.querySelectorAll('.fw-dock .fw-root:has(.fw-prompt input)')]"
                           ".every(r => r.dataset.weightsVersion === v)", arg=version)
    nums = f"{DOCKED} .fw-bars .fw-num"
    before = numbers(page, nums)
    scale = lab.kernel_json("w.scales[0]")
    assert before[:10] == [pct(p) for p in lab.kernel_json(f"plain_probs({scale})")]

    page.locator(".fw-dock .fw-ed-apply").click()
    page.wait_for_selector(".fw-dock .fw-ed-report .fw-ed-row", state="visible", timeout=300_000)
    edited = str(lab.kernel_json("lm.state_version"))
    assert edited != version and lab.kernel_json("len(lm.edits)") == 1
    page.wait_for_function("(v) => { const r = [...document.querySelectorAll('.fw-dock .fw-root[data-weights-version]')];"
                           " return r.length >= 4 && r.every(x => x.dataset.weightsVersion === v); }", arg=edited)
    assert not any(stale for _, stale in docked_versions(page))
    after = numbers(page, nums)
    assert after != before
    assert after[:10] == [pct(p) for p in lab.kernel_json(f"plain_probs({scale})")]  # the edited model's numbers
    assert numbers(page, ".jp-OutputArea .fw-sliders .fw-bars .fw-num") == after  # the cell copy too (off screen)
    out = lab.execute("ex.wait()\nwith torch.no_grad():\n    plain = lm.model(input_ids=lm.encode(prompt)[None]).logits[0]\n"
                      "print('gap', float((ex.computed.run.logits - plain).abs().max()))")
    assert float(out.split("gap")[-1]) < 1e-4, out  # the docked explorer's heatmap is of the edited model
    shot(page, "panel-after-edit.png")

    page.locator(".fw-dock .fw-dock-edit button").click()
    page.locator(".fw-dock .fw-dock-edit").wait_for(state="detached")
    undone = str(lab.kernel_json("lm.state_version"))
    page.wait_for_function("(v) => [...document.querySelectorAll('.fw-dock .fw-root:has(.fw-sliders)')]"
                           ".every(r => r.dataset.weightsVersion === v)", arg=undone)
    assert numbers(page, nums) == before  # the original weights, bit for bit: the same numbers
    page.wait_for_function("(v) => [...document.querySelectorAll('.fw-dock .fw-root[data-weights-version]')]"
                           ".every(r => r.dataset.weightsVersion === v || r.classList.contains('fw-is-stale'))",
                           arg=undone)  # the explorer's recompute may land a moment after the sliders'
    assert all(v == undone or stale for v, stale in docked_versions(page))  # current, or saying it is not
    lab.execute("fw.undock(ex); fw.undock(ed)")


def test_the_panel_goes_when_the_kernel_restarts(lab, ran):
    page = ran
    page.wait_for_function("() => document.querySelectorAll('.fw-dock').length === 1", timeout=30000)  # redrawn after the undocks
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
    page.wait_for_function("() => ![...jupyterapp.shell.widgets('right')].some(w => w.title.label === 'FFN')"
                           " && !document.querySelector('.fw-dock')", timeout=60000)
