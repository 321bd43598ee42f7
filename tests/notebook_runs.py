"""Runs a notebook top to bottom in a real kernel (nbclient), as Run All would.

The long notebooks keep the sizes of their runs (facts, steps, samples, tokens of statistics) in one code cell
tagged ``parameters``. Under the tests a cell that sets the smaller sizes below is run right after it: every
other cell runs unchanged, on the same code paths, with less data. ``FFN_TEST_FULL=1`` (``make test FULL=1``)
runs every notebook with the sizes it is written with.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FULL = os.environ.get("FFN_TEST_FULL", "") not in ("", "0")

# notebook (its path under notebooks/, without .ipynb) -> the names its parameters cell sets, smaller
SMALL = {
    "02_knowledge_neurons": {"EXPERIMENT_FACTS": "[10]"},
    "03_causal_tracing": {"TRACE_SAMPLES": "3", "SAMPLES": "1", "RELATIONS": "3"},
    "04_editing": {"TRACE_SAMPLES": "1", "EVALUATED_FACTS": "1", "FLUENCY_TOKENS": "10", "SWEEP_LAYERS": "[2, 4]",
                   "TOKENS": "8192", "SETTINGS": "fw.lessons.quick_settings()"},
    "05_many_edits": {"BATCH": "1", "METHODS": '["memit"]', "STABILITY_STEPS": "1", "TOKENS": "8192", "QUICK": "True"},
    "lessons/04_knowledge_neurons": {"EXPERIMENT_FACTS": "[10]"},
    "lessons/05_causal_tracing": {"SAMPLES": "3"},
    "lessons/06_rome": {"EDIT_LAYERS": "[0, 4, 28]", "SAMPLES": "2", "SETTINGS": "fw.lessons.quick_settings()"},
    "lessons/07_many_edits": {"BATCH": "1", "STABILITY_STEPS": "1"},
    "lessons/solutions/07_many_edits": {"BATCH": "1", "STABILITY_STEPS": "1"},
}


def key(path: Path) -> str:
    return path.relative_to(REPO / "notebooks").with_suffix("").as_posix()


def with_small_sizes(nb, name: str, full: bool = FULL):
    """The notebook with a cell setting SMALL[name] after its parameters cell (unchanged when ``full``)."""
    import nbformat

    sizes = SMALL.get(name)
    if full or not sizes:
        return nb
    cells = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{name}: SMALL sizes need exactly one cell tagged 'parameters'"
    written = nb.cells[cells[0]].source
    missing = [n for n in sizes if f"\n{n} = " not in f"\n{written}"]
    assert not missing, f"{name}: its parameters cell sets no {missing}"
    small = nbformat.v4.new_code_cell("\n".join(f"{n} = {v}" for n, v in sizes.items()))
    small.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(cells[0] + 1, small)
    return nb


def run_notebook(path: Path, monkeypatch, tmp_path, timeout: int = 600):
    """Run ``path`` (with its small sizes unless FULL) in a python3 kernel started in ``tmp_path``; return it."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = with_small_sizes(nbformat.read(path, as_version=4), key(path))
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def errors(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
