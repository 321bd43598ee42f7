"""Screenshots of the views for the README, taken in a real JupyterLab (the browser tests' harness).

Builds a notebook (a neuron card mined from a slice of the default corpus, knowledge-neuron sliders with
the top neuron suppressed, a causal trace), runs it in headless Chromium and saves each widget as
``docs/<name>.png``. The explorer's picture comes from the explorer's browser test
(``FFN_WIDGETS_SCREENSHOTS=docs pytest tests/browser/test_explorer_lab.py``).

``--set editing`` takes the stability monitor showing the long r-ROME run that ships with the package.

Usage: python docs/make_screenshots.py [--out docs] [--set views|editing]   (needs `make browser` and the built
front end)
"""
import argparse
import sys
import tempfile
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser.lab import Lab  # noqa: E402

PROMPT = "The Eiffel Tower is located in the city of"
CELLS = [
    f"""import ffn_widgets as fw
from ffn_widgets.memories.corpus import Corpus
lm = fw.load_model()
prompt = {PROMPT!r}""",
    # a slice spread over the whole corpus, so the triggers come from many articles
    """wiki = fw.load_corpus()
index = fw.mine_triggers(lm, Corpus(wiki.sentences[::15], "wikipedia[::15]"), progress=False)
top = fw.top_neurons(lm, prompt, 24, by="contribution", target=" Paris", k=1)
card = fw.NeuronCard(lm, 24, int(top.neurons[0]), index=index, prompt=prompt)
card""",
    """kn = fw.knowledge_neurons(lm, prompt, " Paris", paraphrases=["The Eiffel Tower can be found in the city of"])
sliders = fw.NeuronSliders(lm, prompt, [(l, n) for l, n, _ in list(kn)[:6]], target=" Paris")
layer, neuron, _ = next(iter(kn))
sliders.set_scale(layer, neuron, 0.0)
sliders""",
    """tr = fw.CausalTrace(lm, prompt, "The Eiffel Tower")
tr""",
]
SHOTS = [("neuron_card.png", ".fw-neuron-card"), ("sliders.png", ".fw-sliders"), ("causal_trace.png", ".fw-trace-maps")]
TRACE_DONE = "() => [...document.querySelectorAll('.fw-content')].some(r => r.dataset.status === 'done')"
# the editing views: the long r-ROME stability run that ships with the package, in the live widget
EDITING = ["""import ffn_widgets as fw
lm = fw.load_model()
run = next(r for r in fw.measured_runs() if r.settings["method"] == "r-rome")
fw.StabilityMonitor(lm, run=run)"""]
SETS = {"views": (CELLS, SHOTS, TRACE_DONE),
        "editing": (EDITING, [("stability.png", ".fw-stability")], "() => !!document.querySelector('.fw-stability')")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs"))
    ap.add_argument("--set", choices=sorted(SETS), default="views")
    args = ap.parse_args()
    cells, shots, ready = SETS[args.set]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp()) / "screenshots.ipynb"
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells], metadata=kernel),
                   path)
    lab = Lab.start()
    try:
        page = lab.open(path, width=1250, height=2600, timeout=300)
        lab.run_all(timeout=600)
        page.wait_for_function(ready, timeout=600_000)
        page.wait_for_timeout(800)
        for name, selector in shots:
            widget = page.locator(selector).first
            widget.scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            root = widget.locator("xpath=ancestor-or-self::*[contains(@class, 'fw-root')][1]")
            (root if root.count() else widget).screenshot(path=str(out / name))
            print("saved", out / name)
    finally:
        lab.stop()


if __name__ == "__main__":
    main()
