"""Issue 13 benchmark: many facts at once, and what the stability experiment costs per step.

Each figure is a ratio against a baseline measured in the same run:

- ``batch``: MEMIT writing ``--facts`` facts in one call (key statistics cached) against the same facts
  written by r-ROME one after another (all kept), both from the unedited model; seconds and the ratio.
  The facts are the 43 dev facts and ``benchmarks/more_facts.jsonl`` (69 more of four relations).
- ``measure``: one measurement of the stability experiment (the batched pair probabilities of every current
  fact's prompt, paraphrases and neighbours, and the unrelated prompts' KL) for n = 5, 10, 20, 43 dev facts,
  against the straightforward count (one unpadded forward per prompt–object pair); interleaved, medians.
  The seconds per fact at each n say whether the cost grows faster than linearly.

Both run on the model's device (every tensor made there); on accelerators the clock is read after a synchronise.

Usage: python benchmarks/bench_many_edits.py [--facts 100] [--repeats 3] [--threads N] [--skip-batch]
       [--skip-measure]
       model options (benchmarks/common.py): [--device cuda] [--dtype float32] [--random-weights CONFIG]
"""
import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing too

import common  # noqa: E402
import torch  # noqa: E402

import ffn_widgets as fw  # noqa: E402
from ffn_widgets.editing.memit import default_layers  # noqa: E402
from ffn_widgets.editing.metrics import kl, next_token_dists  # noqa: E402
from ffn_widgets.editing.rome import AlreadyAnswered  # noqa: E402
from ffn_widgets.editing.stability import UNRELATED_PROMPTS, _measure  # noqa: E402

MORE = Path(__file__).with_name("more_facts.jsonl")


def all_facts():
    return fw.load_facts() + fw.load_facts(path=MORE)


def timed(fn, lm):
    """``(seconds, fn())``, synchronising the model's device before each clock read."""
    return common.timed(fn, lm.device)


def plain_p(lm, prompt, obj):
    ids = lm.encode(prompt)
    tids = torch.tensor(lm.target_ids(" " + obj.strip()), device=ids.device)
    with torch.no_grad():
        logp = lm.forward(torch.cat([ids, tids])[None])[0].log_softmax(-1)
    at = torch.arange(len(ids) - 1, len(ids) + len(tids) - 1, device=logp.device)
    return float(torch.exp(logp[at, tids].mean()))


def straightforward(lm, current, unrelated, before):
    """The same counts, one forward per (prompt, object) pair and per unrelated prompt."""
    wins = []
    for f in current.values():
        prompts = [f["prompt"], *f.get("paraphrases", [])]
        wins += [plain_p(lm, p, f["target_new"]) > plain_p(lm, p, f["target_true"]) for p in prompts]
        for n in f.get("neighborhood", []):
            own = current[n["prompt"]]["target_new"] if n["prompt"] in current else n["target"]
            wins.append(plain_p(lm, n["prompt"], own) > plain_p(lm, n["prompt"], f["target_new"]))
    with torch.no_grad():
        now = torch.stack([lm.forward(lm.encode(p)[None])[0, -1].log_softmax(-1) for p in unrelated]).cpu()
    return sum(wins), float(kl(before, now).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--facts", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-batch", action="store_true", help="only the measurement figures")
    ap.add_argument("--skip-measure", action="store_true", help="only the batch figures")
    common.add_model_args(ap)
    args = ap.parse_args()
    lm = common.load(args)
    facts = all_facts()
    print(f"{lm!r}; torch threads {torch.get_num_threads()}; {len(facts)} facts available")
    print(common.describe(lm))

    if not args.skip_measure:
        measurement(lm, args.repeats)
    if not args.skip_batch:
        batch_against_sequential(lm, facts, args.facts)


def measurement(lm, repeats):
    """The stability experiment's measurement against the straightforward count."""
    unrelated = UNRELATED_PROMPTS[:20]
    before = next_token_dists(lm, unrelated)
    print("\nmeasurement | n facts | batched s | straightforward s | speed-up | batched s per fact")
    per_fact = {}
    dev = fw.load_facts()  # each with two paraphrases and four neighbours: the same work per fact
    for n in (5, 10, 20, len(dev)):
        current = {f["prompt"]: {**f, "step": 0} for f in dev[:n]}
        ours, plain = [], []
        for _ in range(repeats):
            ours.append(timed(lambda: _measure(lm, current, -1, unrelated, before, {}, 0, 0), lm)[0])
            plain.append(timed(lambda: straightforward(lm, current, unrelated, before), lm)[0])
        o, p = statistics.median(ours), statistics.median(plain)
        per_fact[n] = o / n
        print(f"measurement | {n} | {o:.2f} | {p:.2f} | {p / o:.2f}× | {o / n:.3f}")
    print(f"cost per fact at n={len(dev)} / at n=5: {per_fact[len(dev)] / per_fact[5]:.2f} (≤ 1: no faster than "
          "linear)")


def batch_against_sequential(lm, facts, n):
    """MEMIT in one call against r-ROME one fact after another, the same facts, statistics cached."""
    batch = facts[:n]
    requests = [{k: f[k] for k in ("prompt", "subject", "target_new")} for f in batch]
    layers = default_layers(lm)
    fw.key_statistics(lm, layers)
    fw.key_statistics(lm, fw.default_layer(lm))
    lm.edits.reset()
    t_memit, edit = timed(lambda: fw.memit_edit(lm, requests), lm)
    edit.undo()
    skipped = 0

    def sequential():
        nonlocal skipped
        for r in requests:
            try:
                fw.rome_edit(lm, r["prompt"], r["subject"], " " + r["target_new"].strip(), progress=False)
            except AlreadyAnswered:
                skipped += 1
    t_rome, _ = timed(sequential, lm)
    lm.edits.reset()
    print(f"\nbatch | {len(requests)} facts | MEMIT one call (layers {layers[0]}–{layers[-1]}) {t_memit:.0f} s | "
          f"r-ROME sequential {t_rome:.0f} s ({skipped} already so, skipped) | MEMIT {t_rome / t_memit:.2f}× faster | "
          f"{t_memit / len(requests):.1f} vs {t_rome / max(1, len(requests) - skipped):.1f} s per fact")


if __name__ == "__main__":
    main()
