"""The real default model: facts predicted top-1, the lens agrees with a plain HF forward."""
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.facts import target

pytestmark = pytest.mark.real_model


def test_default_model_shape(default_lm):
    assert (default_lm.n_layers, default_lm.d_model, default_lm.d_mlp) == (30, 576, 1536)
    assert default_lm.config.model_type == "llama"


def test_dev_facts_top1(default_lm, dev_facts):
    lm = default_lm
    prompts = [f["prompt"] for f in dev_facts]
    misses = []
    for fact in dev_facts:
        ids = lm.encode(fact["prompt"])
        with torch.no_grad():
            plain = lm.model(input_ids=ids[None]).logits[0, -1]
        if int(plain.argmax()) != lm.target_ids(target(fact["target_true"]))[0]:
            misses.append(fact["prompt"])
    assert len(prompts) >= 40 and not misses, misses


def test_lens_last_layer_equals_forward(default_lm, dev_facts):
    lm = default_lm
    fact = dev_facts[0]
    lens = fw.logit_lens(lm, fact["prompt"], target=target(fact["target_true"]))
    ids = lm.encode(fact["prompt"])
    with torch.no_grad():
        p = lm.model(input_ids=ids[None]).logits[0].float().softmax(-1)
    tid = lm.target_ids(target(fact["target_true"]))[0]
    torch.testing.assert_close(lens.probs[-1], p[:, tid], rtol=1e-4, atol=1e-6)
    assert int(lens.ranks[-1, -1]) == 0
    assert lens.post.top_tokens[-1][-1][0] == target(fact["target_true"])
