"""Issue 4 benchmark: trigger-mining throughput against plain forward passes over the same batches,
the full default corpus's mining time, memory while mining, and opening a neuron card from a built index.

Plain and mining runs are interleaved (alternating order) and medians reported; the ratio is mining
tokens/s over plain-forward tokens/s measured in the same run (goal >= 0.8). The sample is every n-th
batch of the full corpus's own plan (sentences of equal length, up to 2048 tokens a batch), so batch
shapes and the length mix are those of the full run; the mining state starts empty, as in a real run's
first batches, which are its most expensive ones.

Usage: python benchmarks/bench_mining.py [--tokens 30000] [--repeats 3] [--threads N] [--dtypes float32]
       [--full bfloat16]
"""
import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

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
        for batch in batches:
            ids = torch.as_tensor(miner.ids)[(miner.offsets[batch][:, None] + torch.arange(miner._length(batch)))]
            with torch.no_grad():
                lm.forward(ids.long(), last_only=True)

    def mine():
        state = miner.fresh()
        for batch in batches:
            miner._step(state, batch)

    plain()  # warm-up
    times = {"plain": [], "mine": []}
    for r in range(repeats):
        for name, fn in (("plain", plain), ("mine", mine)) if r % 2 == 0 else (("mine", mine), ("plain", plain)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    plain_tps = tokens / statistics.median(times["plain"])
    mine_tps = tokens / statistics.median(times["mine"])
    return {"dtype": params["dtype"], "tokens": tokens, "batches": len(batches),
            "full_corpus_tokens": sum(sizes),
            "plain_tok_per_s": round(plain_tps, 1), "mining_tok_per_s": round(mine_tps, 1),
            "ratio": round(mine_tps / plain_tps, 3)}


def card_open_ms(lm, corpus, repeats: int) -> dict:
    folder = Path(tempfile.mkdtemp())
    fw.mine_triggers(lm, corpus, path=folder / "index", progress=False)
    out = {}
    timings = []
    for i in range(repeats):
        t = time.perf_counter()
        index = fw.load_triggers(folder / "index")
        index.top(20, 100 + i)
        index.histogram(20, 100 + i)
        timings.append((time.perf_counter() - t) * 1e3)
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
            t = time.perf_counter()
            NeuronCard(lm, 20, 100 + i, index=index, **kwargs)
            timings.append((time.perf_counter() - t) * 1e3)
        out[name] = round(statistics.median(timings), 2)
    t = time.perf_counter()
    NeuronCard(lm, 20, 7, index=index)
    out["card_open_without_prompt_ms"] = round((time.perf_counter() - t) * 1e3, 2)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=30000, help="tokens in the sample of batches")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated dtypes to measure")
    parser.add_argument("--full", default=None, help="also mine the whole default corpus in this dtype and time it")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    full = fw.load_corpus()
    report = {"threads": torch.get_num_threads(), "corpus": repr(full), "results": []}
    for dtype in args.dtypes.split(","):
        lm = fw.load_model(dtype=dtype)
        rss_before = rss_mb()
        row = throughput(lm, full, args.tokens, args.repeats)
        row["peak_rss_growth_mb"] = round(rss_mb() - rss_before, 1)
        row["full_corpus_estimate_min"] = round(row["full_corpus_tokens"] / row["mining_tok_per_s"] / 60, 1)
        row["plain_forwards_full_corpus_min"] = round(row["full_corpus_tokens"] / row["plain_tok_per_s"] / 60, 1)
        report["results"].append(row)
        print(json.dumps(row), flush=True)
    lm = fw.load_model()
    report["card"] = card_open_ms(lm, Corpus(full.sentences[::200][:200], "wikipedia-200"), 7)
    print(json.dumps(report["card"]), flush=True)
    if args.full:
        lm = fw.load_model(dtype=args.full)
        t = time.perf_counter()
        fw.mine_triggers(lm, full, dtype=args.full, path=Path(tempfile.mkdtemp()) / "full", progress=False)
        report["full_corpus_mined_min"] = round((time.perf_counter() - t) / 60, 2)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
