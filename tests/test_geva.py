"""Geva statistics against brute force from the raw weights and plain forward passes (own torch hooks)."""
import numpy as np
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.analysis.geva_stats import geva_stats
from ffn_widgets.analysis.values import value_top_tokens
from ffn_widgets.memories.corpus import load_corpus
from ffn_widgets.memories.mining import mine_triggers


@pytest.fixture(scope="module")
def setup(tiny_lm, tmp_path_factory):
    corpus = load_corpus("lee", max_sentences=20)
    index = mine_triggers(tiny_lm, corpus, k=5, path=tmp_path_factory.mktemp("g") / "idx", progress=False)
    return tiny_lm, corpus, index


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))


def raw_value_logits(model, layer):
    """[d_mlp, vocab] = W_U (g * v_i), straight from the Llama weights."""
    g = model.model.norm.weight.detach()
    V = model.model.layers[layer].mlp.down_proj.weight.detach()  # [d_model, d_mlp]
    return (model.lm_head.weight.detach() @ (g[:, None] * V)).T


def test_value_top_tokens_match_raw_weights(setup):
    lm, _, _ = setup
    for layer in range(lm.n_layers):
        top, bottom = value_top_tokens(lm, layer, k=3)
        logits = raw_value_logits(lm.model, layer)
        np.testing.assert_array_equal(top, logits.topk(3, dim=1).indices.numpy())
        np.testing.assert_array_equal(bottom, (-logits).topk(3, dim=1).indices.numpy())
        again, _ = value_top_tokens(lm, layer, k=3)  # from the cache
        np.testing.assert_array_equal(again, top)


def test_agreement_equals_a_loop_over_triggers(setup):
    lm, _, index = setup
    stats = geva_stats(lm, index, triggers=3, examples=40, permutations=5)
    assert list(stats.layers) == [0, 1] and stats.uniform_chance == pytest.approx(1 / 49152)
    for layer in range(lm.n_layers):
        top = raw_value_logits(lm.model, layer).argmax(1).numpy()
        firsts, anys = [], []
        for neuron in range(lm.d_mlp):
            trig = index.top(layer, neuron, 3)
            if trig[0].next_token_id is not None:
                firsts.append(trig[0].next_token_id == top[neuron])
            if any(t.next_token_id is not None for t in trig):
                anys.append(any(t.next_token_id == top[neuron] for t in trig))
        assert stats.agreement[layer] == pytest.approx(np.mean(firsts))
        assert stats.agreement_any[layer] == pytest.approx(np.mean(anys))
        assert 0 <= stats.chance[layer] <= stats.chance_any[layer] <= 1
    again = geva_stats(lm, index, triggers=3, examples=40, permutations=5)
    np.testing.assert_array_equal(again.chance, stats.chance)  # fixed seed


def brute_composition(lm, texts, examples, top_memories=None):
    """For every position: MLP output's top token vs argmax of m_i * W_U(g * v_i) for every memory i."""
    model = lm.model
    mlps = [layer.mlp for layer in model.model.layers]
    got = {}
    hooks = [m.down_proj.register_forward_hook(lambda mod, a, out, i=i: got.__setitem__(i, (a[0][0], out[0])))
             for i, m in enumerate(mlps)]
    differs, seen = np.zeros(len(mlps)), 0
    g = model.model.norm.weight.detach()
    try:
        for text in texts:
            if seen >= examples:
                break
            ids = lm.tokenizer(text)["input_ids"][: examples - seen]
            with torch.no_grad():
                model(input_ids=torch.tensor([ids]))
            for layer in range(len(mlps)):
                m, out = got[layer]
                logits = raw_value_logits(model, layer)  # [d_mlp, vocab]
                strength = m.abs() * (g[:, None] * mlps[layer].down_proj.weight).norm(dim=0)
                for pos in range(len(ids)):
                    layer_top = int((model.lm_head.weight @ (g * out[pos])).argmax())
                    memories = torch.nonzero(m[pos]).squeeze(1)
                    if top_memories is not None:
                        memories = strength[pos].topk(top_memories).indices
                    preds = (m[pos, memories, None] * logits[memories]).argmax(1)
                    differs[layer] += bool((preds != layer_top).all())
            seen += len(ids)
    finally:
        for h in hooks:
            h.remove()
    return differs / seen, seen


@pytest.mark.parametrize("top_memories", [None, 4])
def test_composition_equals_brute_force(setup, top_memories):
    lm, corpus, index = setup
    stats = geva_stats(lm, index, examples=30, top_memories=top_memories, permutations=1)
    expected, seen = brute_composition(lm, corpus.sentences, 30, top_memories)
    assert stats.examples == seen == 30
    np.testing.assert_allclose(stats.composition, expected)


def test_figures_frame_and_errors(setup):
    lm, _, index = setup
    stats = geva_stats(lm, index, layers=[1], triggers=2, examples=10, permutations=2)
    assert list(stats.to_frame().layer) == [1] and len(stats.to_frame().columns) == 6
    agreement, composition = stats.figure("agreement"), stats.figure("composition")
    assert len(agreement.data) == 5 and len(composition.data) == 2
    # reference levels are named in the legend: no label drawn over the last bar or a point
    assert not agreement.layout.annotations and not composition.layout.annotations
    assert agreement.data[-1].name == "1/vocab" and composition.data[-1].name == "Geva 2021: ≥ 68%"
    assert list(composition.data[-1].y) == [68, 68]
    with pytest.raises(fw.InputError, match="which must be"):
        stats.figure("nope")
    with pytest.raises(fw.InputError, match="triggers must be"):
        geva_stats(lm, index, triggers=6)
    with pytest.raises(fw.InputError, match="layer must be"):
        geva_stats(lm, index, layers=[2])


def test_token_dependence_equals_separate_forward_passes(setup):
    lm, _, index = setup
    got = fw.token_dependence(lm, index, layers=[0, 1], neurons=6, triggers=2, context="Here:")
    rng = np.random.default_rng(0)
    prefix = lm.tokenizer("Here:")["input_ids"]
    for i, layer in enumerate([0, 1]):
        neurons = rng.choice(lm.d_mlp, 6, replace=False)
        ratios = []
        for neuron in neurons:
            for t in index.top(layer, int(neuron), 2):
                token = index.token_ids[index.offsets[t.sentence] + t.position]
                seen = {}
                hook = lm.model.model.layers[layer].mlp.down_proj.register_forward_pre_hook(
                    lambda m, a: seen.__setitem__("x", a[0][0, -1]))
                with torch.no_grad():
                    lm.model(input_ids=torch.tensor([prefix + [int(token)]]))
                hook.remove()
                ratios.append(float(seen["x"][neuron]) / t.activation)
        assert got.ratio[i] == pytest.approx(np.median(ratios), rel=1e-4, abs=1e-6)
    assert len(got.figure().data) == 1 and list(got.to_frame().layer) == [0, 1]
