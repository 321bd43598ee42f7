"""Writes the lesson series in notebooks/lessons/ (the index, seven lessons, their solutions) from the sources in
experiments/lessons/, so their text can be reviewed as code. Run it after changing a source:

    python experiments/make_lessons.py

Each source module defines NAME (the notebook's file name without .ipynb), LESSON and SOLUTION (lists of cells
made with the helpers below); the index is made from their TITLE and SUMMARY. Notebooks are written without
outputs.
"""
import copy
import importlib.util
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "notebooks" / "lessons"
KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
SOURCES = ["l1_logit_lens", "l2_keys", "l3_values", "l4_knowledge_neurons", "l5_causal_tracing", "l6_rome",
           "l7_many_edits"]

md, code = new_markdown_cell, new_code_cell


def exercise(number: str, text: str, placeholder: str = "answer = None  # your answer") -> list:
    """An exercise: its question, and a cell to answer in that the checker reads."""
    return [md(f"**Exercise {number}.** {text}"),
            code(f"{placeholder}\nfw.lessons.check(\"{number}\", answer);")]


def solution(number: str, text: str, source: str, check: str | None = None) -> list:
    """A worked answer: what it does, the code, and the checker's verdict (asserted, so a test that runs the
    solutions fails when a checker rejects one)."""
    check = check or f"assert fw.lessons.check(\"{number}\", answer)"
    return [md(f"**Exercise {number}.** {text}"), code(f"{source}\n{check}")]


def load(name: str):
    if str(HERE) not in sys.path:  # the sources import their helpers from this module
        sys.path.insert(0, str(HERE))
    spec = importlib.util.spec_from_file_location(name, HERE / "lessons" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(path: Path, cells: list) -> None:
    """Write a notebook with cell ids numbered in order (not random), so writing again changes nothing."""
    cells = [copy.deepcopy(c) for c in cells]
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i:02d}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(new_notebook(cells=cells, metadata=KERNEL)))


def main(out: Path = OUT) -> None:
    """Write every notebook under ``out`` (a test writes them elsewhere to check the tracked ones are current)."""
    lessons = [load(name) for name in SOURCES]
    for lesson in lessons:
        write(out / f"{lesson.NAME}.ipynb", lesson.LESSON)
        write(out / "solutions" / f"{lesson.NAME}.ipynb", lesson.SOLUTION)
    write(out / "00_index.ipynb", load("l0_index").cells(lessons))


if __name__ == "__main__":
    main()
