"""Shared fixtures: tiny random models of every family (milliseconds) and the real default model."""
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import ffn_widgets as fw  # noqa: E402

# `make test` runs the tests in two processes (pytest-xdist, one per core): each computes on one thread, and the
# kernels and workers they start inherit one thread too, so the two processes never fight over the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

FAMILIES = ["gpt2", "gpt_neox", "gpt_neox_sequential", "gptj", "opt", "phi", "llama", "mistral", "qwen2",
            "olmo", "gemma", "gemma2"]


def tiny_config(family: str):
    import transformers as T

    common = dict(vocab_size=49152)
    if family == "gpt2":
        return T.GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=128, **common)
    if family.startswith("gpt_neox"):
        return T.GPTNeoXConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                               use_parallel_residual=family == "gpt_neox", **common)
    if family == "gptj":
        return T.GPTJConfig(n_layer=2, n_embd=64, n_head=4, rotary_dim=8, n_positions=128, **common)
    if family == "opt":
        return T.OPTConfig(num_hidden_layers=2, hidden_size=64, ffn_dim=128, num_attention_heads=4,
                           word_embed_proj_dim=64, max_position_embeddings=128, **common)
    if family == "phi":
        return T.PhiConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4, **common)
    llama_like = dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=128, **common)
    if family == "gemma2":
        return T.Gemma2Config(head_dim=16, **llama_like)
    if family == "gemma":
        return T.GemmaConfig(head_dim=16, **llama_like)
    cls = {"llama": T.LlamaConfig, "mistral": T.MistralConfig, "qwen2": T.Qwen2Config, "olmo": T.OlmoConfig}[family]
    return cls(**llama_like)


@pytest.fixture(scope="session")
def tokenizer(default_lm):
    return default_lm.tokenizer


@pytest.fixture(scope="session")
def tiny_lm_factory(tokenizer):
    """``tiny_lm_factory(family)`` -> LM on a 2-layer random model of that family (real tokenizer)."""
    import transformers as T

    cache = {}

    def make(family: str = "llama"):
        if family not in cache:
            torch.manual_seed(0)
            model = T.AutoModelForCausalLM.from_config(tiny_config(family), dtype=torch.float32)
            _perturb_norms(model)
            cache[family] = fw.load_model(model=model, tokenizer=tokenizer)
        return cache[family]

    return make


def hook_ids(lm) -> set:
    """Every forward (pre-)hook on the model, to check a with-block left none of its own behind (compare with
    before: transformers keeps output-capture hooks of its own once a call asked for hidden states)."""
    return {(name, kind, key) for name, m in lm.model.named_modules()
            for kind, hooks in (("pre", m._forward_pre_hooks), ("post", m._forward_hooks)) for key in hooks}


def _perturb_norms(model):
    """Random models start with unit norm gains and zero biases; make them non-trivial so tests can fail."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name or "layernorm" in name.lower():
                p.add_(0.3 * torch.randn(p.shape, generator=g))


@pytest.fixture(scope="session")
def tiny_lm(tiny_lm_factory):
    return tiny_lm_factory("llama")


@pytest.fixture(scope="session")
def deep_factory(tokenizer):
    """5-layer random models (windows and start layers need depth) with a sharpened output so
    probabilities are far from uniform and restorations move them visibly."""
    import transformers as T

    cache = {}

    def make(family):
        if family not in cache:
            config = tiny_config(family)
            config.update({"n_layer": 5} if family == "gpt2" else {"num_hidden_layers": 5})
            if getattr(config, "layer_types", None):  # per-layer attention kinds (gemma2: sliding, full, ...)
                config.layer_types = [config.layer_types[i % len(config.layer_types)] for i in range(5)]
            torch.manual_seed(0)
            model = T.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
            _perturb_norms(model)
            lm = fw.load_model(model=model, tokenizer=tokenizer)
            with torch.no_grad():
                for p in lm.final_norm.parameters():
                    p.mul_(16.0)
            cache[family] = lm
        return cache[family]

    return make


@pytest.fixture(scope="session")
def default_lm():
    return fw.load_model()


@pytest.fixture(scope="session")
def dev_facts():
    from ffn_widgets.data.facts import load_facts

    return load_facts()


# ---- two processes (pytest-xdist --dist loadfile: each file's tests in one process, its module fixtures, a
# JupyterLab server or a Ray cluster, started once) ------------------------------------------------------------
FIRST = ("test_cluster.py", "test_lessons.py", "test_notebooks.py", "/browser/", "test_edits_reference.py")


def pytest_collection_modifyitems(config, items):
    """The longest files first, so that neither process is left with a long tail while the other idles."""
    rank = lambda item: next((i for i, part in enumerate(FIRST) if part in item.nodeid), len(FIRST))  # noqa: E731
    items.sort(key=rank)
