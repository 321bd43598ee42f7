"""Issue 26 benchmark: the sharded jobs on a local Ray cluster against the same calls in this process.

For each job (trigger mining, key statistics, trace_many, evaluate_edits, one fact's localisation screen with its
edits at 6 layers) on the default model, in one run:
in process (torch on all threads), then on a local cluster of 1 worker (all threads) and of 2 workers (threads
split between them). Prints seconds, the scaling 1 → 2 workers (goal ≥ 1.7× on 2 cores for mining and
evaluate_edits), the overhead of 1 worker against in process (goal ≤ 10% for jobs over a minute), and the fixed
costs: starting the cluster and loading the model in the actors. Results are checked equal to in process.
Rounds are interleaved (in process, 1 worker, 2 workers, again) and medians reported. The last column compares
each result with the in-process one: bit-equal where the thread counts match, else the largest relative difference
(float rounding of torch's reductions with another number of threads).

Usage: python benchmarks/bench_cluster.py [--rounds 1] [--scale 1.0] [--jobs mining,stats,trace,evaluate,localize]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing too

import numpy as np  # noqa: E402
import torch  # noqa: E402

import ffn_widgets as fw  # noqa: E402


def jobs(lm, corpus, facts, scale):
    """name -> (run, compare): ``run()`` gives a result, ``compare(a, b)`` says they are equal."""
    folder = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    counter = iter(range(10 ** 6))
    mine_batches = max(2, int(24 * scale))
    stat_tokens = max(2048, int(60_000 * scale) // 256 * 256)
    n_facts = max(2, int(6 * scale))
    traced = [{"prompt": f["prompt"], "subject": f["subject"], "target": f["target_true"]} for f in facts[:n_facts]]
    edited = facts[:max(2, int(4 * scale))]
    screen = dict(edit_layers=LOCALIZE_LAYERS[:max(2, int(6 * scale))], samples=2, steps=8, corpus=corpus,
                  tokens=8192, edit_kwargs={"settings": fw.lessons.quick_settings()})
    return {
        "mining": (lambda: fw.mine_triggers(lm, corpus, k=25, path=folder / f"i{next(counter)}", progress=False,
                                            max_batches=mine_batches),
                   lambda a, b: "equal" if np.array_equal(a.values, b.values) and np.array_equal(a.counts, b.counts)
                   else "DIFFERENT"),
        "stats": (lambda: fw.key_statistics(lm, [3, 4], corpus, tokens=stat_tokens, progress=False, force=True),
                  lambda a, b: _differ(torch.cat([a[k].flatten() for k in a]).tolist(),
                                       torch.cat([b[k].flatten() for k in b]).tolist())),
        "trace": (lambda: fw.trace_many(lm, traced, kind="mlp", samples=5, progress=False),
                  lambda a, b: _differ(a.scores["mlp"].flatten().tolist(), b.scores["mlp"].flatten().tolist())),
        "evaluate": (lambda: fw.evaluate_edits(lm, edited, corpus=corpus, fluency_tokens=20, progress=False),
                     lambda a, b: _differ(_numbers(a.rows), _numbers(b.rows))),
        "localize": (lambda: fw.localize(lm, facts[0], **screen),  # one fact's screen: its edits, one layer per shard
                     lambda a, b: _differ(*(np.nan_to_num(np.concatenate([r.measures[k] for k in sorted(r.measures)]),
                                                          nan=-9.0).tolist() for r in (a, b)))),
    }


LOCALIZE_LAYERS = [0, 4, 8, 12, 16, 20]


def _numbers(rows):
    """Every number of the rows but the timing, in order (booleans as 0/1)."""
    return [float(v) for r in rows for k, v in r.items() if k != "seconds" and isinstance(v, (int, float))]


def _differ(a, b):
    """'equal', or the largest relative difference (floats computed with other thread counts differ in rounding)."""
    if a == b:
        return "equal"
    worst = max(abs(x - y) / max(abs(x), abs(y), 1e-12) for x, y in zip(a, b))
    return f"max rel. diff {worst:.1e}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0, help="job sizes (1.0: about a minute each in process)")
    ap.add_argument("--jobs", default="mining,stats,trace,evaluate,localize")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    lm = fw.load_model(device="cpu")
    corpus, facts = fw.load_corpus(), fw.load_facts()
    table = {name: v for name, v in jobs(lm, corpus, facts, args.scale).items() if name in args.jobs.split(",")}
    fw.key_statistics(lm, fw.default_layer(lm), corpus, progress=False)  # cached before any timing
    fw.key_statistics(lm, LOCALIZE_LAYERS, corpus, tokens=8192, progress=False)
    times = {(name, how): [] for name in table for how in ("in process", "1 worker", "2 workers")}
    fixed = {"start": [], "load 1": [], "load 2": []}
    same = {}
    for _ in range(args.rounds):
        reference = {}
        for name, (run, _) in table.items():
            t = time.perf_counter()
            reference[name] = run()
            times[(name, "in process")].append(time.perf_counter() - t)
        for workers in (1, 2):
            t = time.perf_counter()
            with fw.cluster(workers=workers, threads_per_worker=max(1, cores // workers)) as c:
                fixed["start"].append(time.perf_counter() - t)
                t = time.perf_counter()
                c.pool(lm)
                fixed[f"load {workers}"].append(time.perf_counter() - t)
                for name, (run, compare) in table.items():
                    t = time.perf_counter()
                    result = run()
                    times[(name, f"{workers} worker" + ("s" if workers > 1 else ""))].append(time.perf_counter() - t)
                    same[(name, workers)] = compare(reference[name], result)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"default model {lm.name}, {cores} cores, {args.rounds} round(s), scale {args.scale}")
    print(f"{'job':10s} {'in process':>11s} {'1 worker':>9s} {'2 workers':>10s} {'2 vs 1':>7s} {'overhead 1w':>12s} "
          "result against in process (1 worker; 2 workers)")
    for name in table:
        a, b, c = med[(name, "in process")], med[(name, "1 worker")], med[(name, "2 workers")]
        print(f"{name:10s} {a:10.1f}s {b:8.1f}s {c:9.1f}s {b / c:6.2f}× {100 * (b - a) / a:+11.1f}% "
              f"{same[(name, 1)]}; {same[(name, 2)]}")
    print("fixed costs (median s): " + ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in fixed.items()))


if __name__ == "__main__":
    main()
