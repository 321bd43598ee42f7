"""Issue 2 benchmark: capturing every site vs a plain HF forward (and nnsight's capture), plus memory.

Prints medians of interleaved runs on the default model and the ratio to the plain forward measured in the
same run. Usage: python benchmarks/bench_core.py [--repeats 30]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

import ffn_widgets as fw

PROMPT = "The Eiffel Tower, a wrought-iron lattice tower on the Champ de Mars, is located in the city of"


def nnsight_capture(nn_model, lm, ids):
    """The same sites as lm.run(): block input/output, attention and MLP outputs, down-projection input."""
    saved = []
    with nn_model.trace(ids):
        for layer in nn_model.model.layers:
            saved += [layer.input.save(), layer.self_attn.output[0].save(), layer.mlp.down_proj.input.save(),
                      layer.mlp.output.save(), layer.output.save()]
        logits = nn_model.output.logits.save()
    return logits, saved


def peak_memory_mb() -> float:
    code = ("import resource, ffn_widgets as fw; lm = fw.load_model(); lm.run(%r); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)" % PROMPT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    t = time.perf_counter()
    lm = fw.load_model()
    load_s = time.perf_counter() - t
    ids = lm.encode(PROMPT)
    try:
        from nnsight import NNsight
        nn_model = NNsight(lm.model)
    except ImportError:
        nn_model = None

    def plain():
        with torch.no_grad():
            lm.model(input_ids=ids[None], use_cache=False)

    def ours():
        lm.run(PROMPT)

    def peer():
        with torch.no_grad():
            nnsight_capture(nn_model, lm, ids[None])

    cases = {"plain HF forward": plain, "ffn_widgets lm.run (all sites)": ours}
    if nn_model is not None:
        cases["nnsight capture (same sites)"] = peer
    # check the capture is exact before timing
    run = lm.run(PROMPT)
    with torch.no_grad():
        assert torch.equal(run.logits, lm.model(input_ids=ids[None]).logits[0].float())
    for fn in cases.values():  # warm up
        fn(), fn()
    times = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():  # interleaved
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times["plain HF forward"])
    result = {"prompt_tokens": len(ids), "repeats": args.repeats, "load_seconds": round(load_s, 3)}
    print(f"default model, {len(ids)}-token prompt, {args.repeats} interleaved repeats, medians:")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:34s} {med * 1000:8.2f} ms   {med / base:5.2f}x plain")
        result[name] = {"median_ms": round(med * 1000, 2), "ratio": round(med / base, 3)}
    mem = peak_memory_mb()
    print(f"  peak RSS, load default model + one run: {mem:.0f} MB")
    print(f"  load time (converted cache): {load_s:.2f} s")
    result["peak_rss_mb"] = round(mem)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
