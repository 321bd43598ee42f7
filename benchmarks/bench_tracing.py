"""Issue 6 benchmark: the causal-tracing engine against ROME's reference loop, same model, prompt and seed.

The reference is a faithful straightforward loop (``trace_engine.reference_trace``): for each kind, layer
and token one full forward over [clean, 10 noised] rows with all logits. Both compute the full three-kind
grid; runs are interleaved and medians reported, with the ratio measured in the same run. Also: the
first row's latency (from the call, setup included, to the first streamed row), the largest difference
between the two grids, and an ablation of the engine's ideas on the subject-first prompt.

Both run on the model's device; on accelerators the clock is read after a synchronise.

Usage: python benchmarks/bench_tracing.py [--repeats 2] [--quick] [--first-row]
       model options (benchmarks/common.py): [--device cuda] [--dtype bfloat16] [--threads N]
       [--random-weights CONFIG]
"""
import argparse
import dataclasses
import json
import statistics

import common
import torch

from ffn_widgets.tracing.engine import KINDS, TraceEngine, reference_trace
from ffn_widgets.tracing.results import TraceStream
from ffn_widgets.tracing.setup import prepare_trace

# (prompt, subject): the subject first (every token needs tracing: the engine's worst case) and the
# subject last (tokens before it need no compute), both facts the default model knows.
PROMPTS = [("The iPod was developed by", "The iPod"), ("The capital of Japan is", "Japan")]
# First-row latency also on the longest prompts (the first row's cost grows with the tokens after the subject).
FIRST_ROW_PROMPTS = PROMPTS + [("The Eiffel Tower is located in the city of", "The Eiffel Tower"),
                               ("The native language of Gabriel García Márquez is", "Gabriel García Márquez")]


def timed(fn, lm):
    """``(seconds, fn())``, synchronising the model's device before each clock read."""
    return common.timed(fn, lm.device)


def engine_grid(lm, setup, **options):
    engine = TraceEngine(lm, setup, KINDS, 10, **options)
    probs = {k: torch.empty(lm.n_layers, len(setup.ids), setup.samples) for k in KINDS}  # CPU, as the rows come
    for row in engine.rows():
        for kind, p in row.probs.items():
            probs[kind][:, row.token] = p.cpu()
    return probs


def first_row_latency(lm, prompt, subject) -> float:
    t = common.clock(lm.device)
    stream = TraceStream(lm, prepare_trace(lm, prompt, subject), "all", progress=False)
    next(iter(stream))
    elapsed = common.clock(lm.device) - t
    stream.cancel()
    return elapsed


def compare(lm, prompt, subject, repeats):
    setup = prepare_trace(lm, prompt, subject)
    ours, ref = [], []
    for _ in range(repeats):  # interleaved
        t, grid = timed(lambda: engine_grid(lm, setup), lm)
        ours.append(t)
        t, ref_grid = timed(lambda: reference_trace(lm, setup, KINDS, 10), lm)
        ref.append(t)
    diff = max(float((grid[k] - ref_grid[k].cpu()).abs().max()) for k in KINDS)
    latency = statistics.median(first_row_latency(lm, prompt, subject) for _ in range(5))
    return {"prompt": prompt, "tokens": len(setup.ids), "subject_tokens": list(setup.subject),
            "engine_s": statistics.median(ours), "reference_s": statistics.median(ref),
            "speedup": statistics.median(ref) / statistics.median(ours), "max_abs_diff": diff,
            "first_row_s": latency, **clean_and_corrupted(lm, setup)}


def clean_and_corrupted(lm, setup):
    e = TraceEngine(lm, setup, ("hidden",))
    e.prepare()
    return {"p_clean": e.p_clean, "p_corrupted": float(e.p_corrupt.mean())}


def ablation(lm, prompt, subject):
    """Each idea switched off on its own, against the full engine measured alongside."""
    setup = prepare_trace(lm, prompt, subject)
    variants = {
        "full engine": lambda: engine_grid(lm, setup),
        "no prefix KV cache (recompute positions < t)": lambda: engine_grid(lm, setup, prefix_cache=False),
        "no batching (one restoration per forward)": lambda: engine_grid(lm, setup, max_tokens=1),
        "no skipping of unaffected tokens": lambda: engine_grid(lm, dataclasses.replace(setup, first_affected=0)),
    }
    return {name: timed(fn, lm)[0] for name, fn in variants.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one repeat, no ablation")
    parser.add_argument("--first-row", action="store_true", help="only the first-row latency, more prompts")
    common.add_model_args(parser)
    args = parser.parse_args()
    lm = common.load(args)
    print(common.describe(lm))
    if args.first_row:
        first_row_latency(lm, *PROMPTS[0])  # warm-up
        for prompt, subject in FIRST_ROW_PROMPTS:
            times = sorted(first_row_latency(lm, prompt, subject) for _ in range(7))
            print(f"first row {statistics.median(times):.3f} s (min {times[0]:.3f}, max {times[-1]:.3f}; "
                  f"median of 7, setup included)  {prompt!r}")
        return
    repeats = 1 if args.quick else args.repeats
    print(f"model {lm.name} on {lm.device}: {lm.n_layers} layers; torch threads {torch.get_num_threads()}; "
          f"10 noise samples, window 10, three kinds; medians of {repeats} interleaved runs")
    results = []
    for prompt, subject in PROMPTS:
        r = compare(lm, prompt, subject, repeats)
        results.append(r)
        print(f"\n{prompt!r} ({r['tokens']} tokens, subject tokens {r['subject_tokens']}), "
              f"p clean {r['p_clean']:.3f} / corrupted {r['p_corrupted']:.3f}")
        print(f"  reference loop   {r['reference_s']:8.2f} s")
        print(f"  engine           {r['engine_s']:8.2f} s   -> {r['speedup']:.1f}x faster")
        print(f"  first row        {r['first_row_s']:8.2f} s   (setup included)")
        print(f"  max |engine - reference| = {r['max_abs_diff']:.2e}")
    if not args.quick:
        for prompt, subject in PROMPTS:
            times = ablation(lm, prompt, subject)
            full = times["full engine"]
            print(f"\nablation on {prompt!r} (time, and slowdown against the full engine):")
            for name, t in times.items():
                print(f"  {name:48s} {t:8.2f} s  {t / full:5.2f}x")
            results.append({"ablation": prompt, **times})
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
