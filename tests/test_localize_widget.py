"""The Localize widget, kernel side (the browser side is in js/tests/localize.test.ts and
tests/browser/test_localize_lab.py). Gestures go through ``dispatch`` as the browser's messages do; the synced
numbers are compared with a separate ``fw.localize`` and the neuron lists with ``fw.top_neurons``."""
import asyncio
import copy

import numpy as np
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.editing.rome import RomeSettings
from ffn_widgets.memories.corpus import load_corpus
from ffn_widgets.model import InputError
from ffn_widgets.widgets.localize import parse_layers
from ffn_widgets.widgets.neuron_card import NeuronCard
from ffn_widgets.widgets.serialize import unpack

FACT = {"prompt": "The Eiffel Tower is located in the city of", "subject": "The Eiffel Tower", "target_true": "Paris",
        "target_new": "Rome", "paraphrases": ["The Eiffel Tower can be found in the city of"],
        "neighborhood": [{"prompt": "The Louvre is located in the city of", "target": "Paris"}]}


def kw(steps=3):
    return dict(corpus=load_corpus("lee"), tokens=512, samples=3, steps=4,
                edit_kwargs=dict(settings=RomeSettings(steps=steps, prefix_lengths=((3, 1),))))


@pytest.fixture
def lm(tiny_lm_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))
    base = tiny_lm_factory("llama")
    return fw.load_model(model=copy.deepcopy(base.model), tokenizer=base.tokenizer)


def snapshot(lm) -> dict:
    return {name: p.detach().clone() for name, p in lm.model.named_parameters()}


def same_weights(lm, snap) -> bool:
    return all(torch.equal(p, snap[name]) for name, p in lm.model.named_parameters())


def test_synced_numbers_equal_localize(lm):
    original = snapshot(lm)
    w = fw.Localize(lm, FACT, edit_layers=[1], start=False, **kw())
    assert w.status == "idle" and w.measures == {} and w.result is None
    assert w.fact == {"prompt": FACT["prompt"], "subject": FACT["subject"], "target": " Paris", "target_new": " Rome"}
    loc = w.start()  # no event loop here: runs in place
    assert w.status == "done" and w.progress == {} and w.error == "" and loc is w.result
    expected = fw.localize(lm, FACT, edit_layers=[1], **kw())
    assert set(w.measures) == set(expected.measures)
    for name, values in expected.measures.items():
        np.testing.assert_array_equal(unpack(w.measures[name]), values.astype(np.float32), err_msg=name)
    assert [n["name"] for n in w.names] == list(expected.measures) and w.edit_layers == [1]
    assert [n["name"] for n in w.names if n["edit"]] == [n for n in expected.measures if n.startswith("edit_")]
    # .figure() / .to_frame() are the Localization's
    import pandas.testing as pdt

    pdt.assert_frame_equal(w.to_frame(), expected.to_frame())
    assert len(w.figure().data) == len(expected.figure().data)
    assert same_weights(lm, original) and len(lm.edits) == 0


def test_clicking_a_layer_lists_exactly_top_neurons_and_opens_cards(lm):
    w = fw.Localize(lm, FACT, edit_layers=[], start=False, **kw())
    w.start()
    assert w.dispatch({"type": "select", "layer": 0}), w.error
    assert w.selected == 0 and w.neurons["layer"] == 0 and w.neurons["target"] == " Paris"
    last_subject = lm.find_subject(FACT["prompt"], FACT["subject"])[1] - 1
    sites = {s["name"]: s for s in w.neurons["sites"]}
    for name, position in (("last token", -1), ("last subject token", last_subject)):
        ranking = fw.top_neurons(lm, FACT["prompt"], 0, position, k=8, by="contribution", target=" Paris")
        assert unpack(sites[name]["neurons"]).tolist() == ranking.neurons, name
        np.testing.assert_allclose(unpack(sites[name]["contrib"]), ranking.contributions, rtol=1e-5, atol=1e-7)
        assert sites[name]["position"] == ranking.position and sites[name]["value_top"] == ranking.value_top
    neuron = unpack(sites["last subject token"]["neurons"])[0]
    assert w.dispatch({"type": "open_card", "layer": 0, "neuron": int(neuron)}), w.error
    card = w.slot[0]
    assert isinstance(card, NeuronCard) and w.slot_title == f"Neuron L0.N{neuron}"
    assert (card.card["layer"], card.card["neuron"]) == (0, neuron)
    # the fact's attribution and MLP trace are joined to the card
    assert card.card["knowledge"]["score"] == pytest.approx(float(w.result.knowledge.scores[0, 0, neuron]))
    assert card.card["trace"]["token"] == last_subject and card.card["trace"]["source"] == "given"
    assert w.dispatch({"type": "open_card", "layer": 1, "neuron": 3})
    assert w.slot == [card] and card.card["layer"] == 1  # one card, reused
    assert w.dispatch({"type": "close_card"}) and w.slot == []


def test_cancel_mid_run_leaves_the_weights_bit_exact(lm):
    original = snapshot(lm)

    async def main():
        w = fw.Localize(lm, FACT, edit_layers=[0, 1], **kw(steps=6))
        assert w.status == "running" and w._runner.task is not None  # a task: the kernel stays responsive
        while w.status == "running" and "Optimising" not in w.progress.get("message", ""):
            await asyncio.sleep(0)
        assert "ROME at layer 0 (1 of 2): Optimising" in w.progress["message"]  # within the first edit
        assert not w.dispatch({"type": "start"}) and "running" in w.error
        assert w.dispatch({"type": "cancel"})
        await w._runner.task
        return w

    w = asyncio.run(main())
    assert w.status == "cancelled" and w.progress == {}
    assert np.isnan(unpack(w.measures["edit_efficacy"])).all() and np.isfinite(unpack(w.measures["kn_mass"])).all()
    assert same_weights(lm, original) and len(lm.edits) == 0


def test_bad_input_is_refused_with_the_weights_untouched(lm):
    original = snapshot(lm)
    with pytest.raises(InputError, match="does not occur"):
        fw.Localize(lm, {**FACT, "subject": "The Louvre"})
    with pytest.raises(InputError, match="layer"):
        fw.Localize(lm, FACT, edit_layers=[99])
    with pytest.raises(InputError, match="target_new"):
        fw.Localize(lm, prompt=FACT["prompt"], subject=FACT["subject"], target="Paris")
    w = fw.Localize(lm, FACT, edit_layers=[], start=False, **kw())
    w.start()
    before = dict(w.measures)
    assert not w.dispatch({"type": "start", "subject": "The Colosseum"})
    assert "does not occur" in w.error and w.status == "done" and w.measures == before
    assert not w.dispatch({"type": "start", "edit_layers": "0, 7"}) and "layer" in w.error
    assert not w.dispatch({"type": "select", "layer": 5}) and "layer" in w.error
    assert not w.dispatch({"type": "open_card", "layer": 0, "neuron": "x"}) and "whole number" in w.error
    assert w.fact["subject"] == FACT["subject"] and same_weights(lm, original) and len(lm.edits) == 0
    # a good fact from the form runs, and "none" means no edits
    assert w.dispatch({"type": "start", "prompt": "The Louvre is located in the city of", "subject": "The Louvre",
                       "target": "Paris", "edit_layers": "none"}), w.error
    assert w.status == "done" and w.fact["subject"] == "The Louvre" and w.edit_layers == []
    assert "paraphrases" not in w.result.fact  # the Eiffel Tower's paraphrases are not the Louvre's
    assert parse_layers("0, 4 8-10") == [0, 4, 8, 9, 10] and parse_layers("none") == []
    with pytest.raises(InputError):
        parse_layers("0-x")


def test_an_edit_between_steps_restarts_the_screen_and_one_during_its_edit_goes_first(lm):
    """Issue 24 on a running event loop: an edit lands while the screen runs, once between two reading steps and
    once while the screen holds its own temporary edit. Each time it starts again, and what it returns equals a
    screen of the finally edited model alone (never rows of two models); the weights are that model's, exactly."""
    from ffn_widgets.editing.log import LogEntry, WeightDelta

    def entry(seed):
        g = torch.Generator().manual_seed(seed)
        path = f"{lm.arch.layers}.0.{lm.arch.down}"
        return LogEntry("test", [], [0], [WeightDelta(path, 2 * torch.randn(lm.d_model, 1, generator=g),
                                                      torch.randn(1, lm.d_mlp, generator=g))])

    async def main():
        w = fw.Localize(lm, FACT, edit_layers=[1], **kw())
        while not w.measures:
            await asyncio.sleep(0)  # the first trace rows are in
        lm.edits.apply(entry(1))  # between two reading steps
        while not lm.watch.held_by:
            await asyncio.sleep(0)  # now inside the screen's own edit at layer 1
        lm.edits.apply(entry(2))  # goes first
        while w.status == "running":
            await asyncio.sleep(0.01)
        return w

    w = asyncio.run(main())
    assert w.status == "done" and w._runner.restarts == 2 and w.error == ""
    assert len(lm.edits) == 2 and w.result.weights_version == lm.state_version
    edited = snapshot(lm)
    expected = fw.localize(lm, FACT, edit_layers=[1], **kw())
    for name, values in expected.measures.items():
        np.testing.assert_allclose(w.result.measures[name], values, rtol=1e-5, atol=1e-7, err_msg=name)
    assert same_weights(lm, edited)
