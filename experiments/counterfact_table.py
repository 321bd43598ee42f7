"""The README's CounterFact-style table: every dev fact edited alone to its ``target_new``, each method.

    python experiments/counterfact_table.py --method r-rome --out results/cf_r-rome.json --threads 1
    python experiments/counterfact_table.py --table results/cf_*.json

``run`` writes every fact's row (fw.evaluate_edits) and the summary; ``--table`` prints the README's rows.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing too


def run(args):
    import torch

    import ffn_widgets as fw

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = fw.load_model()
    ev = fw.evaluate_edits(lm, fw.load_facts(), method=args.method)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"method": args.method, "summary": ev.summary, "rows": ev.rows},
                                         default=str))
    print(ev.table())


def table(paths):
    print("| method | efficacy ES | paraphrase PS | neighbourhood NS | score S | fluency before → after | "
          "neighbour KL | ‖ΔW‖ median (max) |\n|---|---|---|---|---|---|---|---|")
    for path in paths:
        data = json.loads(Path(path).read_text())
        s, norms = data["summary"], [r["update_norm"] for r in data["rows"] if r.get("update_norm") is not None]
        print(f"| {data['method']} | {100 * s['efficacy']:.1f} | {100 * s['paraphrase']:.1f} | "
              f"{100 * s['neighbourhood']:.1f} | {100 * s['score']:.1f} | {100 * s['fluency_before']:.0f} → "
              f"{100 * s['fluency_after']:.0f} | {s['neighbourhood_kl']:.3f} | "
              f"{statistics.median(norms):.1f} ({max(norms):.1f}) |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="r-rome", choices=("r-rome", "rome"))
    ap.add_argument("--out", default="results/counterfact.json")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--table", nargs="+", default=None, help="print the table of earlier runs' files")
    a = ap.parse_args()
    table(a.table) if a.table else run(a)
