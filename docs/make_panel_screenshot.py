"""The README's picture of the FFN side panel: the tour's explorer in the notebook, neuron sliders docked beside it
with the late neuron dragged to ×−1, in a real JupyterLab (or Notebook 7) through the browser tests' harness.

Usage: python docs/make_panel_screenshot.py [--out docs] [--app lab|notebook] [--dark]
(needs `make browser` and the built front end; the default model)
"""
import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser.lab import Lab  # noqa: E402

SLIDERS = """prompt = "In the heart of France, the Eiffel Tower stands tall in the city of"
top = fw.top_neurons(lm, prompt, 15, by="contribution", target=" Paris", k=1)
late = fw.top_neurons(lm, prompt, 22, by="contribution", target=" Paris", k=1)
w = fw.NeuronSliders(lm, prompt, [(15, int(top.neurons[0])), (22, int(late.neurons[0]))], target=" Paris")
w.dock()"""
DOCKED = ".fw-dock .fw-sliders"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs"))
    ap.add_argument("--app", choices=["lab", "notebook"], default="lab")
    ap.add_argument("--dark", action="store_true")
    args = ap.parse_args()
    lab = Lab.start(app=args.app)
    try:
        page = lab.open("notebooks/00_tour.ipynb", width=1440, height=900)
        lab.run_all()
        page.wait_for_selector(".jp-OutputArea .fw-activation-panel canvas", state="visible")
        lab.execute(SLIDERS)
        page.wait_for_selector(f"{DOCKED} input[type=range]", state="visible")
        if args.app == "lab":
            page.evaluate("() => jupyterapp.commands.execute('application:toggle-left-area')")
        page.wait_for_timeout(1000)
        track = page.locator(f"{DOCKED} input[type=range]").nth(1)
        box = track.bounding_box()
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] / 2, y)
        page.mouse.down()
        for i in range(1, 11):  # to the left end: ×−1
            page.mouse.move(box["x"] + box["width"] / 2 - i * box["width"] / 22, y)
        page.mouse.up()
        page.wait_for_function(f"""() => {{ const r = document.querySelector('{DOCKED}');
            return r.dataset.sent !== undefined && r.dataset.seq === r.dataset.sent; }}""", timeout=90000)
        page.wait_for_timeout(4000)  # the greedy continuation follows the bars
        page.locator(".jp-Notebook .fw-activation-panel").first.scroll_into_view_if_needed()
        if args.dark:
            lab.theme("JupyterLab Dark")
        page.wait_for_timeout(800)
        path = Path(args.out) / "panel.png"
        page.screenshot(path=str(path))
        print(f"wrote {path}")
    finally:
        lab.stop()


if __name__ == "__main__":
    main()
