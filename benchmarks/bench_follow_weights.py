"""Issue 24 benchmark: what a view on screen costs when the weights change, against building it fresh.

For each view that recomputes on its own (sliders, explorer, neuron card), in the same run and interleaved
(medians): the time from a write through the edit log (a rank-one edit, then its undo) until the view shows
the new weights (``lm.edits.apply`` returns after the notice, so the view's recompute is inside it), minus the
same write with no view listening; against building the same view fresh on the current weights. The goal
is a ratio ≤ 1: following the weights costs no more than a new view.

Usage: python benchmarks/bench_follow_weights.py [--repeats 7] [--threads N]
       model options (benchmarks/common.py): [--device cuda] [--dtype float32] [--random-weights CONFIG]
"""
import argparse
import gc
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing too

import common  # noqa: E402
import torch  # noqa: E402

import ffn_widgets as fw  # noqa: E402
from ffn_widgets.editing.log import LogEntry, WeightDelta  # noqa: E402

PROMPT = "The Eiffel Tower is located in the city of"


def rank_one(lm, layer, seed):
    g = torch.Generator().manual_seed(seed)
    left = torch.randn(lm.d_model, 1, generator=g) / lm.d_model ** 0.5
    right = torch.randn(1, lm.d_mlp, generator=g) / lm.d_mlp ** 0.5
    return LogEntry("bench", [], [layer], [WeightDelta(f"{lm.arch.layers}.{layer}.{lm.arch.down}", left, right)])


def views(lm):
    """name -> a function that builds the view and waits until it shows everything."""
    def explorer():
        ex = fw.Explorer(lm, PROMPT)
        ex.wait()
        return ex

    mid = lm.n_layers // 2
    return {
        "NeuronSliders": lambda: fw.NeuronSliders(lm, PROMPT, [(mid, 5), (mid + 1, 7)], target=" Paris"),
        "Explorer": explorer,
        "NeuronCard": lambda: fw.NeuronCard(lm, mid, 5, prompt=PROMPT),
    }


def write(lm, seed, device):
    """One edit through the log and its undo; seconds (the listening views recompute inside both)."""
    entry = rank_one(lm, lm.n_layers // 2, seed)
    return common.timed(lambda: (lm.edits.apply(entry), lm.edits.undo()), device)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    common.add_model_args(ap)
    args = ap.parse_args()
    lm = common.load(args)
    device = common.device_of(args)
    print(common.describe(lm))
    for name, build in views(lm).items():
        bare, follow, fresh = [], [], []
        build().close()  # warm caches (value projections, tokenizer) before timing
        for r in range(args.repeats):
            gc.collect()
            listening = [ref for ref in lm.watch._callbacks if ref() is not None]
            assert not listening, "a closed view still listens: the bare write would not be bare"
            bare.append(write(lm, r, device))  # nobody listening
            seconds, view = common.timed(build, device)
            fresh.append(seconds)
            follow.append((write(lm, r, device) - bare[-1]) / 2)  # two notices: the edit and its undo
            view.close()
            del view
        f, b = statistics.median(follow), statistics.median(fresh)
        print(f"{name:>14}: recompute after a write {f * 1e3:7.1f} ms, built fresh {b * 1e3:7.1f} ms "
              f"= {f / b:.2f}× (goal ≤ 1)")


if __name__ == "__main__":
    main()
