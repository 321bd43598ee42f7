"""Model, device and clock options shared by the benchmarks (issue 14).

Every benchmark takes the same model options and reads its clock only after the accelerator has finished
(CUDA and MPS run asynchronously: without a synchronise a timing measures the launch, not the work)::

    ap = argparse.ArgumentParser()
    common.add_model_args(ap)        # --device, --dtype, --threads, --random-weights CONFIG
    args = ap.parse_args()
    lm = common.load(args)           # the default model, or a random one of the shape in CONFIG
    seconds, run = common.timed(lambda: lm.run(prompt), lm.device)
    common.reset_peak(lm.device); ...; common.peak_memory_mb(lm.device)   # None off CUDA

``--random-weights CONFIG`` builds the model from a ``config.json`` with random weights (seeded) and the default
model's tokenizer: timings and device checks hold without the weights, so only the config has to travel to a
GPU machine. ``configs/`` holds the default model's own config (``smollm2-135m.json``), an 8B Llama-3 shape
(``llama-8b-shape.json``: hidden 4096, MLP 14336, 32 layers, 32 heads, 8 KV heads, vocabulary 128,256 — the
default tokenizer's 49,152 ids all lie inside it, the rows above are never read as input) and a 4-layer toy
(``tiny-llama.json``) for checking scripts end to end on a CPU. A random model is built directly on its
device in its dtype (fast even at 8B); its weights depend on the seed and on the device's random generator.

Where the default model's package is not installed (a bare GPU machine), the tokenizer comes from the folder
named by ``FFN_BENCH_TOKENIZER`` (``benchmarks/gpu_check.sh --prepare`` writes one).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing too

import ffn_widgets as fw  # noqa: E402
from ffn_widgets.model.loading import as_dtype  # noqa: E402

CONFIGS = Path(__file__).resolve().parent / "configs"
DTYPES = ("float32", "bfloat16", "float16")


def best_device() -> str:
    """cuda if available, else mps, else cpu."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def add_model_args(parser: argparse.ArgumentParser, dtype: str = "float32") -> argparse.ArgumentParser:
    g = parser.add_argument_group("model")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    g.add_argument("--dtype", default=dtype, choices=DTYPES, help=f"model dtype (default {dtype})")
    g.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    g.add_argument("--random-weights", metavar="CONFIG", default=None,
                   help="build the model from this config.json with random (seeded) weights and the default "
                        "model's tokenizer, e.g. benchmarks/configs/llama-8b-shape.json")
    g.add_argument("--seed", type=int, default=0, help="seed of --random-weights")
    return parser


def model_argv(args) -> list[str]:
    """The model options of ``args`` as command-line words (to start a subprocess on the same model)."""
    argv = ["--dtype", args.dtype, "--seed", str(args.seed)]
    for flag, value in (("--device", args.device), ("--threads", args.threads),
                        ("--random-weights", args.random_weights)):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def device_of(args) -> torch.device:
    return torch.device(args.device or best_device())


def load(args, dtype: str | None = None):
    """The LM the options ask for, on its device (``dtype`` overrides ``args.dtype``)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = device_of(args), dtype or args.dtype
    if args.random_weights:
        model = random_model(args.random_weights, device, dtype, args.seed)
        return fw.load_model(model=model, tokenizer=default_tokenizer(), device=device, dtype=dtype)
    return fw.load_model(device=device, dtype=dtype)


def random_model(config, device="cpu", dtype="float32", seed: int = 0):
    """A Hugging Face causal LM of the shape in ``config`` (a config.json path or a dict), random weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    data = dict(config) if isinstance(config, dict) else json.loads(Path(config).read_text(encoding="utf-8"))
    name = data.pop("_name", None) or f"random:{Path(config).stem if not isinstance(config, dict) else 'config'}"
    data = {k: v for k, v in data.items() if not k.startswith("_")}
    cfg = AutoConfig.for_model(data.pop("model_type"), **data)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=as_dtype(dtype))
    model.config._name_or_path = name
    return model.eval()


def default_tokenizer():
    """The default model's tokenizer: from ``FFN_BENCH_TOKENIZER`` if set, else from the default model's folder."""
    from transformers import AutoTokenizer

    folder = os.environ.get("FFN_BENCH_TOKENIZER")
    if not folder:
        from ffn_widgets.model.loading import default_model_folder
        folder = default_model_folder()
    return AutoTokenizer.from_pretrained(folder)


def describe(lm) -> str:
    """One line: model, shape, device (and GPU name), dtype, torch threads."""
    dev = lm.device
    where = str(dev)
    if dev.type == "cuda":
        where += f" ({torch.cuda.get_device_name(dev)})"
    params = sum(p.numel() for p in lm.model.parameters())
    return (f"{lm.name}: {lm.n_layers} layers, d_model {lm.d_model}, d_mlp {lm.d_mlp}, {params / 1e6:,.0f}M "
            f"parameters, on {where}, {str(lm.dtype).replace('torch.', '')}, torch threads {torch.get_num_threads()}")


# ---- clocks and memory -----------------------------------------------------------------------------------------
def sync(device) -> None:
    """Wait for the accelerator's queued work (every CUDA device: a model may be split over several)."""
    device = torch.device(device)
    if device.type == "cuda":
        for i in range(torch.cuda.device_count()):
            torch.cuda.synchronize(i)
    elif device.type == "mps":
        torch.mps.synchronize()


def clock(device) -> float:
    """``time.perf_counter()`` after :func:`sync`: read it before and after the work."""
    sync(device)
    return time.perf_counter()


def timed(fn, device):
    """``(seconds, fn())``, synchronised before both clock reads."""
    t = clock(device)
    out = fn()
    return clock(device) - t, out


def reset_peak(device) -> None:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device) -> float | None:
    """Peak memory allocated on a CUDA device since :func:`reset_peak` (MiB); None elsewhere."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def free(device) -> None:
    """Give cached accelerator memory back (between models of different sizes)."""
    import gc

    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
