"""Issue 5 benchmark: the cost of one slider tick, and drag-to-redraw latency in a real browser.

Kernel (default model, 16-token prompt, interleaved runs, medians), as ratios to a plain HF forward of the
same prompt measured in the same run:

- ``tick 1 layer``: one middle-layer neuron scaled; block ℓ is skipped (its output shifts by (s−1)·m·v) and
  blocks > ℓ run from the cached state, only the last position is unembedded;
- ``tick 2 layers``: neurons in layers ℓ and ℓ+1: blocks ≥ ℓ rerun with the edits (``start_at``);
- ``continuation``: 5 greedy tokens after a tick (sent after the bars, not part of the bars' latency).

Browser: a real JupyterLab (tests/browser harness) shows the sliders for the same prompt; a 4 s drag of
the middle-layer slider (one input event per frame) records, for every position the kernel answered,
the time from the input event to the bars redrawn.

The kernel figures run on the model the options name (on accelerators the clock is read after a
synchronise); the browser's notebook loads the default model on its own kernel's default device.

Usage: python benchmarks/bench_sliders.py [--repeats 21] [--threads N] [--no-browser]
       model options (benchmarks/common.py): [--device cuda] [--dtype bfloat16] [--random-weights CONFIG]
"""
import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing too

import common  # noqa: E402
import torch  # noqa: E402

import ffn_widgets as fw  # noqa: E402
from ffn_widgets.analysis.scaling import SliderEngine  # noqa: E402

PROMPT = "In the heart of France, the Eiffel Tower stands tall in the city of"  # 16 tokens

# In the page: drag the middle-layer slider for 4 s (one input event per frame, like a mouse); the view
# sets data-latency-ms (input event -> bars redrawn) whenever the kernel answers a drag position.
DRAG = """async () => {
  const root = document.querySelector('.fw-sliders'); const r = root.querySelectorAll('input[type=range]')[0];
  const latencies = [];
  const observer = new MutationObserver((ms) => { for (const m of ms)
    if (m.attributeName === 'data-latency-ms') latencies.push(Number(root.dataset.latencyMs)); });
  observer.observe(root, {attributes: true});
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
  const t0 = performance.now(); let events = 0;
  while (performance.now() - t0 < 4000) {   // a 4 s drag: one input event per frame, like a mouse
    r.value = String(1 - 0.9 * Math.abs(Math.sin(events / 25)));
    r.dispatchEvent(new Event('input', {bubbles: true})); events++;
    await sleep(16);
  }
  while (root.dataset.seq !== root.dataset.sent) await sleep(10);
  observer.disconnect();
  return {latencies, events};
}"""


def kernel(lm, repeats: int) -> None:
    def timed(fn) -> float:
        return common.timed(fn, lm.device)[0]

    mid = lm.n_layers // 2
    engine = SliderEngine(lm, PROMPT, target=" Paris")
    ids = engine.ids
    assert ids.shape[1] == 16, ids.shape
    a = int(fw.top_neurons(lm, PROMPT, mid, by="contribution", target=" Paris", k=1).neurons[0])
    b = int(fw.top_neurons(lm, PROMPT, mid + 1, by="contribution", target=" Paris", k=1).neurons[0])
    runs = {"forward": [], "tick 1 layer": [], "tick 2 layers": [], "continuation": []}

    def forward():
        with torch.no_grad():
            lm.forward(ids)

    for i in range(repeats + 2):
        s = (i % 8) / 4  # a new value every time, like a drag
        got = {"forward": timed(forward),
               "tick 1 layer": timed(lambda: engine.predict({(mid, a): s})),
               "tick 2 layers": timed(lambda: engine.predict({(mid, a): s, (mid + 1, b): s})),
               "continuation": timed(lambda: engine.continuation({(mid, a): s, (mid + 1, b): s}, 5))}
        if i >= 2:  # warm-up
            for k, v in got.items():
                runs[k].append(v)
    base = statistics.median(runs["forward"])
    print(f"kernel, {lm.name} on {lm.device}, 16-token prompt, middle layer {mid}, "
          f"torch threads {torch.get_num_threads()}, "
          f"{repeats} interleaved runs (medians):")
    for name, values in runs.items():
        med = statistics.median(values)
        print(f"  {name:14s} {1000 * med:8.1f} ms   {med / base:5.2f}x plain forward")


def browser() -> None:
    from tests.browser.lab import CHROMIUM, Lab

    if not Path(CHROMIUM).exists():
        print(f"browser: skipped (no Chromium at {CHROMIUM})")
        return
    lab = Lab.start()
    try:
        page = lab.open("tests/browser/sliders.ipynb", width=1200, height=1000)
        lab.run_all()
        page.wait_for_selector(".fw-sliders .fw-bar-fill", state="visible")
        page.evaluate(DRAG)  # warm-up drag
        got = page.evaluate(DRAG)
        lat = got["latencies"]
        timings = lab.kernel_json("w.timings")
        print(f"browser (JupyterLab + headless Chromium), drag of the middle-layer slider for 4 s, "
              f"{got['events']} input events, {len(lat)} answered:")
        print(f"  drag -> bars redrawn: median {statistics.median(lat):.1f} ms, "
              f"p90 {sorted(lat)[int(0.9 * (len(lat) - 1))]:.1f} ms")
        print(f"  last kernel tick: bars {timings.get('bars', float('nan')):.1f} ms, "
              f"continuation {timings.get('continuation', float('nan')):.1f} ms")
    finally:
        lab.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--no-browser", action="store_true")
    common.add_model_args(ap)
    args = ap.parse_args()
    lm = common.load(args)
    print(common.describe(lm))
    kernel(lm, args.repeats)
    if not args.no_browser:
        browser()


if __name__ == "__main__":
    main()
