"""Every notebook in notebooks/ runs top to bottom on the default model (nbclient, a real kernel); the long ones
with the smaller sizes of tests/notebook_runs.py unless FFN_TEST_FULL=1."""
import re
from pathlib import Path

import pytest

from notebook_runs import REPO, SMALL, errors, run_notebook, with_small_sizes

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.real_model
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    nb = run_notebook(path, monkeypatch, tmp_path)
    assert not errors(nb), errors(nb)[0].get("evalue")
    if path.stem == "00_tour":
        # the explorer was displayed as a widget, with its state saved in the notebook
        widget_views = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert widget_views


@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_small_sizes_replace_parameters_the_notebook_sets(name):
    """Each smaller size names a variable of its notebook's one parameters cell, set again right after it."""
    import nbformat

    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    written = [c.source for c in nb.cells]
    small = with_small_sizes(nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4), name, full=False)
    (at,) = [i for i, c in enumerate(small.cells) if "injected-parameters" in c.metadata.get("tags", [])]
    assert "parameters" in small.cells[at - 1].metadata["tags"]
    assert [c.source for i, c in enumerate(small.cells) if i != at] == written  # every other cell as written
    for line in small.cells[at].source.splitlines():
        variable, value = line.split(" = ", 1)
        written_line = re.search(rf"^{variable} = (.*)$", small.cells[at - 1].source, re.M)
        assert written_line and not written_line.group(1).startswith(value)
