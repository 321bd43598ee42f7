"""Issue 12 benchmark: one ROME edit, its key statistics, and undo/reset, on the default model.

Each figure is a ratio against a baseline measured in the same run (interleaved, medians):

- ``edit``: one r-ROME edit (statistics cached) in seconds against the research code's loop written plainly
  (``tests/reference_edits.py``: one full forward per prompt each step, its own keys and update, the same
  prefixes and C), and how far apart their ΔW are.
- ``statistics``: tokens/s of the key-statistics pass (forward up to the layer + KᵀK sums) against a plain
  forward of the same batches stopped at the same layer.
- ``undo`` / ``reset``: milliseconds after one edit (restore the original matrix and replay the others).

Key statistics stay on the CPU in float64 (as :mod:`ffn_widgets.editing.stats` keeps them); on accelerators every
clock read follows a synchronise.

Usage: python benchmarks/bench_editing.py [--repeats 3] [--layer L] [--threads N] [--tokens 100000]
       [--stat-batches 6]
       model options (benchmarks/common.py): [--device cuda] [--dtype float32] [--random-weights CONFIG]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing too

import common  # noqa: E402
import torch  # noqa: E402

import ffn_widgets as fw  # noqa: E402
from ffn_widgets.editing.rome import RomeSettings, rome_edit  # noqa: E402
from ffn_widgets.editing.stats import BATCH_TEXTS, _Stop, add_key_moments, corpus_texts  # noqa: E402
from tests.reference_edits import reference_rome  # noqa: E402

PROMPT, SUBJECT, TARGET = "The Eiffel Tower is located in the city of", "The Eiffel Tower", " Rome"


def plain_until(lm, ids, layer):
    """A plain forward stopped at ``layer``'s down projection (the baseline: no statistics kept)."""
    def stop(module, args):
        raise _Stop
    h = lm.site_module("neurons", layer).register_forward_pre_hook(stop)
    try:
        with torch.no_grad():
            lm.model(input_ids=ids.to(lm.device), use_cache=False)
    except _Stop:
        pass
    finally:
        h.remove()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layer", type=int, default=None)
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--stat-batches", type=int, default=6)
    common.add_model_args(ap)
    args = ap.parse_args()
    lm = common.load(args)

    def timed(fn) -> float:
        return common.timed(fn, lm.device)[0]

    layer = fw.default_layer(lm) if args.layer is None else args.layer
    print(f"{lm!r}, edit layer {layer}, torch threads {torch.get_num_threads()}")
    print(common.describe(lm))

    # statistics: interleaved batches, ours vs the plain forward to the same layer
    texts = corpus_texts(lm, fw.load_corpus(), BATCH_TEXTS * args.stat_batches * 256)
    ours, plain = [], []
    sums = {layer: torch.zeros(lm.d_mlp, lm.d_mlp, dtype=torch.float64)}  # on the CPU, as KeyMoments keeps them
    for b in range(args.stat_batches):
        batch = texts[b * BATCH_TEXTS:(b + 1) * BATCH_TEXTS]
        plain.append(timed(lambda: plain_until(lm, batch, layer)))
        ours.append(timed(lambda: add_key_moments(lm, batch, [layer], sums)))
    n = texts[:BATCH_TEXTS].numel()
    tps_ours, tps_plain = n / statistics.median(ours), n / statistics.median(plain)
    print(f"statistics, layer {layer}: {tps_ours:,.0f} tok/s vs plain forward to the layer {tps_plain:,.0f} tok/s "
          f"= {tps_ours / tps_plain:.2f}×; {args.tokens:,} tokens take ~{args.tokens / tps_ours:.0f} s")

    fw.key_statistics(lm, layer, tokens=args.tokens)  # cached for the edits below
    C = fw.key_statistics(lm, layer, tokens=args.tokens, progress=False)
    ours, plain, gaps = [], [], []
    for _ in range(args.repeats):  # interleaved: the project's edit, then the plain reference loop
        t0 = time.perf_counter()
        e = rome_edit(lm, PROMPT, SUBJECT, TARGET, layer, tokens=args.tokens, progress=False, apply=False)
        common.sync(lm.device)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        expected, _, losses = reference_rome(lm, PROMPT, SUBJECT, TARGET, layer, e.prefixes, C, RomeSettings())
        common.sync(lm.device)
        plain.append(time.perf_counter() - t0)
        d = e.entry.deltas[0]
        dw = (d.left.double() @ d.right.double()).to(expected.device)
        gaps.append(float((dw - expected).norm() / expected.norm()))
    print(f"edit (statistics cached): {statistics.median(ours):.1f} s against {statistics.median(plain):.1f} s for "
          f"the reference's loop written plainly (full forwards of every prompt each step) = "
          f"{statistics.median(plain) / statistics.median(ours):.2f}× faster; {len(e.loss_curve)} steps "
          f"(the plain loop {len(losses)}); ΔW differs by {max(gaps):.1e} (relative Frobenius, largest of "
          f"{len(gaps)})")

    e = rome_edit(lm, PROMPT, SUBJECT, TARGET, layer, tokens=args.tokens, progress=False)
    undo, reset = [], []
    for _ in range(5):
        undo.append(timed(lambda: lm.edits.undo()))
        lm.edits.apply(e.entry)
        reset.append(timed(lambda: lm.edits.reset()))
        lm.edits.apply(e.entry)
    lm.edits.reset()
    print(f"undo {1000 * statistics.median(undo):.1f} ms, reset {1000 * statistics.median(reset):.1f} ms "
          "(one edit in the log)")


if __name__ == "__main__":
    main()
