"""Where MEMIT should write on a model: the same batch of facts at several layer ranges, scored alike.

    python experiments/memit_layers.py --facts 12 --ranges 0-4 2-6 4-8 8-12 0-2 --out results/memit_layers.json

Each range edits the same facts (the first ``--facts`` dev facts, or ``--path``) in one MEMIT call from the
unedited model and is scored with every fact's edit in place (:func:`ffn_widgets.compare_methods`' scores:
efficacy, paraphrase, neighbourhood, unrelated KL, norm growth); S is the harmonic mean of the three scores.
The table printed is the figure behind ``editing/where.py``'s default range.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing too


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--facts", type=int, default=12)
    ap.add_argument("--path", default=None, help="a facts file (default: the dev facts)")
    ap.add_argument("--ranges", nargs="+", default=["0-4", "2-6", "4-8", "8-12"])
    ap.add_argument("--method", default="memit", choices=("memit", "alphaedit"))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch

    import ffn_widgets as fw
    from ffn_widgets.editing.metrics import harmonic_mean
    from ffn_widgets.editing.stability import stability_steps

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = fw.load_model()
    facts = fw.load_facts(path=args.path)[:args.facts]
    print(f"{lm.name}: {args.method}, {len(facts)} facts in one batch per range")
    print("| layers | ES | PS | NS | S | unrelated KL | norm × | seconds |\n|---|---|---|---|---|---|---|---|")
    rows = []
    for spec in args.ranges:
        lo, hi = (int(x) for x in spec.split("-"))
        (row,) = stability_steps(lm, facts, args.method, len(facts), 1, layer=list(range(lo, hi + 1)))
        s = harmonic_mean([row["efficacy"], row["paraphrase"], row["neighbourhood"]])
        rows.append({"layers": spec, **{k: row[k] for k in ("efficacy", "paraphrase", "neighbourhood", "kl",
                                                            "norm_ratio", "seconds_edit")}, "score": s})
        print(f"| {spec} | {100 * row['efficacy']:.0f} | {100 * row['paraphrase']:.0f} | "
              f"{100 * row['neighbourhood']:.0f} | {100 * s:.0f} | {row['kl']:.4f} | {row['norm_ratio']:.3f} | "
              f"{row['seconds_edit']:.0f} |", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
