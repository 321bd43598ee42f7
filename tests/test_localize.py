"""The localisation screen's data equals the separate analyses' results, recomputed independently."""
import copy

import numpy as np
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.editing.metrics import fact_scores
from ffn_widgets.editing.rome import RomeSettings
from ffn_widgets.memories.corpus import load_corpus
from ffn_widgets.model import InputError

FACT = {"prompt": "The Eiffel Tower is located in the city of", "subject": "The Eiffel Tower", "target_true": "Paris",
        "target_new": "Rome", "paraphrases": ["The Eiffel Tower can be found in the city of"],
        "neighborhood": [{"prompt": "The Louvre is located in the city of", "target": "Paris"},
                         {"prompt": "The Kremlin is located in the city of", "target": "Moscow"}]}
QUICK = dict(settings=RomeSettings(steps=3, prefix_lengths=((3, 1),)))


@pytest.fixture
def lm(tiny_lm_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))
    base = tiny_lm_factory("llama")
    return fw.load_model(model=copy.deepcopy(base.model), tokenizer=base.tokenizer)


def edit_kw():
    return dict(corpus=load_corpus("lee"), tokens=512, edit_kwargs=QUICK, samples=3, steps=4)


def test_every_measure_equals_its_own_analysis(lm):
    w0 = {layer: lm.values(layer).clone() for layer in range(lm.n_layers)}
    loc = fw.localize(lm, FACT, edit_layers=[1], **edit_kw())
    m = loc.measures
    last = lm.find_subject(FACT["prompt"], FACT["subject"])[1] - 1
    for window, key in ((1, "trace_mlp"), (10, "trace_mlp_window")):
        t = fw.causal_trace(lm, FACT["prompt"], FACT["subject"], " Paris", kind="mlp", window=window, samples=3,
                            check_target=False, progress=False)
        np.testing.assert_allclose(m[key], (t.scores[:, last] - t.p_corrupted).numpy(), rtol=1e-6, atol=1e-9)
    kn = fw.knowledge_neurons(lm, FACT["prompt"], " Paris", steps=4).scores[0].clamp(min=0).sum(1).double()
    np.testing.assert_allclose(m["kn_mass"], (kn / kn.sum()).numpy(), rtol=1e-5, atol=1e-9)
    # lens and values from the weights, by hand: final norm gain, W_U, ranks by counting
    run = lm.run(FACT["prompt"])
    tid = lm.target_ids(" Paris")[0]
    W, gain = lm.W_U.detach().float(), lm.norm_scale(torch.ones(1, lm.d_model))[0]
    for layer in range(lm.n_layers):
        ranks = []
        for resid in (run.resid_post[layer, -1] - run.mlp_out[layer, -1], run.resid_post[layer, -1]):
            p = torch.softmax(lm.unembed(resid), -1)
            ranks.append(int((p > p[tid]).sum()))
        assert m["lens_gain"][layer] == pytest.approx(np.log10(ranks[0] + 1) - np.log10(ranks[1] + 1))
        acts = run.activations[layer, -1]
        top = acts.abs().topk(10).indices
        hits = [tid in ((acts[i].sign() * (lm.values(layer)[i] * gain)) @ W.T).topk(10).indices.tolist() for i in top]
        assert m["value_agreement"][layer] == pytest.approx(sum(hits) / 10)
        # the MLP's direct push: its output through the final norm frozen at the last state, then W_U[target]
        final = run.resid_post[-1, -1]
        g, inv_sigma, centres = lm.norm_scale(final)
        out = run.mlp_out[layer, -1]
        out = out - out.mean() if centres else out
        assert m["value_push"][layer] == pytest.approx(float((out * g * inv_sigma) @ W[tid]), rel=1e-4, abs=1e-6)
    # the edit: the same scores as an edit made by hand, and the weights left as they were
    assert np.isnan(m["edit_efficacy"][0]) and loc.edit_layers == [1]
    before = fact_scores(lm, FACT)
    with lm.edits.temporary():
        fw.rome_edit(lm, FACT["prompt"], FACT["subject"], " Rome", 1, corpus=load_corpus("lee"), tokens=512,
                     progress=False, **QUICK)
        after = fact_scores(lm, FACT, before=before)
    assert m["edit_efficacy"][1] == after["efficacy"] and m["edit_neighbourhood"][1] == after["neighbourhood"]
    p0, p1 = before["prompt"]["p_new"], after["prompt"]["p_new"]
    assert m["edit_rewrite"][1] == pytest.approx((p1 - p0) / (1 - p0))
    assert all(torch.equal(lm.values(layer), w) for layer, w in w0.items()) and len(lm.edits) == 0
    assert len(loc.to_frame()) == lm.n_layers and loc.figure().data and set(loc.best_layers()) >= {"kn_mass"}


def test_many_facts_r2_against_group_means(lm):
    facts = [FACT, {**FACT, "prompt": "The Louvre is located in the city of", "subject": "The Louvre",
                    "target_new": "London", "neighborhood": FACT["neighborhood"][1:]}]
    many = fw.localize_many(lm, facts, edit_layers=[0, 1], progress=False, **edit_kw())
    rows = many.rows()
    assert len(rows) == 4 and {r["layer"] for r in rows} == {0, 1}
    y = np.array([r["edit_rewrite"] for r in rows])
    means = {layer: y[[r["layer"] == layer for r in rows]].mean() for layer in (0, 1)}
    within = sum((r["edit_rewrite"] - means[r["layer"]]) ** 2 for r in rows)
    assert many.r2()["layer"] == pytest.approx(1 - within / ((y - y.mean()) ** 2).sum())
    x = np.array([r["trace_mlp_window"] for r in rows])
    assert many.correlation() == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert many.r2()["layer + trace"] >= many.r2()["layer"] - 1e-12
    assert many.figure().data


def test_bad_input_is_refused(lm):
    with pytest.raises(InputError, match="does not occur"):
        fw.localize(lm, {**FACT, "subject": "The Louvre"})
    with pytest.raises(InputError, match="target_new"):
        fw.localize(lm, prompt=FACT["prompt"], subject=FACT["subject"], target="Paris")
    with pytest.raises(InputError, match="layer"):
        fw.localize(lm, FACT, edit_layers=[99])
    with pytest.raises(InputError, match="No facts"):
        fw.localize_many(lm, [])


def test_one_calling_convention(lm):
    """``localize(lm, prompt, subject, target, target_new)`` as rome_edit and causal_trace are called; the
    same numbers as the fact dict; both at once is refused."""
    kw = dict(edit_layers=[], samples=3, steps=4)
    by_dict = fw.localize(lm, FACT, **kw)
    by_position = fw.localize(lm, FACT["prompt"], FACT["subject"], "Paris", "Rome", **kw)
    for key in by_dict.measures:
        np.testing.assert_array_equal(by_dict.measures[key], by_position.measures[key])
    w = fw.Localize(lm, FACT["prompt"], FACT["subject"], "Paris", "Rome", edit_layers=[], start=False)
    assert w.fact["subject"] == FACT["subject"] and w.fact["target_new"] == " Rome"
    with pytest.raises(InputError, match="not both"):
        fw.localize(lm, FACT, FACT["subject"])
