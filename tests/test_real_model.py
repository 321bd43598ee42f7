"""The real default model: facts predicted top-1, the lens agrees with a plain HF forward."""
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.data.facts import target

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


def test_continuation_stops_at_the_end_of_turn(default_lm):
    """The greedy continuation equals plain greedy decoding (no cache) and ends where the model ends its turn."""
    from ffn_widgets.analysis.scaling import SliderEngine

    lm, prompt = default_lm, "The Eiffel Tower is located in the city of"
    ids, plain = lm.encode(prompt)[None], []
    with torch.no_grad():
        while len(plain) < 10:
            token = int(lm.model(input_ids=ids).logits[0, -1].argmax())
            plain.append(token)
            if token == lm.tokenizer.convert_tokens_to_ids("<|im_end|>"):
                break
            ids = torch.cat([ids, torch.tensor([[token]])], 1)
    assert plain[-1] in lm.stop_ids and len(plain) < 10
    assert SliderEngine(lm, prompt).continuation({}, 10) == lm.token_strings(plain[:-1])


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/maps"), reason="reads Linux's memory maps")
def test_weights_are_mapped_from_the_cache_file(default_lm):
    """float32 weights stay memory-mapped from the safetensors cache (not copied), so kernels share the pages."""
    from ffn_widgets.model.loading import cache_dir

    ranges, cache = [], str(cache_dir().resolve())
    for line in open("/proc/self/maps"):
        fields = line.split()
        if len(fields) > 5 and fields[5].endswith(".safetensors") and fields[5].startswith(cache):
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((lo, hi))
    params = list(default_lm.model.parameters())
    mapped = [p for p in params if any(lo <= p.data_ptr() < hi for lo, hi in ranges)]
    assert sum(p.numel() for p in mapped) == sum(p.numel() for p in params)
