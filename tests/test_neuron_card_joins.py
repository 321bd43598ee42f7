"""The neuron card's joined fields against the analyses they come from, each computed separately: the
knowledge-neuron attribution, a causal trace (and a restoration done by hand with our own hooks), the edit log
with its weights as loaded, and the slider engine (and a plain forward with our own hook)."""
import copy

import numpy as np
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.analysis.knowledge import attribution
from ffn_widgets.analysis.neuron_card import neuron_card
from ffn_widgets.analysis.values import value_tokens
from ffn_widgets.editing.rome import RomeSettings
from ffn_widgets.model import InputError
from ffn_widgets.widgets.neuron_card import NeuronCard

PROMPT, SUBJECT = "The Eiffel Tower is located in the city of", "The Eiffel Tower"
QUICK = dict(corpus="lee", tokens=512, progress=False, settings=RomeSettings(steps=3, prefix_lengths=((3, 1),)))


@pytest.fixture
def lm(tiny_lm_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))
    base = tiny_lm_factory("llama")
    return fw.load_model(model=copy.deepcopy(base.model), tokenizer=base.tokenizer)


def test_knowledge_score_is_the_attribution_and_the_refinement(lm):
    kn = fw.knowledge_neurons(lm, PROMPT, " Paris", ["The Eiffel Tower can be found in the city of"], steps=4)
    scores = attribution(lm, PROMPT, " Paris", steps=4)  # the main prompt's, again
    kept = [(l, i) for l, i, _ in kn]
    outside = next((l, i) for l in range(lm.n_layers) for i in range(lm.d_mlp) if (l, i) not in kept)
    for unit in (kept[0], outside):
        card = neuron_card(lm, *unit, prompt=PROMPT)  # found in the kernel: the newest run on this prompt
        k = card.knowledge
        assert k["source"] == "kernel" and k["score"] == pytest.approx(float(scores[unit]), rel=1e-6, abs=1e-12)
        assert k["rank"] == 1 + int((scores > scores[unit]).sum()) and k["max"] == pytest.approx(float(scores.max()))
        assert k["knowledge_neuron"] == (unit in kept) and k["n_knowledge_neurons"] == len(kept)
        assert k["mean_score"] == pytest.approx(float(kn.scores[:, unit[0], unit[1]].mean()))
    assert neuron_card(lm, *outside, knowledge=kn).knowledge["source"] == "given"
    assert neuron_card(lm, *outside, prompt="The Louvre is in").knowledge is None  # another prompt: not joined
    with lm.edits.temporary():  # other weights: the kernel's result is not joined
        fw.rome_edit(lm, PROMPT, SUBJECT, " Rome", 1, **QUICK)
        assert neuron_card(lm, *outside, prompt=PROMPT).knowledge is None


def restored_by_hand(lm, trace, layer, neuron, token) -> tuple[float, float]:
    """Mean p(target) over the trace's noise draws with only the neuron's activation (or the whole MLP output)
    set to its clean value at ``token``: one sample per forward, our own hooks on the down projection."""
    mlp = lm.model.model.layers[layer].mlp
    clean = {}
    h = mlp.down_proj.register_forward_pre_hook(lambda m, a: clean.__setitem__("m", a[0][0, token].clone()))
    h2 = mlp.register_forward_hook(lambda m, a, out: clean.__setitem__("out", out[0, token].clone()))
    ids = torch.tensor([lm.tokenizer(trace.prompt)["input_ids"]])
    with torch.no_grad():
        lm.model(input_ids=ids)
    h.remove(), h2.remove()
    start, stop = trace.subject
    gen = torch.Generator().manual_seed(trace.seed)
    draws = torch.randn(len(trace.p_corrupted_samples), stop - start, lm.d_model, generator=gen) * trace.sigma
    out = []
    for what in ("neuron", "mlp"):
        ps = []
        for noise in draws:
            def add_noise(m, a, out, noise=noise):
                out = out.clone()
                out[0, start:stop] += noise
                return out

            def set_neuron(m, a):
                x = a[0].clone()
                x[0, token, neuron] = clean["m"][neuron]
                return (x,)

            def set_mlp(m, a, o):
                o = o.clone()
                o[0, token] = clean["out"]
                return o

            hooks = [lm.model.model.embed_tokens.register_forward_hook(add_noise),
                     mlp.down_proj.register_forward_pre_hook(set_neuron) if what == "neuron"
                     else mlp.register_forward_hook(set_mlp)]
            with torch.no_grad():
                logits = lm.model(input_ids=ids).logits[0, -1]
            for x in hooks:
                x.remove()
            ps.append(float(torch.softmax(logits.float(), -1)[trace.target_id]))
        out.append(float(np.mean(ps)))
    return out[0], out[1]


def test_trace_share_is_the_neuron_restoration_over_the_mlp_restoration(lm):
    trace = fw.causal_trace(lm, PROMPT, SUBJECT, " Paris", kind="mlp", window=1, samples=3, check_target=False,
                            progress=False)
    t = trace.subject[1] - 1
    ranking = fw.top_neurons(lm, PROMPT, 0, t, k=3, by="activation")
    for neuron in ranking.neurons:
        s = neuron_card(lm, 0, neuron, prompt=PROMPT).trace  # the kernel's newest trace of this prompt
        assert s["source"] == "kernel" and s["token"] == t and s["samples"] == 3
        assert s["p_corrupted"] == pytest.approx(trace.p_corrupted, rel=1e-5)
        assert s["p_mlp"] == pytest.approx(float(trace.scores[0, t]), rel=1e-5)  # the trace's own cell
        assert s["trace_cell"] == pytest.approx(float(trace.indirect[0, t]))
        p_neuron, p_mlp = restored_by_hand(lm, trace, 0, neuron, t)
        assert s["p_neuron"] == pytest.approx(p_neuron, rel=1e-5) and s["p_mlp"] == pytest.approx(p_mlp, rel=1e-5)
        assert s["share"] == pytest.approx((s["p_neuron"] - s["p_corrupted"]) / (s["p_mlp"] - s["p_corrupted"]))
    given = neuron_card(lm, 0, ranking.neurons[0], trace=fw.TraceSet(mlp=trace))  # a set: its MLP part
    assert given.trace["source"] == "given" and given.trace["trace_kind"] == "mlp"
    with lm.edits.temporary():  # a trace of other weights is refused when given, skipped when recalled
        fw.rome_edit(lm, PROMPT, SUBJECT, " Rome", 0, **QUICK)
        with pytest.raises(InputError, match="other weights"):
            neuron_card(lm, 0, ranking.neurons[0], trace=trace)
        assert neuron_card(lm, 0, ranking.neurons[0], prompt=PROMPT).trace is None


def test_edit_effect_compares_the_value_as_loaded_and_now(lm):
    neuron = 5
    assert neuron_card(lm, 1, neuron).edit == {"touched": False, "entries": [], "value": None}
    edit = fw.rome_edit(lm, PROMPT, SUBJECT, " Rome", 1, **QUICK)
    try:
        e = neuron_card(lm, 1, neuron).edit
        assert e["touched"] and e["entries"][0]["method"] == "r-ROME" and e["entries"][0]["layers"] == [1]
        now = value_tokens(lm, 1, neuron, k=10)
        down = lm.model.model.layers[1].mlp.down_proj.weight
        v_now = down[:, neuron].detach().clone()
        with lm.edits.original():
            before = value_tokens(lm, 1, neuron, k=10)
            v_before = down[:, neuron].detach().clone()
        assert [t for t, _ in e["value"]["before"]] == [t for t, _ in before.top]
        assert [t for t, _ in e["value"]["after"]] == [t for t, _ in now.top]
        assert [v for _, v in e["value"]["after"]] == pytest.approx([v for _, v in now.top], rel=1e-5)
        assert e["value"]["kept"] == len(set(before.top_ids) & set(now.top_ids))
        moved = float((v_now - v_before).norm() / v_before.norm())
        assert e["value"]["relative_change"] == pytest.approx(moved, rel=1e-5)
        assert e["value"]["relative_change"] > 0  # a rank-one update W += Λuᵀ moves column i by u_i·Λ
        assert neuron_card(lm, 0, neuron).edit["touched"] is False  # another layer
    finally:
        edit.undo()


def test_slider_is_the_slider_engine_and_a_plain_forward(lm):
    layer, neuron, scale = 1, 7, 0.0
    card = NeuronCard(lm, layer, neuron, prompt=PROMPT, target=" Paris")
    assert card.dispatch({"type": "scale", "scale": scale, "seq": 4}), card.error
    got = card.scaled
    engine = fw.SliderEngine(lm, PROMPT, " Paris", k=5)
    pred = engine.predict({(layer, neuron): scale})
    assert got["seq"] == 4 and got["after"]["p"] == pytest.approx(pred.target_prob, rel=1e-6)
    assert got["after"]["rank"] == pred.target_rank and [t for t, _ in got["after"]["top"]] == pred.top_tokens
    assert got["before"]["p"] == pytest.approx(engine.original.target_prob, rel=1e-6)
    down = lm.model.model.layers[layer].mlp.down_proj

    def scale_it(m, a):
        x = a[0].clone()
        x[..., neuron] *= scale
        return (x,)

    h = down.register_forward_pre_hook(scale_it)
    try:
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([lm.tokenizer(PROMPT)["input_ids"]])).logits[0, -1]
    finally:
        h.remove()
    tid = lm.target_ids(" Paris")[0]
    assert got["after"]["p"] == pytest.approx(float(torch.softmax(logits.float(), -1)[tid]), rel=1e-5)
    assert not card.dispatch({"type": "scale", "scale": "nan"}) and "finite" in card.error
    card.set_neuron(0, 1)
    assert card.scaled == {}  # a new neuron starts at ×1
    with pytest.raises(InputError, match="prompt"):
        NeuronCard(lm, 0, 1).scale(0.5)


def test_the_widget_serialises_every_joined_field(lm):
    kn = fw.knowledge_neurons(lm, PROMPT, " Paris", steps=4)
    trace = fw.causal_trace(lm, PROMPT, SUBJECT, " Paris", kind="mlp", window=1, samples=2, check_target=False,
                            progress=False)
    card = NeuronCard(lm, 0, 3, prompt=PROMPT, target=" Paris", knowledge=kn, trace=trace)
    data = neuron_card(lm, 0, 3, prompt=PROMPT, target=" Paris", knowledge=kn, trace=trace)
    assert card.card["knowledge"] == data.knowledge and card.card["edit"] == data.edit
    assert {k: v for k, v in card.card["trace"].items() if k != "share"} == {
        k: v for k, v in data.trace.items() if k != "share"}
    share = data.trace["share"]
    assert card.card["trace"]["share"] == (None if share != share else share)
