"""Issue 14 benchmark: the analyses on one model shape, timed on its device, with peak accelerator memory.

The issue's GPU figures come from random weights of a named shape (timings only), e.g.::

    python benchmarks/bench_shapes.py --device cuda --dtype bfloat16 \\
        --random-weights benchmarks/configs/llama-8b-shape.json

Each figure is the median seconds of ``--repeats`` runs (the clock read after a synchronise), its ratio to a
plain forward of the same 16-token prompt measured in the same run, and the peak memory allocated on the
accelerator during that step (CUDA only):

- ``forward``, ``lm.run`` (every site captured), ``logit lens``, ``top neurons`` (by contribution);
- ``explorer payload``: what the explorer computes for a new prompt — the run, lens, contributions and top-k
  tables (``summarize``) and the value-vector top tokens of every listed neuron with a cold cache (the widget's
  serialisation is measured by ``bench_explorer.py``);
- ``causal trace``: the three kinds (hidden, mlp, attn) in one pass, 10 noise samples, window 10;
- ``knowledge neurons``: integrated gradients over every layer, 20 steps;
- ``ROME``: one r-ROME edit on a float32 copy of the model (ROME refuses half precision; the half-precision
  model is released first), its key statistics over ``--tokens`` corpus tokens timed once on their own, the
  edit timed with the statistics cached.

Usage: python benchmarks/bench_shapes.py [--repeats 3] [--tokens 100000] [--skip-rome] [--json PATH]
       model options (benchmarks/common.py): [--device cuda] [--dtype bfloat16] [--threads N]
       [--random-weights CONFIG]
"""
import argparse
import inspect
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing too

import common  # noqa: E402
import torch  # noqa: E402

import ffn_widgets as fw  # noqa: E402
from ffn_widgets.analysis.prompt_summary import summarize  # noqa: E402

PROMPT = "In the heart of France, the Eiffel Tower stands tall in the city of"  # 16 tokens
FACT = ("The Eiffel Tower is located in the city of", "The Eiffel Tower", " Paris")
EDIT_TARGET = " Rome"


def measure(lm, steps: dict, repeats: int) -> dict:
    """Median seconds and peak accelerator MiB of each step, runs interleaved after one warm-up each."""
    dev = lm.device
    for fn in steps.values():  # warm-up (and a first error surfaces before the timings)
        fn()
    times = {name: [] for name in steps}
    peaks = {}
    for _ in range(repeats):
        for name, fn in steps.items():
            common.reset_peak(dev)
            times[name].append(common.timed(fn, dev)[0])
            peak = common.peak_memory_mb(dev)
            peaks[name] = max(peaks.get(name, 0.0), peak) if peak is not None else None
    return {name: {"s": statistics.median(ts), "peak_mb": peaks[name]} for name, ts in times.items()}


def analyses(lm, repeats: int) -> dict:
    ids = lm.encode(PROMPT)
    prompt, subject, target = FACT
    mid = lm.n_layers // 2

    def forward():
        with torch.no_grad():
            lm.forward(ids[None])

    def payload():
        lm.forget()  # a cold value cache, as for a prompt the explorer never saw
        summary = summarize(lm, PROMPT, None, 8)
        summary.lens  # noqa: B018 - both stages (computed here if summarize leaves them for later)
        if "lm" in inspect.signature(summary.listed_values).parameters:  # the older signature
            summary.listed_values(lm)
        else:
            summary.listed_values()

    steps = {
        "forward": forward,
        "lm.run (all sites)": lambda: lm.run(PROMPT),
        "logit lens": lambda: fw.logit_lens(lm, PROMPT, target=" Paris"),
        "top neurons": lambda: fw.top_neurons(lm, PROMPT, mid, by="contribution", target=" Paris"),
        "explorer payload": payload,
        "causal trace, 3 kinds": lambda: fw.causal_trace(lm, prompt, subject, kind="all", check_target=False,
                                                         progress=False),
        "knowledge neurons": lambda: fw.knowledge_neurons(lm, prompt, target),
    }
    return measure(lm, steps, repeats)


def rome(lm, tokens: int) -> dict:
    """Key statistics (once, on their own) and one r-ROME edit with them cached."""
    prompt, subject, _ = FACT
    layer = fw.default_layer(lm)
    dev = lm.device
    common.reset_peak(dev)
    stats_s, _ = common.timed(lambda: fw.key_statistics(lm, layer, tokens=tokens, progress=False, force=True), dev)
    stats_mb = common.peak_memory_mb(dev)
    common.reset_peak(dev)
    edit_s, e = common.timed(lambda: fw.rome_edit(lm, prompt, subject, EDIT_TARGET, layer, tokens=tokens,
                                                  progress=False), dev)
    edit_mb = common.peak_memory_mb(dev)
    lm.edits.reset()
    return {"layer": layer, "tokens": tokens, "statistics": {"s": stats_s, "peak_mb": stats_mb},
            "edit (statistics cached)": {"s": edit_s, "peak_mb": edit_mb},
            "edit stages": {k: round(v, 3) for k, v in e.seconds.items()}, "steps": len(e.loss_curve)}


def show(rows: dict, base: float) -> None:
    for name, r in rows.items():
        mem = "" if r["peak_mb"] is None else f"   peak {r['peak_mb']:9,.0f} MiB"
        print(f"  {name:26s} {r['s'] * 1e3:10.1f} ms  {r['s'] / base:8.1f}x forward{mem}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=100_000, help="corpus tokens of ROME's key statistics")
    ap.add_argument("--skip-rome", action="store_true")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    common.add_model_args(ap)
    args = ap.parse_args()
    device = common.device_of(args)
    common.reset_peak(device)
    load_s, lm = common.timed(lambda: common.load(args), device)
    report = {"model": common.describe(lm), "load_s": load_s, "load_peak_mb": common.peak_memory_mb(device),
              "prompt_tokens": len(lm.encode(PROMPT)), "repeats": args.repeats}
    print(report["model"], f"(built/loaded in {load_s:.1f} s)", flush=True)
    report["analyses"] = analyses(lm, args.repeats)
    base = report["analyses"]["forward"]["s"]
    memory = f", peak memory allocated on {device} during the step" if device.type == "cuda" else ""
    print(f"{report['prompt_tokens']}-token prompt, medians of {args.repeats} interleaved runs, ratio to a plain "
          f"forward{memory}:")
    show(report["analyses"], base)
    if not args.skip_rome:
        if lm.dtype != torch.float32:
            del lm
            common.free(device)
            lm = common.load(args, dtype="float32")
            print(f"ROME on a float32 copy: {common.describe(lm)}", flush=True)
        report["rome"] = r = rome(lm, args.tokens)
        print(f"ROME, layer {r['layer']}, key statistics over {r['tokens']:,} tokens:")
        show({k: r[k] for k in ("statistics", "edit (statistics cached)")}, base)
        print(f"  edit stages (s): {r['edit stages']}, {r['steps']} optimisation steps")
    peaks = [r["peak_mb"] for part in (report["analyses"], report.get("rome", {})) for r in part.values()
             if isinstance(r, dict) and r.get("peak_mb") is not None]
    if peaks:
        report["peak_mb_max"] = max(peaks)
        print(f"largest peak of any step on {device}: {max(peaks):,.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
