"""Issue 4 benchmark: trigger-mining throughput against plain forward passes over the same batches,
the full default corpus's mining time, memory while mining, and opening a neuron card from a built index.

Plain and mining runs are interleaved (alternating order) and medians reported; the ratio is mining
tokens/s over plain-forward tokens/s measured in the same run (goal >= 0.8). The sample is every n-th
batch of the full corpus's own plan (sentences of equal length, up to 2048 tokens a batch), so batch
shapes and the length mix are those of the full run; the mining state starts empty, as in a real run's
first batches, which are its most expensive ones.

Both passes run on the model's device (the batch's ids are made on the CPU and moved there in both); on
accelerators the clock is read after a synchronise and the peak accelerator memory is reported too. ``--full``
also times plain forward passes over every batch of the full corpus, for the full run's ratio.

Usage: python benchmarks/bench_mining.py [--tokens 30000] [--repeats 3] [--threads N] [--dtypes float32]
       [--full bfloat16]
       model options (benchmarks/common.py): [--device cuda] [--dtype float32 (the card's model)]
       [--random-weights CONFIG]
"""
import argparse
import json
import resource
import statistics
import tempfile
from pathlib import Path

import common
import torch

import ffn_widgets as fw
from ffn_widgets.memories.corpus import Corpus
from ffn_widgets.memories.mining import Miner


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def throughput(lm, corpus, tokens: int, repeats: int) -> dict:
    params = {"k": 25, "dtype": str(lm.dtype).replace("torch.", ""), "max_tokens": 128, "batch_tokens": 2048}
    miner = Miner(lm, corpus, params, Path(tempfile.mkdtemp()) / "x", lm.fingerprint)
    sizes = [len(b) * miner._length(b) for b in miner.batches]
    step = max(1, round(sum(sizes) / tokens))
    batches = miner.batches[::step]
    tokens = sum(sizes[::step])

    def plain():
        plain_forwards(lm, miner, batches)

    def mine():
        state = miner.fresh()
        for batch in batches:
            miner._step(state, batch)

    plain()  # warm-up
    times = {"plain": [], "mine": []}
    for r in range(repeats):
        for name, fn in (("plain", plain), ("mine", mine)) if r % 2 == 0 else (("mine", mine), ("plain", plain)):
            times[name].append(common.timed(fn, lm.device)[0])
    plain_tps = tokens / statistics.median(times["plain"])
    mine_tps = tokens / statistics.median(times["mine"])
    return {"dtype": params["dtype"], "tokens": tokens, "batches": len(batches),
            "full_corpus_tokens": sum(sizes),
            "plain_tok_per_s": round(plain_tps, 1), "mining_tok_per_s": round(mine_tps, 1),
            "ratio": round(mine_tps / plain_tps, 3)}


def plain_forwards(lm, miner, batches) -> None:
    """Plain forward passes over the mining batches (lead tokens included), nothing recorded."""
    offsets, ids_all = torch.as_tensor(miner.offsets).cpu(), torch.as_tensor(miner.ids)
    lead = torch.as_tensor(miner.lead, dtype=torch.long)
    for batch in batches:
        ids = ids_all[offsets[torch.as_tensor(batch)][:, None] + torch.arange(miner._length(batch))].long()
        if len(lead):
            ids = torch.cat([lead.expand(len(batch), -1), ids], 1)
        with torch.no_grad():
            lm.forward(ids.to(lm.device), last_only=True)


def card_open_ms(lm, corpus, repeats: int) -> dict:
    folder = Path(tempfile.mkdtemp())
    fw.mine_triggers(lm, corpus, path=folder / "index", progress=False)
    out = {}
    timings = []
    layer = min(20, lm.n_layers - 1)  # layer 20 of the default model

    def neuron(i: int) -> int:  # neurons 100, 101, ... of the default model
        return (100 + i) % lm.d_mlp

    for i in range(repeats):
        t = common.clock(lm.device)
        index = fw.load_triggers(folder / "index")
        index.top(layer, neuron(i))
        index.histogram(layer, neuron(i))
        timings.append((common.clock(lm.device) - t) * 1e3)
    out["index_open_and_read_ms"] = round(statistics.median(timings), 2)
    try:
        from ffn_widgets.widgets.neuron_card import NeuronCard
    except ImportError:
        return out
    index = fw.load_triggers(folder / "index")
    prompt = "The Eiffel Tower is located in the city of"
    run = lm.run(prompt)  # what the explorer already holds when a neuron is clicked there
    for name, kwargs in (("card_open_from_explorer_ms", {"run": run}), ("card_open_with_new_prompt_ms",
                                                                       {"prompt": prompt})):
        timings = []
        for i in range(repeats):
            t = common.clock(lm.device)
            NeuronCard(lm, layer, neuron(i), index=index, **kwargs)
            timings.append((common.clock(lm.device) - t) * 1e3)
        out[name] = round(statistics.median(timings), 2)
    t = common.clock(lm.device)
    NeuronCard(lm, layer, 7, index=index)
    out["card_open_without_prompt_ms"] = round((common.clock(lm.device) - t) * 1e3, 2)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=30000, help="tokens in the sample of batches")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated dtypes to measure")
    parser.add_argument("--full", default=None, help="also mine the whole default corpus in this dtype and time it")
    parser.add_argument("--skip-card", action="store_true", help="no index-opening and neuron-card figures")
    common.add_model_args(parser)
    args = parser.parse_args()
    device = common.device_of(args)
    full = fw.load_corpus()
    report = {"threads": torch.get_num_threads(), "device": str(device), "corpus": repr(full), "results": []}
    for dtype in args.dtypes.split(","):
        lm = common.load(args, dtype=dtype)
        print(common.describe(lm), flush=True)
        rss_before = rss_mb()
        common.reset_peak(device)
        row = throughput(lm, full, args.tokens, args.repeats)
        row["peak_rss_growth_mb"] = round(rss_mb() - rss_before, 1)
        if common.peak_memory_mb(device) is not None:
            row["peak_gpu_mb"] = round(common.peak_memory_mb(device))
        row["full_corpus_estimate_min"] = round(row["full_corpus_tokens"] / row["mining_tok_per_s"] / 60, 1)
        row["plain_forwards_full_corpus_min"] = round(row["full_corpus_tokens"] / row["plain_tok_per_s"] / 60, 1)
        report["results"].append(row)
        print(json.dumps(row), flush=True)
        del lm
        common.free(device)
    if not args.skip_card:
        lm = common.load(args)
        report["card"] = card_open_ms(lm, Corpus(full.sentences[::200][:200], "wikipedia-200"), 7)
        print(json.dumps(report["card"]), flush=True)
        del lm
        common.free(device)
    if args.full:
        lm = common.load(args, dtype=args.full)
        common.reset_peak(device)
        t, _ = common.timed(lambda: fw.mine_triggers(lm, full, dtype=args.full, path=Path(tempfile.mkdtemp()) / "full",
                                                     progress=False), device)
        report["full_corpus_mined_min"] = round(t / 60, 2)
        report["full_corpus_mined_s"] = round(t, 1)
        if common.peak_memory_mb(device) is not None:
            report["full_corpus_peak_gpu_mb"] = round(common.peak_memory_mb(device))
        params = {"k": 25, "dtype": args.full, "max_tokens": 128, "batch_tokens": 2048}
        miner = Miner(lm, full, params, Path(tempfile.mkdtemp()) / "x", lm.fingerprint)
        plain_forwards(lm, miner, miner.batches[:2])  # warm-up
        p, _ = common.timed(lambda: plain_forwards(lm, miner, miner.batches), device)
        report["full_corpus_plain_forwards_s"] = round(p, 1)
        report["full_corpus_mining_over_plain"] = round(t / p, 2)  # time ratio: mining (all included) / forwards
        print(f"full corpus in {args.full} on {device}: mined in {t:.1f} s (tokenising and writing the index "
              f"included), plain forwards of the same batches {p:.1f} s: mining takes {t / p:.2f}x the forwards "
              f"(throughput ratio {p / t:.2f})", flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
