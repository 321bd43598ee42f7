"""The hook core on a tiny random model of every family, checked against recomputation from the weights."""
import pytest
import torch
import torch.nn.functional as F
from conftest import FAMILIES, hook_ids
from transformers.activations import ACT2FN
from transformers.pytorch_utils import Conv1D

import ffn_widgets as fw
from ffn_widgets.model import Intervention, hooked, start_at

PROMPT = "The Eiffel Tower is located in the city of"

# family -> (norm module feeding the MLP, does the MLP read resid_pre (parallel) or resid_mid)
MLP_INPUT = {
    "gpt2": ("ln_2", "mid"), "gpt_neox": ("post_attention_layernorm", "pre"),
    "gpt_neox_sequential": ("post_attention_layernorm", "mid"), "gptj": ("ln_1", "pre"),
    "opt": ("final_layer_norm", "mid"), "phi": ("input_layernorm", "pre"), "gemma2": ("pre_feedforward_layernorm", "mid"),
}


def _linear(module, x):
    if isinstance(module, Conv1D):
        return x @ module.weight + module.bias
    return F.linear(x, module.weight, module.bias)


def _act(config):
    for name in ("hidden_activation", "hidden_act", "activation_function"):
        if getattr(config, name, None):
            return ACT2FN[getattr(config, name)]
    raise AssertionError("no activation in config")


def recompute_neurons(lm, run, layer):
    """Neuron activations from the block's weights: act(x·W_up) (· gate for gated MLPs)."""
    family = lm.config.model_type if lm.config.model_type != "gpt_neox" or lm.arch.parallel else "gpt_neox_sequential"
    norm_name, source = MLP_INPUT.get(family, ("post_attention_layernorm", "mid"))
    block = lm.blocks[layer]
    x = (run.resid_pre if source == "pre" else run.resid_mid)[layer]
    x = block.get_submodule(norm_name)(x)
    act = _act(lm.config)
    up = block.get_submodule(lm.arch.up)
    if lm.arch.gate:
        return act(_linear(block.get_submodule(lm.arch.gate), x)) * _linear(up, x)
    return act(_linear(up, x))


@pytest.mark.parametrize("family", FAMILIES)
def test_capture_matches_recomputation(tiny_lm_factory, family):
    lm = tiny_lm_factory(family)
    run = lm.run(PROMPT)
    with torch.no_grad():
        plain = lm.model(input_ids=run.input_ids[None]).logits[0]
        assert torch.equal(run.logits, plain.float())
        for layer in range(lm.n_layers):
            torch.testing.assert_close(run.activations[layer], recompute_neurons(lm, run, layer), rtol=1e-4, atol=1e-5)
            down = lm.blocks[layer].get_submodule(lm.arch.down)
            mlp_out = _linear(down, run.activations[layer])
            if lm.arch.mlp_add != "mlp" and lm.arch.mlp_add != lm.arch.down:
                mlp_out = lm.blocks[layer].get_submodule(lm.arch.mlp_add)(mlp_out)
            torch.testing.assert_close(run.mlp_out[layer], mlp_out, rtol=1e-4, atol=1e-5)
            expected_post = run.resid_pre[layer] + run.attn_out[layer] + run.mlp_out[layer]
            torch.testing.assert_close(run.resid_post[layer], expected_post, rtol=1e-4, atol=1e-5)
    # the last block's output through the final norm and unembedding is the model's output
    torch.testing.assert_close(lm.unembed(run.resid_post[-1]), run.logits, rtol=1e-4, atol=1e-4)
    assert run.activations.shape == (lm.n_layers, run.n_tokens, lm.d_mlp)


@pytest.mark.parametrize("family", ["gpt2", "llama", "gpt_neox"])
def test_neuron_scale_equals_manual_weight_edit(tiny_lm_factory, family):
    """Scaling neuron n by s equals adding (s-1)·m_n·v_n to the MLP output: zeroing its up-row (gated: its
    up-row) gives the same logits as scale 0."""
    lm = tiny_lm_factory(family)
    layer, neuron = 1, 7
    with lm.intervene({(layer, neuron): 0.0}):
        suppressed = lm.logits(PROMPT)
    # independent: remove the neuron's value column from the down projection's weight
    down = lm.blocks[layer].get_submodule(lm.arch.down)
    saved = down.weight.detach().clone()
    with torch.no_grad():
        if isinstance(down, Conv1D):
            down.weight[neuron, :] = 0
        else:
            down.weight[:, neuron] = 0
    try:
        manual = lm.logits(PROMPT)
    finally:
        with torch.no_grad():
            down.weight.copy_(saved)
    torch.testing.assert_close(suppressed, manual, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(suppressed, lm.logits(PROMPT))


def test_intervention_positions_and_ops(tiny_lm):
    lm = tiny_lm
    edits = [Intervention("neurons", 0, "set", 2.5, index=[3, 4], positions=[1]), Intervention("neurons", 0, "add", 1.0, index=[5])]
    with torch.no_grad(), hooked(lm, [("neurons", 0)], edits) as got:
        lm.forward(lm.encode(PROMPT)[None])
    clean = lm.run(PROMPT, capture=("neurons",)).activations[0]
    seen = got["neurons", 0][0]
    assert torch.all(seen[1, 3:5] == 2.5)
    torch.testing.assert_close(seen[:, 5], clean[:, 5] + 1.0)
    torch.testing.assert_close(seen[0, :5], clean[0, :5])
    torch.testing.assert_close(seen[:, 6:], clean[:, 6:])


def test_hooks_removed_even_on_error(tiny_lm):
    lm = tiny_lm
    before = lm.logits(PROMPT)
    hooks_before = hook_ids(lm)
    with pytest.raises(RuntimeError):
        with lm.intervene({(0, 1): 0.0}):
            raise RuntimeError("boom")
    assert hook_ids(lm) == hooks_before
    assert torch.equal(lm.logits(PROMPT), before)


def test_start_at_equals_full_run(tiny_lm_factory):
    for family in ("llama", "gpt2"):
        lm = tiny_lm_factory(family)
        run = lm.run(PROMPT)
        edit = {(1, 3): 3.0}
        with lm.intervene(edit):
            full = lm.logits(PROMPT)
        with torch.no_grad(), start_at(lm, 1, run.resid_pre[1][None]), lm.intervene(edit):
            partial = lm.forward(run.input_ids[None])[0]
        torch.testing.assert_close(partial, full, rtol=1e-5, atol=1e-5)
        assert all(type(b).__name__ != "_Replay" for b in lm.blocks)


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_prompt(tiny_lm, bad):
    with pytest.raises(fw.InputError, match="empty"):
        tiny_lm.run(bad)


def test_bad_layer_neuron_target(tiny_lm):
    with pytest.raises(fw.InputError, match="layer must be"):
        tiny_lm.check_layer(2)
    with pytest.raises(fw.InputError, match="neuron must be"):
        with tiny_lm.intervene({(0, 10_000): 0.0}):
            pass
    with pytest.raises(fw.InputError, match="empty"):
        tiny_lm.target_ids("")
    with pytest.raises(fw.InputError, match="tokenizes to nothing|empty"):
        fw.logit_lens(tiny_lm, PROMPT, target="\u200b" * 0 or "")


def test_prompt_too_long(tiny_lm):
    with pytest.raises(fw.InputError, match="at most 128"):
        tiny_lm.run("word " * 300)


def test_unknown_model_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(fw.ModelNotFoundError, match="not a local folder"):
        fw.load_model("no-such-org/no-such-model")


def test_local_folder_roundtrip(tiny_lm, tmp_path):
    """Any HF causal LM saved in a folder loads by path and computes the same logits."""
    tiny_lm.model.save_pretrained(tmp_path)
    tiny_lm.tokenizer.save_pretrained(tmp_path)
    again = fw.load_model(tmp_path)
    torch.testing.assert_close(again.logits(PROMPT), tiny_lm.logits(PROMPT))
