"""One weights identity: every cache that depends on weights follows an in-place edit made through
``.data`` (which torch's own version counter does not see), and follows its undo."""
import numpy as np
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.model.identity import fingerprint
from ffn_widgets.tracing.setup import embedding_sigma
from ffn_widgets.widgets import unpack

PROMPT = "The Eiffel Tower is located in the city of"
LAYER = 1


@pytest.fixture
def lm(tokenizer):
    import transformers as T
    from conftest import tiny_config

    torch.manual_seed(5)
    return fw.load_model(model=T.AutoModelForCausalLM.from_config(tiny_config("llama")), tokenizer=tokenizer)


def raw_value_top(lm, neuron: int, k: int) -> list[int]:
    """Top tokens of a value vector straight from the Llama weights: W_U (g ⊙ v)."""
    m = lm.model
    v = m.model.layers[LAYER].mlp.down_proj.weight[:, neuron]
    with torch.no_grad():
        return (m.lm_head.weight @ (m.model.norm.weight * v)).topk(k).indices.tolist()


def explorer_value_top(ex, neuron: int) -> list[int]:
    pairs, tops = unpack(ex.values["neurons"]), unpack(ex.values["top"])
    row = [i for i, (l, n) in enumerate(pairs.tolist()) if (l, n) == (LAYER, neuron)]
    assert row, "the neuron is listed in the explorer"
    return tops[row[0]].tolist()


def test_version_counts_writes_through_data_load_state_dict_and_casts(lm):
    v0 = lm.weights_version
    assert lm.weights_version == v0  # reading changes nothing
    w = lm.model.model.layers[LAYER].mlp.down_proj.weight
    w.data[0, 0] += 1.0
    v1 = lm.weights_version
    assert v1 != v0
    lm.model.load_state_dict(lm.model.state_dict())
    v2 = lm.weights_version
    assert v2 != v1
    lm.model.to(torch.float64)
    assert lm.weights_version != v2
    lm.model.to(torch.float32)


def test_caches_follow_a_value_vector_edit_through_data_and_its_undo(lm):
    ex = fw.Explorer(lm, PROMPT)
    neuron = int(unpack(ex.data["top"]["activation"]["ids"])[LAYER, -1, 0])
    nl = fw.NeuronList(lm, PROMPT, layer=LAYER, position=-1, by="activation", k=3)
    assert neuron in list(nl.ranking.neurons)
    emb = lm.model.model.embed_tokens.weight  # tied: also the unembedding
    sigma, fp = embedding_sigma(lm), fingerprint(lm.model)
    down = lm.model.model.layers[LAYER].mlp.down_proj.weight
    original = down[:, neuron].detach().clone()

    def check():
        want = raw_value_top(lm, neuron, 10)
        assert [t for t, _ in fw.value_tokens(lm, LAYER, neuron, k=10).top] == lm.token_strings(want)
        ex.prompt = PROMPT + " the"  # the explorer's next computation, then back to the prompt
        ex.prompt = PROMPT
        assert explorer_value_top(ex, neuron) == want[:3]
        nl.by = "contribution"  # the list's next computation, then back
        nl.by = "activation"
        row = list(nl.ranking.neurons).index(neuron)
        assert nl.ranking.value_top[row] == lm.token_strings(want[:len(nl.ranking.value_top[row])])
        assert embedding_sigma(lm) == pytest.approx(float(emb.detach().std()), rel=1e-5)

    check()
    before = raw_value_top(lm, neuron, 10)
    down.data[:, neuron] = -3 * original  # a new value vector, written past torch's version counter
    emb.data[:5] *= 4  # and a few embedding rows (the noise scale's input)
    check()
    assert raw_value_top(lm, neuron, 10) != before and embedding_sigma(lm) != pytest.approx(sigma)
    assert lm.fingerprint != fp
    down.data[:, neuron] = original  # undo
    emb.data[:5] /= 4
    check()
    assert raw_value_top(lm, neuron, 10) == before
    np.testing.assert_allclose(embedding_sigma(lm), sigma, rtol=1e-6)
    assert lm.fingerprint == fp
