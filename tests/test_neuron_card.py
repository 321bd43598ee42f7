"""NeuronCard: its synced state against independent computations (raw weights, plain forward with our own
hooks), its gestures, and opening from the explorer."""
import numpy as np
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.analysis.neuron_card import neuron_card
from ffn_widgets.memories.index import bin_of
from ffn_widgets.memories.mining import mine_triggers
from ffn_widgets.widgets.neuron_card import NeuronCard
from ffn_widgets.widgets.serialize import unpack

EVIL = "Markup like <img src=x onerror=alert(1)> must stay text."
PROMPT = "The Eiffel Tower is located in the city of"


@pytest.fixture(scope="module")
def index(tiny_lm, tmp_path_factory):
    corpus = fw.load_corpus(fw.load_corpus("lee", max_sentences=12).sentences + [EVIL] * 3)
    return mine_triggers(tiny_lm, corpus, k=8, path=tmp_path_factory.mktemp("c") / "idx", progress=False)


def plain_run(lm, prompt):
    """Down-projection inputs per layer and the final norm's input, from our own hooks on a plain forward."""
    model, got = lm.model, {}
    hooks = [layer.mlp.down_proj.register_forward_pre_hook(lambda m, a, i=i: got.__setitem__(i, a[0][0]))
             for i, layer in enumerate(model.model.layers)]
    hooks.append(model.model.norm.register_forward_pre_hook(lambda m, a: got.__setitem__("final", a[0][0])))
    try:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([lm.tokenizer(prompt)["input_ids"]])).logits[0]
    finally:
        for h in hooks:
            h.remove()
    return got, logits


def test_card_state_matches_independent_computation(tiny_lm, index):
    layer, neuron = 1, 5
    card = NeuronCard(tiny_lm, layer, neuron, index=index, prompt=PROMPT)
    state = card.card
    assert (state["layer"], state["neuron"], state["n_layers"], state["d_mlp"]) == (1, 5, 2, 128)
    # key side: exactly the index's triggers, text as plain strings
    top = index.top(layer, neuron)
    assert [t["before"] + t["token"] for t in state["triggers"]] == [t.text for t in top]
    assert [t["activation"] for t in state["triggers"]] == [t.activation for t in top]
    np.testing.assert_array_equal(unpack(state["histogram"]["counts"]), index.histogram(layer, neuron)[0])
    # value side: from the raw weights
    m = tiny_lm.model
    g = m.model.norm.weight.detach()
    logits_v = m.lm_head.weight.detach() @ (g * m.model.layers[layer].mlp.down_proj.weight.detach()[:, neuron])
    assert [t for t, _ in state["value"]["top"]] == tiny_lm.token_strings(logits_v.topk(10).indices)
    assert [t for t, _ in state["value"]["bottom"]] == tiny_lm.token_strings((-logits_v).topk(10).indices)
    top_ids = set(logits_v.topk(10).indices.tolist())
    assert [t["agrees"] for t in state["triggers"]] == [t.next_token_id in top_ids for t in top]
    # prompt: activations and contributions to the model's own top prediction
    got, logits = plain_run(tiny_lm, PROMPT)
    acts = got[layer][:, neuron]
    np.testing.assert_allclose(unpack(state["prompt"]["acts"]), acts.numpy(), rtol=1e-5, atol=1e-6)
    target = int(logits[-1].argmax())
    assert state["prompt"]["target"] == tiny_lm.tokenizer.decode([target])
    final = got["final"]
    inv_sigma = torch.rsqrt(final.pow(2).mean(-1) + m.model.norm.variance_epsilon)
    expected = acts * logits_v[target] * inv_sigma
    np.testing.assert_allclose(unpack(state["prompt"]["contrib"]), expected.numpy(), rtol=1e-4, atol=1e-6)
    assert state["histogram"]["prompt_bins"] == [bin_of(a) for a in acts.tolist()]
    assert card.title == "L1.N5" and card.error == ""
    assert len(card.to_frame()) == len(top) and card.figure().data


def test_corpus_markup_is_sent_as_plain_text(tiny_lm, index):
    hits = [(layer, neuron) for layer in range(2) for neuron in range(128)
            if any(EVIL.startswith(t.text) and "<img" in t.text for t in index.top(layer, neuron))]
    assert hits, "the test corpus should make some neuron fire inside the markup"
    card = NeuronCard(tiny_lm, *hits[0], index=index)
    texts = [t["before"] + t["token"] for t in card.card["triggers"]]
    assert any("<img src=x onerror" in t for t in texts)
    assert "prompt" not in card.card


def test_gestures_and_bad_input(tiny_lm, index):
    card = NeuronCard(tiny_lm, 0, 1, index=index, prompt=PROMPT)
    assert card.dispatch({"type": "set_neuron", "layer": 1, "neuron": 7})
    assert (card.card["layer"], card.card["neuron"]) == (1, 7) and card.progress == {}
    assert not card.dispatch({"type": "set_neuron", "layer": 9, "neuron": 7})
    assert "layer must be an integer in 0..1" in card.error and card.card["layer"] == 1
    assert not card.dispatch({"type": "set_neuron", "layer": "x", "neuron": 7})
    assert "whole numbers" in card.error
    card.set_prompt("Paris is the capital of", target=" France")
    assert card.card["prompt"]["target"] == " France" and card.card["prompt"]["text"] == "Paris is the capital of"
    with pytest.raises(fw.InputError):
        NeuronCard(tiny_lm, 0, 999, index=index)


def test_opens_from_the_explorer(tiny_lm, index):
    explorer = fw.Explorer(tiny_lm, PROMPT)
    NeuronCard.follow(explorer, index)
    explorer.select_neuron(1, 5)
    card = explorer.shown
    assert isinstance(card, NeuronCard) and (card.card["layer"], card.card["neuron"]) == (1, 5)
    assert explorer.slot_title == "Neuron L1.N5" and card.card["prompt"]["text"] == PROMPT
    explorer.select_neuron(0, 3)
    assert explorer.shown is card and (card.card["layer"], card.card["neuron"]) == (0, 3)


def test_card_data_without_index_or_prompt(tiny_lm):
    data = neuron_card(tiny_lm, 0, 2)
    assert data.triggers == [] and data.histogram is None and data.prompt_acts is None
    assert data.agreement.startswith("No trigger examples")
