"""Self-contained HTML export (ffn_widgets/widgets/export.py), the static still in each view's output (snapshot.py) and
the nbconvert exporter (notebook_html.py): the saved state is the widget's own, references are followed,
model text cannot break out of a ``<script>`` or become HTML."""
import base64
import json
import re

import nbformat
import pytest

import ffn_widgets as fw
from ffn_widgets.widgets import export
from ffn_widgets.widgets.base import bundle_built

pytestmark = pytest.mark.skipif(not bundle_built(), reason="the front end is not built (make js)")

PROMPT = "The Eiffel Tower is located in the city of"
EVIL = 'A </script><script>alert(1)</script> <b>bold</b> & <img src=x onerror="alert(2)"> in'


def scripts(page: str, kind: str) -> list[str]:
    return re.findall(rf'<script[^>]* type="{re.escape(kind)}"[^>]*>(.*?)</script>', page, flags=re.S)


def saved_of(page: str) -> dict:
    """All saved models of a page (several state blocks merge, like the host does)."""
    out = {"state": {}, "modules": {}}
    for text in scripts(page, export.STATE_TYPE):
        part = json.loads(text)
        out["state"].update(part["state"])
        out["modules"].update(part.get("modules", {}))
    return out


def with_buffers(model: dict) -> dict:
    state = json.loads(json.dumps(model["state"]))
    for b in model.get("buffers", []):
        node = state
        for key in b["path"][:-1]:
            node = node[key]
        node[b["path"][-1]] = base64.b64decode(b["data"])
    return state


def plain(value):
    """get_state() as comparable data: buffers as bytes, tuples as lists."""
    if isinstance(value, (memoryview, bytes, bytearray)):
        return bytes(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@pytest.fixture(scope="module")
def explorer(tiny_lm):
    ex = fw.Explorer(tiny_lm, PROMPT)
    ex.show(fw.NeuronCard(tiny_lm, 1, 5, prompt=PROMPT), "L1.N5")
    return ex


def test_exported_state_is_the_widgets_state_with_references_resolved(explorer):
    page = export.html_page(explorer, title="Eiffel")
    saved = saved_of(page)
    card = explorer.shown
    assert set(saved["state"]) == {explorer.model_id, card.model_id, explorer.layout.model_id, card.layout.model_id}
    for w in (explorer, card):
        state = with_buffers(saved["state"][w.model_id])
        expected = plain(w.get_state())
        assert "_esm" not in state and expected.pop("_esm") == export.bundle_text()  # the bundle travels once
        assert state == expected
    assert saved["state"][explorer.model_id]["state"]["slot"] == [f"IPY_MODEL_{card.model_id}"]
    # what a click in the file needs was sent before the export: both lens stages, the tables, the value tokens
    data = explorer.data
    assert set(data["lens"]) == {"post", "mid"} and not data["pending"] and data["top"]
    assert explorer.lens_stage == "post" and explorer.values.get("neurons")
    # one bundle, one bootstrap, the view named
    assert len(scripts(page, export.MODULE_TYPE)) == 1 and json.loads(scripts(page, export.MODULE_TYPE)[0]) == export.bundle_text()
    assert json.loads(scripts(page, export.VIEW_TYPE)[0]) == {"model_id": explorer.model_id}
    assert "<title>Eiffel</title>" in page and 'src="http' not in page and "import(URL.createObjectURL" in page


def test_script_end_tags_in_model_text_are_escaped(tiny_lm, tmp_path):
    ex = fw.Explorer(tiny_lm, EVIL)
    path = fw.export_html([ex], tmp_path / "evil.html", title="<i>title</i> </script>")
    page = path.read_text(encoding="utf-8")
    assert page.count("<script") == page.count("</script>") == 4  # state, view, bundle, bootstrap: nothing else
    assert "alert(" not in page.split("<script", 1)[0]
    assert "<title>&lt;i&gt;title&lt;/i&gt; &lt;/script&gt;</title>" in page
    for text in scripts(page, export.STATE_TYPE) + scripts(page, export.VIEW_TYPE):
        assert "<" not in text and ">" not in text  # JSON escapes, read back by JSON.parse
    assert saved_of(page)["state"][ex.model_id]["state"]["prompt"] == EVIL
    assert ex.to_html(tmp_path / "again.html") == tmp_path / "again.html"


def test_script_json_round_trips_every_dangerous_character():
    text = "</script><!-- & \u2028 \u2029 \"quoted\""
    encoded = export.script_json({"t": text})
    assert not set("<>&\u2028\u2029") & set(encoded)
    assert json.loads(encoded) == {"t": text}


def test_modules_are_shared_and_other_modules_kept():
    saved = {"state": {
        "a": {"model_module": "anywidget", "state": {"_esm": "MAIN", "view": "x"}},
        "b": {"model_module": "anywidget", "state": {"_esm": "OLD", "view": "y"}},
        "c": {"model_module": "anywidget", "state": {"_esm": "OLD"}},
        "d": {"model_module": "@jupyter-widgets/base", "state": {"_esm": "not a module"}}}}
    split, texts = export.split_modules(saved, "MAIN")
    assert texts == {"main": "MAIN", "m1": "OLD"} and split["modules"] == {"b": "m1", "c": "m1"}
    assert split["state"]["a"]["state"] == {"view": "x"} and split["state"]["d"]["state"]["_esm"] == "not a module"


def test_export_takes_widgets_only():
    with pytest.raises(TypeError, match="widget"):
        export.html_page(["not a widget"])


def test_output_carries_a_small_static_still_with_model_text_escaped(tiny_lm):
    ex = fw.Explorer(tiny_lm, EVIL)
    data, _ = ex._repr_mimebundle_()
    still = data["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in data and len(still) < 10_000
    assert "<img src=x" not in still and "<b>bold" not in still and "&lt;b&gt;bold&lt;/b&gt;" in still
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", still).group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (height, width) == (tiny_lm.n_layers, len(ex.data["tokens"]))


def notebook(widgets, roots) -> nbformat.NotebookNode:
    """What a headless run (nbclient) or JupyterLab with "Save Widget State" saves: outputs and the state."""
    from ipywidgets import Widget

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("ex")
    for w in roots:
        data, _ = w._repr_mimebundle_()
        cell.outputs.append(nbformat.v4.new_output("display_data", data=data))
    nb.cells = [nbformat.v4.new_markdown_cell("# Saved"), cell]
    if widgets:
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": Widget.get_manager_state(widgets=widgets)}
    return nb


def test_nbconvert_exporter_replaces_our_views_by_working_copies(explorer):
    from nbconvert import HTMLExporter

    from ffn_widgets.widgets.notebook_html import FFNHTMLExporter

    card = explorer.shown
    nb = notebook([explorer, card, explorer.layout, card.layout], [explorer, card])
    plain_html, _ = HTMLExporter().from_notebook_node(nb)
    assert "html-manager" in plain_html and "application/vnd.jupyter.widget-view+json" in plain_html
    assert export.MODULE_TYPE not in plain_html  # nbconvert alone: the views come from a CDN, or not at all
    page, _ = FFNHTMLExporter().from_notebook_node(nb)
    assert "html-manager" not in page and "application/vnd.jupyter.widget-state+json" not in page
    assert len(scripts(page, export.MODULE_TYPE)) == 1 and page.count("window.ffnWidgetsBooted = true") == 1
    views = [json.loads(t)["model_id"] for t in scripts(page, export.VIEW_TYPE)]
    assert views == [explorer.model_id, card.model_id]
    saved = saved_of(page)
    assert with_buffers(saved["state"][card.model_id]) == {k: v for k, v in plain(card.get_state()).items() if k != "_esm"}


def test_without_saved_state_both_exporters_show_the_still(tiny_lm):
    from nbconvert import HTMLExporter

    from ffn_widgets.widgets.notebook_html import FFNHTMLExporter

    ex = fw.ActivationHeatmap(tiny_lm, PROMPT)
    nb = notebook([], [ex])
    for exporter in (HTMLExporter(), FFNHTMLExporter()):
        page, _ = exporter.from_notebook_node(nb)
        assert "ffn-widgets-snapshot" in page and "object at 0x" not in page
    nb.cells[1].outputs[0].data.pop("text/html")  # an output saved before the still existed
    page, _ = FFNHTMLExporter().from_notebook_node(nb)
    assert "was not saved with the notebook" in page
