"""The long edit-stability runs: many sequential edits per method, one JSON line per step, then one figure.

    python experiments/stability_curves.py run --method r-rome --steps 200 --out results/r-rome.jsonl
    python experiments/stability_curves.py run --method memit --batch 10 --steps 20 --out results/memit.jsonl
    python experiments/stability_curves.py plot results/*.jsonl --html results/stability.html

``run`` appends each step's row as it is measured (the file's first line holds the settings), so a run cut
short keeps every finished step and its curves can be drawn at once; ``--resume`` is not offered: a run's
later steps depend on every earlier edit, so a cut run is started again. ``plot`` draws every run on one
figure (retention, paraphrase score, unrelated-prompt KL and norm growth against the number of edits) and
prints a table: where each method collapsed (the :class:`ffn_widgets.editing.stability.Collapse` test) and its
last figures. In a notebook, ``fw.StabilityRun.load(path)`` gives a run back (``.figure()``, ``.to_frame()``)
and ``fw.runs_figure(runs)`` draws several; the runs measured for the default model ship with the package
(``fw.measured_runs()``).
"""
import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing too


def run(args):
    import torch

    import ffn_widgets as fw

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = fw.load_model(args.model) if args.model else fw.load_model()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {"method": args.method, "batch": args.batch, "steps": args.steps, "model": lm.name,
                "facts": args.facts or "dev facts", "seed": args.seed,
                "collapse": dataclasses.asdict(fw.Collapse()), "threads": torch.get_num_threads(),
                "every": args.every}
    with open(out, "w") as f:
        f.write(json.dumps(settings) + "\n")
        for row in fw.stability_steps(lm, args.facts, args.method, args.batch, args.steps, seed=args.seed,
                                      fluency_tokens=args.fluency_tokens, every=args.every):
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
            print(f"step {row['step']:4d} edits {row['edits']:4d} retention {_pct(row['retention'])} "
                  f"PS {_pct(row['paraphrase'])} NS {_pct(row['neighbourhood'])} KL {row['kl']:.4f} "
                  f"norm ×{row['norm_ratio']:.3f} edit {row['seconds_edit']:.1f}s eval {row['seconds_eval']:.1f}s"
                  + (f" COLLAPSE: {row['collapse_reason']}" if row["collapsed"] else ""), flush=True)


def plot(args):
    import ffn_widgets as fw

    runs = [fw.StabilityRun.load(p) for p in args.files]
    print(fw.runs_table(runs))
    fig = fw.runs_figure(runs)
    if args.html:
        fig.write_html(args.html, include_plotlyjs="cdn")
    if args.png:
        fig.write_image(args.png)


def _pct(v):
    return "  –" if v is None else f"{100 * v:3.0f}%"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--method", default="r-rome", choices=("r-rome", "rome", "memit", "alphaedit"))
    r.add_argument("--batch", type=int, default=1)
    r.add_argument("--steps", type=int, default=200)
    r.add_argument("--facts", default=None, help="a facts file (default: the dev facts)")
    r.add_argument("--model", default=None, help="a model name or path (default: the offline default)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--every", type=int, default=1, help="measure after every k-th step (and the last)")
    r.add_argument("--fluency-tokens", type=int, default=0)
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--out", required=True)
    p = sub.add_parser("plot")
    p.add_argument("files", nargs="+")
    p.add_argument("--html", default=None)
    p.add_argument("--png", default=None)
    args = ap.parse_args()
    run(args) if args.command == "run" else plot(args)


if __name__ == "__main__":
    main()
