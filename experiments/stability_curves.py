"""The long edit-stability runs: many sequential edits per method, one JSON line per step, then one figure.

    python experiments/stability_curves.py run --method r-rome --steps 200 --out results/r-rome.jsonl
    python experiments/stability_curves.py run --method memit --batch 10 --steps 20 --out results/memit.jsonl
    python experiments/stability_curves.py plot results/*.jsonl --html results/stability.html

``run`` appends each step's row as it is measured (the file's first line holds the settings), so a run cut
short keeps every finished step and its curves can be drawn at once. After each measured step it also writes
the run's edit log to ``OUT.checkpoint`` (one atomic write; removed when the run ends), and ``run --resume``
with the same settings goes on from there: the log replays the edits bit for bit, rows after the checkpoint
are dropped and measured again, so the file ends as an uninterrupted run's would (timings aside). ``plot`` draws every run on one
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
    checkpoint = Path(f"{out}.checkpoint")
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {"method": args.method, "batch": args.batch, "steps": args.steps, "model": lm.name,
                "facts": args.facts or "dev facts", "seed": args.seed,
                "collapse": dataclasses.asdict(fw.Collapse()), "threads": torch.get_num_threads(),
                "every": args.every}
    kept = _kept_rows(out, checkpoint, settings) if args.resume else []
    if not args.resume:
        checkpoint.unlink(missing_ok=True)
    tmp = out.with_name(f".tmp-{out.name}")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in [settings] + kept))
    tmp.replace(out)
    if kept:
        print(f"going on after step {kept[-1]['step']} ({len(kept)} rows kept)", flush=True)
    with open(out, "a") as f:
        for row in fw.stability_steps(lm, args.facts, args.method, args.batch, args.steps, seed=args.seed,
                                      fluency_tokens=args.fluency_tokens, every=args.every,
                                      checkpoint=checkpoint):
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
            print(f"step {row['step']:4d} edits {row['edits']:4d} retention {_pct(row['retention'])} "
                  f"PS {_pct(row['paraphrase'])} NS {_pct(row['neighbourhood'])} KL {row['kl']:.4f} "
                  f"norm ×{row['norm_ratio']:.3f} edit {row['seconds_edit']:.1f}s eval {row['seconds_eval']:.1f}s"
                  + (f" COLLAPSE: {row['collapse_reason']}" if row["collapsed"] else ""), flush=True)
    checkpoint.unlink(missing_ok=True)


def _kept_rows(out, checkpoint, settings) -> list[dict]:
    """The rows of ``out`` up to its checkpoint's step (none without a checkpoint); the settings must match."""
    from ffn_widgets.editing.log import saved_extra

    if not out.exists():
        return []
    first, *rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    differ = [k for k in settings if k != "threads" and first.get(k) != settings[k]]
    if differ:
        sys.exit(f"{out} holds a run with other settings ({', '.join(differ)}); --resume goes on with the same ones.")
    if not checkpoint.exists():
        return []
    step = saved_extra(checkpoint)["stability"]["step"]
    return [r for r in rows if r["step"] <= step]


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
    r.add_argument("--resume", action="store_true", help="go on from OUT.checkpoint (same settings)")
    p = sub.add_parser("plot")
    p.add_argument("files", nargs="+")
    p.add_argument("--html", default=None)
    p.add_argument("--png", default=None)
    args = ap.parse_args()
    run(args) if args.command == "run" else plot(args)


if __name__ == "__main__":
    main()
