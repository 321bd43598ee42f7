"""Command line for long runs: ``python -m ffn_widgets <command> ...`` (also installed as ``ffn-widgets``).

    python -m ffn_widgets mine                                 # default model x default Wikipedia corpus
    python -m ffn_widgets mine --dtype bfloat16 --k 25
    python -m ffn_widgets mine --corpus my_text.txt --out my_index/
    python -m ffn_widgets mine --max-sentences 2000            # a slice; run again without it for all

Commands register themselves in ``COMMANDS`` (name -> (add_arguments, run)); add yours the same way.
Mining shows a progress bar; Ctrl-C keeps the last checkpoint and the same command resumes from it.
"""
from __future__ import annotations

import argparse
import os
import sys


def _mine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="HF name or local folder (default: the offline default model)")
    p.add_argument("--corpus", default=None, help="'wikipedia' (default), 'lee', or a text file")
    p.add_argument("--max-sentences", type=int, default=None, help="mine only the first N sentences")
    p.add_argument("--k", type=int, default=25, help="trigger examples kept per neuron (default 25)")
    p.add_argument("--dtype", default=None, help="run the model in this dtype, e.g. bfloat16 (default: float32)")
    p.add_argument("--batch-tokens", type=int, default=2048, help="tokens per forward pass (default 2048)")
    p.add_argument("--max-tokens", type=int, default=128, help="longest sentence prefix mined (default 128)")
    p.add_argument("--out", default=None, help="index folder (default: keyed folder in the user cache)")
    p.add_argument("--force", action="store_true", help="mine again even if a finished index exists")
    p.add_argument("--no-resume", action="store_true", help="ignore a checkpoint of an interrupted run")


def _mine(args) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from . import load_model
    from .memories.corpus import load_corpus
    from .memories.mining import mine_triggers

    lm = load_model(args.model)
    corpus = load_corpus(args.corpus, max_sentences=args.max_sentences)
    print(f"{lm!r}\n{corpus!r}", file=sys.stderr)
    index = mine_triggers(lm, corpus, k=args.k, dtype=args.dtype, path=args.out, batch_tokens=args.batch_tokens,
                          max_tokens=args.max_tokens, resume=not args.no_resume, force=args.force)
    print(index.path)
    return 0


COMMANDS = {"mine": (_mine_arguments, _mine, "mine trigger examples and activation histograms")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ffn_widgets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, _, help_text) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    from .model import InputError

    try:
        return COMMANDS[args.command][1](args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: progress was checkpointed; run the same command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
