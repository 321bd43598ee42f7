"""Issues 3 and 14 benchmark: how soon the explorer shows a new prompt, part by part, the size of what it
sends, the JS bundle and a saved notebook with three widgets.

Kernel (default model, 16-token prompt, interleaved runs, medians), as ratios to a plain HF forward of the
same prompt measured in the same run: ``ex.prompt = ...`` on an Explorer, timed at the moment each state
update has left the widget (ipywidgets' buffer split and the JSON encoding of the message done):

- ``heatmap``: the first update, after one forward pass (the two heatmap grids, tokens, predictions);
- ``tables``: the top-k neurons of every cell; ``lens``: the logit lens of the stage shown;
- ``everything``: the value vectors' top tokens of every listed neuron too, with the per-model value cache
  warm (a prompt after the first) and cold (a never-seen model: it must not hold up the heatmap);
- ``other lens stage``: switching the lens to "before MLP" afterwards (computed only when asked for);
- ``all at once``: the pre-streaming path for reference (both lens stages, tables, packing; no values).

Browser (``--browser``): a real JupyterLab (tests/browser harness, headless Chromium) shows an Explorer; a new
prompt is typed and Enter pressed; the page records when the heatmap of the new prompt is drawn and when
nothing is missing any more (tables, lens, every listed neuron's value tokens), next to a plain forward
timed in the same kernel. ``--screenshots DIR`` saves the explorer mid-stream and finished.

Usage: python benchmarks/bench_explorer.py [--repeats 7] [--threads 1] [--skip-notebook] [--browser]
       model options (benchmarks/common.py): [--device cuda] [--dtype bfloat16] [--random-weights CONFIG]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing too

import common  # noqa: E402
import torch  # noqa: E402
from ipywidgets.widgets.widget import _remove_buffers  # noqa: E402

import ffn_widgets as fw  # noqa: E402
from ffn_widgets.analysis.prompt_summary import summarize  # noqa: E402
from ffn_widgets.widgets import payload as P  # noqa: E402
from ffn_widgets.widgets.serialize import nbytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["The Eiffel Tower, a landmark in France, is located in the city of",  # 16 tokens each
           "The Colosseum, a landmark in Italy, is located in the city of"]
PARTS = ("heatmap", "tables", "lens", "everything")


def state_bytes(widget) -> tuple[int, int]:
    """(JSON bytes, binary buffer bytes) of the widget's synced state, as ipywidgets would send it."""
    state, _, buffers = _remove_buffers(widget.get_state())
    state.pop("_esm", None)
    return len(json.dumps(state).encode()), sum(memoryview(b).nbytes for b in buffers)


def timeline(ex, prompt: str, device) -> dict[str, float]:
    """Seconds from ``ex.prompt = prompt`` to each part's state update sent (outside a kernel the whole
    stream runs before the assignment returns, so every update is timed on the way)."""
    marks: dict[str, float] = {}
    real = type(ex).send_state
    t0 = common.clock(device)

    def send_state(key=None):
        keys = set(key) if isinstance(key, (set, list, tuple)) else {key}
        real(ex, key)
        t = common.clock(device) - t0
        if "data" in keys:
            for part, field in (("heatmap", "grids"), ("tables", "top"), ("lens", "lens")):
                if field in ex.data:
                    marks.setdefault(part, t)

    ex.send_state = send_state
    try:
        ex.prompt = prompt
        marks["everything"] = common.clock(device) - t0
    finally:
        del ex.send_state
    return marks


def encode_like_a_kernel(widget) -> None:
    """Outside a kernel the widget's comm drops messages; JSON-encode them like the kernel's session does."""
    widget.comm.publish_msg = lambda msg_type, data=None, metadata=None, buffers=None, **keys: json.dumps(data)


def kernel(lm, repeats: int) -> None:
    device = lm.device
    ids = [lm.encode(p).to(device) for p in PROMPTS]
    assert all(len(i) == 16 for i in ids), [len(i) for i in ids]
    ex = fw.Explorer(lm, PROMPTS[1])
    encode_like_a_kernel(ex)
    forward = []
    warm = {p: [] for p in PARTS}
    cold = {p: [] for p in PARTS}
    other_stage, at_once = [], []
    for r in range(repeats):
        prompt, other = PROMPTS[r % 2], PROMPTS[(r + 1) % 2]  # the explorer shows `other` now
        forward.append(common.timed(lambda: lm.model(input_ids=ids[r % 2][None], use_cache=False), device)[0])
        lm.forget()  # a never-seen model: every value vector is read afresh
        for part, t in timeline(ex, prompt, device).items():
            cold[part].append(t)
        other_stage.append(common.timed(lambda: setattr(ex, "lens_stage", "mid"), device)[0])  # computes "mid"
        ex.lens_stage = "post"  # kept: nothing to compute
        ex.prompt = other  # untimed: the same prompt again next, its value vectors now cached
        for part, t in timeline(ex, prompt, device).items():
            warm[part].append(t)

        def all_at_once():
            c = summarize(lm, prompt, None, 8)
            _remove_buffers({"data": P.run_payload(lm, c)})

        at_once.append(common.timed(all_at_once, device)[0])
    fwd = statistics.median(forward)
    print(f"kernel: 16-token prompt, {repeats} interleaved repeats, medians; plain HF forward {fwd * 1e3:.1f} ms")
    print(f"  {'state update sent':44s} {'warm value cache':>24s} {'cold value cache':>24s}")
    for part in PARTS:
        w, c = statistics.median(warm[part]), statistics.median(cold[part])
        print(f"  {part:44s} {w * 1e3:9.1f} ms = {w / fwd:5.2f}x {c * 1e3:11.1f} ms = {c / fwd:5.2f}x")
    for label, values in (("other lens stage, when switched to", other_stage),
                          ("all at once (both lens stages, no values)", at_once)):
        v = statistics.median(values)
        print(f"  {label:44s} {v * 1e3:9.1f} ms = {v / fwd:5.2f}x")
    sizes(lm, ex)


def sizes(lm, ex) -> None:
    L, T = lm.n_layers, 16
    cells = L * T
    ex.lens_stage = "mid"  # both stages in the state
    print(f"payload bytes ({L} layers × {T} tokens = {cells} cells):")
    print(f"  activation heatmap (max |activation| + contribution, float16):   {nbytes(ex.data['grids']) / cells:.1f} B/cell")
    for stage in ("post", "mid"):
        print(f"  logit lens '{stage}' (p, rank, top token, top p):              {nbytes(ex.data['lens'][stage]) / cells:.1f} B/cell")
    print(f"  top-8 neuron tables (2 rankings × ids, activation, contribution): {nbytes(ex.data['top']) / cells:.1f} B/cell")
    js, binary = state_bytes(ex)
    print(f"  whole explorer state: {binary / 1024:.1f} KB binary + {js / 1024:.1f} KB JSON"
          f" = {(binary + js) / cells:.0f} B/cell (value tokens: {nbytes(ex.values) / 1024:.1f} KB binary)")
    bundle = ROOT / "ffn_widgets" / "static" / "widget.js"
    if bundle.exists():
        import gzip

        raw = bundle.read_bytes()
        print(f"JS bundle: {len(raw) / 1024:.1f} KB minified ({len(gzip.compress(raw)) / 1024:.1f} KB gzip); limit 500 KB")
    else:
        print("JS bundle: not built (make js)", file=sys.stderr)


def saved_notebook_bytes() -> int:
    import nbformat
    from nbclient import NotebookClient

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    prompt = "The Eiffel Tower is located in the city of"
    nb.cells = [nbformat.v4.new_code_cell(c) for c in [
        "import ffn_widgets as fw\nlm = fw.load_model()",
        f"fw.Explorer(lm, {prompt!r})", f"fw.ActivationHeatmap(lm, {prompt!r})", f"fw.LogitLens(lm, {prompt!r})"]]
    with tempfile.TemporaryDirectory() as tmp:
        NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=True,
                       resources={"metadata": {"path": tmp}}).execute()
        path = Path(tmp) / "three.ipynb"
        nbformat.write(nb, path)
        return path.stat().st_size


# In the page: type a prompt into the explorer's box, press Enter, and note when the view's markers say the
# new prompt is drawn (data-prompt) and which parts are still missing (data-missing), each at the next frame.
PAGE_TIMING = """async ([prompt, timeout]) => {
  const root = document.querySelector('.fw-content[data-prompt]');
  const input = root.querySelector('input[aria-label="prompt"]');
  const marks = {};
  return await new Promise((resolve) => {
    const t0 = performance.now();
    const mark = (name) => { if (!(name in marks)) { marks[name] = null;
      requestAnimationFrame(() => { marks[name] = performance.now() - t0; if (name === 'everything') done(); }); } };
    const check = () => {
      if (root.dataset.prompt !== prompt) return;
      const missing = (root.dataset.missing || '').split(' ').filter(Boolean);
      mark('heatmap');
      if (!missing.includes('top')) mark('tables');
      if (!missing.includes('lens')) mark('lens');
      if (!missing.length) mark('everything');
    };
    const obs = new MutationObserver(check);
    const timer = setTimeout(() => done(true), timeout);
    function done(late) { obs.disconnect(); clearTimeout(timer); resolve({...marks, timed_out: !!late}); }
    obs.observe(root, {attributes: true, attributeFilter: ['data-prompt', 'data-missing']});
    input.value = prompt;
    input.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}));
  });
}"""


def browser(repeats: int, threads: int | None, screenshots: str | None) -> None:
    """Time a new prompt in a real JupyterLab page (see the module docstring); the kernel is the notebook's."""
    import nbformat

    from tests.browser.lab import CHROMIUM, Lab

    if not Path(CHROMIUM).exists():
        print(f"browser: skipped (no Chromium at {CHROMIUM})")
        return
    cells = [f"import time, torch\ntorch.set_num_threads({threads})" if threads else "import time, torch",
             "import ffn_widgets as fw\nlm = fw.load_model()\n"
             f"ids = [lm.encode(p).to(lm.device)[None] for p in {PROMPTS!r}]",
             f"ex = fw.Explorer(lm, {PROMPTS[1]!r})\nex"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder = Path(tempfile.mkdtemp(prefix="bench-explorer-"))
    nbformat.write(nb, folder / "bench_explorer.ipynb")
    lab = Lab.start()
    try:
        page = lab.open(folder / "bench_explorer.ipynb", width=1300, height=2400)
        lab.run_all()
        page.wait_for_selector(".fw-content[data-prompt] .fw-activation-panel canvas", state="visible")
        page.wait_for_function("() => document.querySelector('.fw-content[data-prompt]').dataset.missing === ''")
        # the baseline: the median of five forwards, once the page has settled (a page still painting the last
        # prompt would slow the forward and flatter every ratio)
        forward = ("fs = []\nfor _ in range(5):\n    t = time.perf_counter(); lm.model(input_ids=ids[{i}], use_cache=False)\n"
                   "    fs.append(time.perf_counter() - t)\nprint(sorted(fs)[2])")
        complete = "() => document.querySelector('.fw-content[data-prompt]').dataset.missing === ''"
        runs = {"warm": {p: [] for p in PARTS}, "cold": {p: [] for p in PARTS}}
        fwd = []
        for r in range(repeats + 1):  # the first round warms the page and the kernel up
            prompt, other = PROMPTS[r % 2], PROMPTS[(r + 1) % 2]  # the page shows `other` now
            time.sleep(2)
            f = float(lab.execute(forward.format(i=r % 2)).strip())
            lab.execute("lm.forget()")  # a never-seen model: every value vector is read afresh
            cold = page.evaluate(PAGE_TIMING, [prompt, 60000])
            page.wait_for_function(complete)
            page.evaluate(PAGE_TIMING, [other, 60000])  # untimed: the same prompt again next, values cached
            page.wait_for_function(complete)
            warm = page.evaluate(PAGE_TIMING, [prompt, 60000])
            page.wait_for_function(complete)
            if r and not cold["timed_out"] and not warm["timed_out"]:
                fwd.append(f)
                for cache, marks in (("warm", warm), ("cold", cold)):
                    for part in PARTS:
                        runs[cache][part].append(marks[part] / 1000)
        base = statistics.median(fwd)
        print(f"browser (JupyterLab + headless Chromium): Enter in the prompt box -> drawn (next frame), {len(fwd)} runs,"
              f" medians; plain forward in the same kernel {base * 1e3:.1f} ms")
        print(f"  {'drawn':44s} {'warm value cache':>24s} {'cold value cache':>24s}")
        for part in PARTS:
            w, c = statistics.median(runs["warm"][part]), statistics.median(runs["cold"][part])
            print(f"  {part:44s} {w * 1e3:9.1f} ms = {w / base:5.2f}x {c * 1e3:11.1f} ms = {c / base:5.2f}x")
        if screenshots:
            shots(lab, page, Path(screenshots))
    finally:
        lab.stop()


def shots(lab, page, folder: Path) -> None:
    """The explorer mid-stream (heatmap drawn, the rest coming; a cold value cache) and finished."""
    folder.mkdir(parents=True, exist_ok=True)
    lab.execute("ex.cell = {'layer': 20, 'token': 15}\nlm.forget()")
    root = page.locator(".fw-content[data-prompt]").first
    page.evaluate("""(p) => { const root = document.querySelector('.fw-content[data-prompt]');
        const input = root.querySelector('input[aria-label="prompt"]'); input.value = p;
        input.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'})); }""", PROMPTS[0])
    page.wait_for_function(f"() => document.querySelector('.fw-content[data-prompt]').dataset.prompt === {PROMPTS[0]!r}",
                           polling="raf")
    missing = page.evaluate("() => document.querySelector('.fw-content[data-prompt]').dataset.missing")
    root.screenshot(path=str(folder / "explorer-streaming.png"))
    page.wait_for_function("() => document.querySelector('.fw-content[data-prompt]').dataset.missing === ''")
    root.screenshot(path=str(folder / "explorer-finished.png"))
    print(f"screenshots in {folder}: mid-stream (still missing when taken: {missing or 'nothing'}) and finished")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--skip-notebook", action="store_true")
    ap.add_argument("--skip-kernel", action="store_true")
    ap.add_argument("--browser", action="store_true", help="also time the real JupyterLab page")
    ap.add_argument("--screenshots", metavar="DIR", default=None, help="with --browser: save mid-stream/finished shots")
    common.add_model_args(ap)
    args = ap.parse_args()
    if args.browser:  # first: a model loaded in this process too slowed the notebook kernel's work by a fifth
        browser(args.repeats, args.threads, args.screenshots)
    if not args.skip_kernel:
        torch.set_grad_enabled(False)
        lm = common.load(args)
        print(common.describe(lm))
        kernel(lm, args.repeats)
    if not args.skip_notebook:
        size = saved_notebook_bytes()
        print(f"saved notebook with three widgets (Explorer, ActivationHeatmap, LogitLens): {size / 1024:.0f} KB; limit 2 MB")
