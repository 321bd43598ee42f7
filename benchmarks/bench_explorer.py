"""Issue 3 benchmark: the explorer's cost for a new prompt, the size of what it sends, the JS bundle and a
saved notebook with three widgets.

Times are medians of interleaved runs on the default model, reported as ratios to a plain HF forward of the
same 16-token prompt measured in the same run (absolute seconds depend on the machine and its load):

- ``payload``: run with every site captured, logit lens, contributions, top-k tables, binary packing and the
  synced state ready to send (ipywidgets' buffer split + JSON) — what the browser needs to draw and to
  answer hover/click by itself;
- ``values cold``/``warm``: the value vectors' top tokens for the neurons in the tables (sent right after),
  with an empty cache (a never-seen model) and with the per-model cache warm.

Usage: python benchmarks/bench_explorer.py [--repeats 7]
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

import torch  # noqa: E402
from ipywidgets.widgets.widget import _remove_buffers

import ffn_widgets as fw  # noqa: E402
from ffn_widgets.analysis.prompt_summary import summarize  # noqa: E402
from ffn_widgets.widgets import payload as P  # noqa: E402
from ffn_widgets.widgets.serialize import nbytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["The Eiffel Tower, a landmark in France, is located in the city of",  # 16 tokens each
           "The Colosseum, a landmark in Italy, is located in the city of"]


def state_bytes(widget) -> tuple[int, int]:
    """(JSON bytes, binary buffer bytes) of the widget's synced state, as ipywidgets would send it."""
    state, _, buffers = _remove_buffers(widget.get_state())
    state.pop("_esm", None)
    return len(json.dumps(state).encode()), sum(memoryview(b).nbytes for b in buffers)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-notebook", action="store_true")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    lm = fw.load_model()
    ids = [lm.encode(p) for p in PROMPTS]
    assert all(len(i) == 16 for i in ids), [len(i) for i in ids]
    ex = fw.Explorer(lm, PROMPTS[1])
    times = {"forward": [], "payload": [], "values_cold": [], "values_warm": [], "widget": []}
    for r in range(args.repeats):
        prompt, tokens = PROMPTS[r % 2], ids[r % 2]
        times["forward"].append(timed(lambda: lm.model(input_ids=tokens[None], use_cache=False))[0])

        def payload():
            c = summarize(lm, prompt, None, 8)
            data = P.run_payload(lm, c)
            _remove_buffers({"data": data}), json.dumps({k: v for k, v in data.items() if k in ("tokens", "predictions")})
            return c

        t, c = timed(payload)
        times["payload"].append(t)
        lm.forget()
        times["values_cold"].append(timed(lambda: _remove_buffers({"v": P.value_payload(lm, c)}))[0])
        times["values_warm"].append(timed(lambda: P.value_payload(lm, c))[0])
        lm.forget()
        times["widget"].append(timed(lambda: setattr(ex, "prompt", prompt))[0])  # everything, cold value cache
    med = {k: statistics.median(v) for k, v in times.items()}
    fwd = med["forward"]
    print(f"prompt: 16 tokens, {args.repeats} interleaved repeats, medians; plain HF forward {fwd * 1e3:.1f} ms")
    for k, label in [("payload", "payload (run + lens + contributions + tables, ready to send)"),
                     ("values_cold", "value-vector top tokens, cold cache"),
                     ("values_warm", "value-vector top tokens, warm cache"),
                     ("widget", "Explorer prompt change end to end (cold value cache)")]:
        print(f"  {label:58s} {med[k] * 1e3:8.1f} ms  = {med[k] / fwd:6.1f} × forward")
    L, T = lm.n_layers, 16
    cells = L * T
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
    if not args.skip_notebook:
        size = saved_notebook_bytes()
        print(f"saved notebook with three widgets (Explorer, ActivationHeatmap, LogitLens): {size / 1024:.0f} KB; limit 2 MB")


if __name__ == "__main__":
    main()
