"""Issue 2 benchmark: capturing every site vs a plain HF forward (and nnsight's capture), plus memory.

Prints medians of interleaved runs on the default model and the ratio to the plain forward measured in the
same run; memory is the peak RSS of a fresh process that loads the model and runs once (CPU), or the peak
memory allocated on the accelerator while the model is loaded and run (CUDA). On accelerators the clock is read
after a synchronise.

Usage: python benchmarks/bench_core.py [--repeats 30]
       model options (benchmarks/common.py): [--device cuda] [--dtype bfloat16] [--threads N]
       [--random-weights benchmarks/configs/smollm2-135m.json]
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import common
import torch

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


def peak_rss_mb(args) -> float:
    """Peak RSS of a fresh process that loads the same model and runs the prompt once."""
    code = ("import argparse, resource, sys; sys.path.insert(0, %r); import common; "
            "ap = common.add_model_args(argparse.ArgumentParser()); lm = common.load(ap.parse_args(%r)); "
            "lm.run(%r); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
            % (str(Path(__file__).resolve().parent), common.model_argv(args), PROMPT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    common.add_model_args(parser)
    args = parser.parse_args()
    device = common.device_of(args)
    common.reset_peak(device)
    load_s, lm = common.timed(lambda: common.load(args), device)
    print(common.describe(lm))
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
        plain_logits = lm.model(input_ids=ids[None]).logits[0].float().cpu()
    if lm.device.type == "cpu":
        assert torch.equal(run.logits, plain_logits)
    else:  # kernels may be chosen per call on an accelerator: equal within float tolerance
        diff = float((run.logits - plain_logits).abs().max())
        assert diff <= 1e-3 * float(plain_logits.abs().max()), diff
        print(f"capture vs plain logits on {lm.device}: max |difference| {diff:.1e}")
    for fn in cases.values():  # warm up
        fn(), fn()
    gpu_mb = common.peak_memory_mb(device)
    times = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():  # interleaved
            times[name].append(common.timed(fn, device)[0])
    base = statistics.median(times["plain HF forward"])
    result = {"model": lm.name, "device": str(lm.device), "dtype": args.dtype, "prompt_tokens": len(ids),
              "repeats": args.repeats, "load_seconds": round(load_s, 3)}
    print(f"{lm.name}, {len(ids)}-token prompt, {args.repeats} interleaved repeats, medians:")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:34s} {med * 1000:8.2f} ms   {med / base:5.2f}x plain")
        result[name] = {"median_ms": round(med * 1000, 2), "ratio": round(med / base, 3)}
    if gpu_mb is not None:
        print(f"  peak {lm.device} memory allocated, load model + runs: {gpu_mb:.0f} MiB")
        result["peak_gpu_mb"] = round(gpu_mb)
    else:
        mem = peak_rss_mb(args)
        print(f"  peak RSS, load model + one run: {mem:.0f} MB")
        result["peak_rss_mb"] = round(mem)
    print(f"  load time ({'random weights' if args.random_weights else 'converted cache'}): {load_s:.2f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
