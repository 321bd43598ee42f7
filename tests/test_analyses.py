"""Logit lens, value projections and neuron contributions against manual recomputation."""
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.analysis.neurons import contributions, layer_contributions

PROMPT = "The Eiffel Tower is located in the city of"


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2", "phi"])
def test_logit_lens_matches_manual(tiny_lm_factory, family):
    lm = tiny_lm_factory(family)
    lens = fw.logit_lens(lm, PROMPT, target=" Paris", k=3)
    run = lm.run(PROMPT)
    tid = lm.target_ids(" Paris")[0]
    norm, head = lm.final_norm, lm.unembed_module
    with torch.no_grad():
        for layer in (0, lm.n_layers - 1):
            for stage, resid in (("post", run.resid_post), ("mid", run.resid_post - run.mlp_out)):
                logits = head(norm(resid[layer])).float()
                cap = getattr(lm.config, "final_logit_softcapping", None)
                if cap:
                    logits = torch.tanh(logits / cap) * cap
                p = logits.softmax(-1)
                grid = getattr(lens, stage)
                torch.testing.assert_close(grid.probs[layer], p[:, tid], rtol=1e-4, atol=1e-7)
                assert torch.equal(grid.ranks[layer], (logits > logits[:, tid:tid + 1]).sum(-1))  # exact: no rounding ties
                assert torch.equal(grid.top_ids[layer, :, 0], p.argmax(-1))
    # the last layer's lens is the model's own output distribution
    torch.testing.assert_close(lens.probs[-1], run.logits.softmax(-1)[:, tid], rtol=1e-4, atol=1e-7)
    assert lens.figure().data[0].z.shape == (lm.n_layers, len(lens.tokens))
    assert len(lens.to_frame()) == lm.n_layers * len(lens.tokens)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_contributions_sum_to_logit_change(tiny_lm_factory, family):
    """With the final norm's scale frozen, removing a neuron changes the target logit by its contribution."""
    lm = tiny_lm_factory(family)
    run = lm.run(PROMPT)
    tid = lm.target_ids(" Paris")[0]
    layer, pos = 1, run.n_tokens - 1
    c = contributions(lm, run, layer, pos, tid)
    final = run.resid_post[-1, pos]
    gain, inv_sigma, centres = lm.norm_scale(final)
    # manual: project the sum of m_i v_i for all neurons through g/σ (centred for LayerNorm) and W_U[t]
    m = run.activations[layer, pos]
    write = m @ lm.values(layer).detach().float()
    if centres:
        write = write - write.mean()
    manual = (lm.W_U[tid].detach().float() * gain * inv_sigma) @ write
    torch.testing.assert_close(c.sum(), manual, rtol=1e-4, atol=1e-5)
    # and the layer total equals the MLP output's projection (no down-projection bias in the neuron sum)
    down = lm.blocks[layer].get_submodule(lm.arch.down)
    bias = down.bias.detach().float() if getattr(down, "bias", None) is not None else torch.zeros(lm.d_model)
    d = lm.W_U[tid].detach().float() * gain * inv_sigma
    if centres:
        d = d - d.mean()
    torch.testing.assert_close(layer_contributions(lm, run, tid)[layer, pos], c.sum() + bias @ d, rtol=1e-4, atol=1e-4)


def test_value_tokens_manual(tiny_lm):
    lm = tiny_lm
    vt = fw.value_tokens(lm, 1, 5, k=4)
    v = lm.values(1)[5].detach().float()
    gain, _, _ = lm.norm_scale(torch.ones(lm.d_model))
    logits = lm.W_U.detach().float() @ (v * lm.final_norm.weight.detach().float())
    assert vt.top_ids == logits.topk(4).indices.tolist()
    assert vt.bottom_ids == (-logits).topk(4).indices.tolist()
    torch.testing.assert_close(torch.tensor([x for _, x in vt.top]), logits.topk(4).values, rtol=1e-4, atol=1e-5)
    with pytest.raises(fw.InputError):
        fw.value_tokens(lm, 1, lm.d_mlp)


def test_top_neurons_orders(tiny_lm):
    lm = tiny_lm
    run = lm.run(PROMPT)
    by_act = fw.top_neurons(lm, run, 1, k=5)
    acts = run.activations[1, -1]
    assert by_act.neurons == acts.abs().topk(5).indices.tolist()
    by_c = fw.top_neurons(lm, run, 1, k=5, by="contribution", target=" Paris")
    c = contributions(lm, run, 1, run.n_tokens - 1, lm.target_ids(" Paris")[0])
    assert by_c.neurons == c.topk(5).indices.tolist()
    assert list(by_c.to_frame().columns)[:3] == ["neuron", "activation", "contribution"]
    with pytest.raises(fw.InputError, match="position"):
        fw.top_neurons(lm, run, 1, position=99)
