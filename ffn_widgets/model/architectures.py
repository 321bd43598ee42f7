"""The one architecture table: where each model family keeps its blocks, MLPs and unembedding.

Adding a family is one row here plus a tiny-random-model test; no other code path changes.
Paths are relative to the model (``embed``, ``final_norm``, ``unembed``, ``layers``) or to one block
(everything else). ``down`` is the MLP's output projection: its *input* is the neuron activation m
(for gated MLPs act(gate)·up), its weight columns are the value vectors. ``mlp_add`` / ``attn_add`` name
the module whose output is added to the residual stream (Gemma 2/3 normalise after the MLP).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    layers: str
    attn: str
    down: str
    up: str
    embed: str
    final_norm: str
    unembed: str = "lm_head"
    gate: str | None = None
    mlp_add: str = "mlp"
    attn_add: str | None = None  # defaults to ``attn``
    parallel: bool = False  # attention and MLP both read the block input (GPT-J, NeoX, Phi)

    @property
    def attn_output(self) -> str:
        return self.attn_add or self.attn


_LLAMA = Architecture(
    layers="model.layers", attn="self_attn", down="mlp.down_proj", up="mlp.up_proj",
    gate="mlp.gate_proj", embed="model.embed_tokens", final_norm="model.norm",
)
_GEMMA2 = Architecture(
    layers="model.layers", attn="self_attn", down="mlp.down_proj", up="mlp.up_proj",
    gate="mlp.gate_proj", embed="model.embed_tokens", final_norm="model.norm",
    mlp_add="post_feedforward_layernorm", attn_add="post_attention_layernorm",
)

ARCHITECTURES: dict[str, Architecture] = {
    "gpt2": Architecture(
        layers="transformer.h", attn="attn", down="mlp.c_proj", up="mlp.c_fc",
        embed="transformer.wte", final_norm="transformer.ln_f",
    ),
    "gpt_neox": Architecture(
        layers="gpt_neox.layers", attn="attention", down="mlp.dense_4h_to_h", up="mlp.dense_h_to_4h",
        embed="gpt_neox.embed_in", final_norm="gpt_neox.final_layer_norm",
        parallel=True,
    ),
    "gptj": Architecture(
        layers="transformer.h", attn="attn", down="mlp.fc_out", up="mlp.fc_in",
        embed="transformer.wte", final_norm="transformer.ln_f", parallel=True,
    ),
    "opt": Architecture(
        layers="model.decoder.layers", attn="self_attn", down="fc2", up="fc1", mlp_add="fc2",
        embed="model.decoder.embed_tokens", final_norm="model.decoder.final_layer_norm",
    ),
    "phi": Architecture(
        layers="model.layers", attn="self_attn", down="mlp.fc2", up="mlp.fc1",
        embed="model.embed_tokens", final_norm="model.final_layernorm", parallel=True,
    ),
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "olmo": _LLAMA,
    "olmo2": _LLAMA,
    "smollm3": _LLAMA,
    "gemma": _LLAMA,
    "gemma2": _GEMMA2,
    "gemma3_text": _GEMMA2,
}


def architecture_for(config) -> Architecture:
    """The table row for a HF config; NeoX without parallel residual is handled by its flag."""
    kind = getattr(config, "model_type", None)
    if kind not in ARCHITECTURES:
        raise ValueError(
            f"Unsupported model family {kind!r}. Supported: {', '.join(sorted(ARCHITECTURES))}. "
            "Adding one is a row in ffn_widgets/model/architectures.py."
        )
    arch = ARCHITECTURES[kind]
    if kind == "gpt_neox" and not getattr(config, "use_parallel_residual", True):
        arch = Architecture(**{**arch.__dict__, "parallel": False})
    return arch
