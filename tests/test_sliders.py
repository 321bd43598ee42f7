"""The slider engine against independent computations (plain hooks, weights by hand), and its widget."""
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.analysis.scaling import SliderEngine, as_neuron_list

PROMPT = "The Eiffel Tower is located in the city of"


def scaled_forward(lm, ids, scales):
    """Plain HF forward with the down projections' inputs scaled by hand-written hooks (not the hook core)."""
    handles = []
    for (layer, neuron), s in scales.items():
        def hook(module, args, neuron=neuron, s=s):
            x = args[0].clone()
            x[..., neuron] = x[..., neuron] * s
            return (x,)
        handles.append(lm.blocks[layer].get_submodule(lm.arch.down).register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            return lm.model(input_ids=ids).logits[0].float()
    finally:
        for h in handles:
            h.remove()


def hook_counts(lm):
    return [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in lm.model.modules()]


def assert_untouched(lm, blocks, hooks):
    assert list(lm.blocks) == blocks
    assert hook_counts(lm) == hooks


CASES = [
    {(1, 7): 0.0},  # one layer: block skipped, output shifted by (s-1)·m·v
    {(0, 3): 2.0, (0, 90): -1.0},  # two neurons, one layer
    {(0, 5): 0.5, (1, 100): 3.0},  # two layers: blocks >= 0 rerun
    {(1, 20): 1.0},  # neutral scale: the original
]


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox", "gemma2", "opt"])
def test_incremental_tick_equals_full_forward(tiny_lm_factory, family):
    lm = tiny_lm_factory(family)
    blocks, hooks = list(lm.blocks), hook_counts(lm)
    engine = SliderEngine(lm, PROMPT, target=" Paris", k=5)
    for scales in CASES:
        expected = scaled_forward(lm, engine.ids, scales)[-1]
        pred = engine.predict(scales)
        assert torch.allclose(pred.logits, expected, atol=2e-5, rtol=1e-5), scales
        probs = torch.softmax(expected, -1)
        assert pred.top_ids == torch.topk(probs, 5).indices.tolist()
        target = lm.target_ids(" Paris")[0]
        assert pred.target_prob == pytest.approx(float(probs[target]), rel=1e-4)
        assert pred.target_rank == int((expected > expected[target]).sum())
    assert_untouched(lm, blocks, hooks)


def test_scaling_matches_manual_recomputation_from_weights(tiny_lm):
    """Last layer: logits' = W_U · RMSNorm(resid + (s−1)·m_i·v_i), every piece computed by hand."""
    lm = tiny_lm
    ids = lm.encode(PROMPT)[None]
    last = lm.n_layers - 1
    with torch.no_grad():
        out = lm.model(input_ids=ids, output_hidden_states=True)
    grabbed = {}
    down = lm.blocks[last].mlp.down_proj
    h = down.register_forward_pre_hook(lambda m, a: grabbed.__setitem__("m", a[0][0, -1].clone()))
    with torch.no_grad():
        lm.model(input_ids=ids)
    h.remove()
    # hidden_states[-1] is already normed in HF Llama; rebuild the pre-norm residual from the blocks
    with torch.no_grad():
        hidden = lm.model.model.embed_tokens(ids)
        for block in lm.blocks:
            hidden = block(hidden, position_embeddings=lm.model.model.rotary_emb(hidden, torch.arange(ids.shape[1])[None]))
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    resid = hidden[0, -1]
    norm = lm.model.model.norm
    engine = SliderEngine(lm, PROMPT)
    for neuron, s in [(11, 0.0), (42, 2.0), (42, -1.0)]:
        v = down.weight[:, neuron]
        new = resid + (s - 1) * grabbed["m"][neuron] * v
        normed = new * torch.rsqrt(new.pow(2).mean() + norm.variance_epsilon) * norm.weight
        manual = lm.model.lm_head.weight @ normed
        got = engine.predict({(last, neuron): s}).logits
        assert torch.allclose(got, manual, atol=1e-4), (neuron, s)
        assert not torch.allclose(got, out.logits[0, -1], atol=1e-4)  # the change is visible


def test_reset_is_bit_exact(tiny_lm):
    engine = SliderEngine(tiny_lm, PROMPT)
    with torch.no_grad():
        plain = tiny_lm.model(input_ids=engine.ids).logits[0, -1].float()
    assert torch.equal(engine.original.logits, plain)
    engine.predict({(0, 1): 0.0, (1, 2): 2.5})
    back = engine.predict({(0, 1): 1.0, (1, 2): 1})
    assert torch.equal(back.logits, plain)
    assert engine.predict({}).logits is engine.original.logits


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2"])
def test_continuation_equals_greedy_decoding_without_cache(tiny_lm_factory, family):
    lm = tiny_lm_factory(family)
    engine = SliderEngine(lm, PROMPT)
    for scales in [{}, {(1, 7): 0.0, (1, 9): 3.0}, {(0, 4): 2.0, (1, 7): 0.0}]:
        ids = engine.ids
        expected = []
        for _ in range(4):
            token = int(scaled_forward(lm, ids, scales)[-1].argmax())
            if token in lm.stop_ids:
                break
            expected.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], 1)
        engine.predict({(0, 0): 0.0})  # another tick in between must not leak into the continuation
        assert engine.continuation(scales, 4) == lm.token_strings(expected), scales


def test_bad_scales_give_clear_errors(tiny_lm):
    engine = SliderEngine(tiny_lm, PROMPT)
    blocks, hooks = list(tiny_lm.blocks), hook_counts(tiny_lm)
    for bad, match in [({(5, 1): 0.0}, "layer"), ({(0, 10**6): 0.0}, "neuron"), ({(0, 1): float("nan")}, "finite"),
                       ({(0, 1): "x"}, "number"), ({0: 1.0}, "pairs"), ([(0, 1)], "mapping")]:
        with pytest.raises(fw.InputError, match=match):
            engine.predict(bad)
    with pytest.raises(fw.InputError):
        engine.continuation({}, 0)
    with pytest.raises(fw.InputError):
        SliderEngine(tiny_lm, "   ")
    assert_untouched(tiny_lm, blocks, hooks)


def test_neuron_lists_from_pairs_triples_and_results():
    assert as_neuron_list((3, 4)) == [(3, 4)]
    assert as_neuron_list([(3, 4), (1, 2, 0.5), (3, 4)]) == [(3, 4), (1, 2)]
    with pytest.raises(fw.InputError):
        as_neuron_list([("a", 1)])


@pytest.mark.real_model
def test_middle_layer_tick_on_the_real_model(default_lm):
    engine = SliderEngine(default_lm, PROMPT, target=" Paris")
    scales = {(15, 100): 0.0, (15, 7): 2.0}
    expected = scaled_forward(default_lm, engine.ids, scales)[-1]
    got = engine.predict(scales).logits
    assert torch.allclose(got, expected, atol=1e-3, rtol=1e-4)
    assert engine.original.top_tokens[0] == " Paris"


# ---- the widget ---------------------------------------------------------------------------------

def probs_of(payload):
    from ffn_widgets.widgets.serialize import unpack

    return unpack(payload["probs"]).tolist(), unpack(payload["ids"]).tolist()


def test_widget_answers_drags_with_bars_and_continuation(tiny_lm):
    from ffn_widgets.widgets.sliders import NeuronSliders

    w = NeuronSliders(tiny_lm, PROMPT, [(0, 3), (1, 7, 0.9)], target=" Paris", k=4, continuation=3)
    sent = []
    w.send = lambda content, buffers=None: sent.append(content)
    assert w.neuron_list == [(0, 3), (1, 7)] and w.scales == [1.0, 1.0]
    ids = tiny_lm.encode(PROMPT)[None]
    assert w.dispatch({"type": "scales", "scales": [0.0, 2.5], "seq": 1, "_ack": 1})
    assert sent == [{"type": "_ack", "id": 1, "ok": True}]
    expected = torch.softmax(scaled_forward(tiny_lm, ids, {(0, 3): 0.0, (1, 7): 2.5})[-1], -1)
    probs, top = probs_of(w.prediction)
    assert top == torch.topk(expected, 4).indices.tolist()
    assert probs == pytest.approx(torch.topk(expected, 4).values.tolist(), rel=1e-4)
    assert w.prediction["seq"] == 1 and w.scales_seq == 1
    assert w.prediction["target"]["prob"] == pytest.approx(float(expected[tiny_lm.target_ids(" Paris")[0]]), rel=1e-4)
    assert w.continuation["tokens"] == w.engine.continuation({(0, 3): 0.0, (1, 7): 2.5}, 3)
    # reset: the original distribution again, bit for bit
    assert w.dispatch({"type": "reset"})
    assert w.scales == [1.0, 1.0] and w.result.logits is w.engine.original.logits
    assert probs_of(w.prediction)[0] == w.engine.original.top_probs
    # a message written before the kernel added a neuron: matched by key, the new one keeps its scale
    w.add(1, 9)
    assert w.dispatch({"type": "scales", "scales": [0.5, 1.5], "keys": ["0:3", "1:7"], "seq": 2})
    assert w.scales == [0.5, 1.5, 1.0] and w.scales_seq == 2
    w.remove(1, 9)
    assert w.scales_seq == -1  # a change made in the kernel: the view shows it
    w.reset()
    # add and remove, typed and by message
    assert w.dispatch({"type": "add", "text": "L1:N20"}) and w.neuron_list[-1] == (1, 20)
    assert w.dispatch({"type": "remove", "layer": 0, "neuron": 3}) and w.neuron_list == [(1, 7), (1, 20)]
    assert w.figure().data and len(w.to_frame()) == 4


def test_a_burst_of_drag_messages_ends_in_the_last_state(tiny_lm):
    """1000 slider events: the browser's coalescer sends only the newest (tested in JS); here the kernel
    also drops any message older than one it already answered, so even a shuffled burst ends right."""
    import random

    from ffn_widgets.widgets.sliders import NeuronSliders

    w = NeuronSliders(tiny_lm, PROMPT, [(1, 7)], continuation=2)
    rng = random.Random(0)
    events = [(seq, round(rng.uniform(-1, 3), 2)) for seq in range(1, 1001)]
    delivered = events[::25] + [events[-1]]  # what reaches the kernel from 1000 drags (at most one in flight)
    rng.shuffle(delivered)
    before = w.ticks
    for seq, value in delivered:
        assert w.dispatch({"type": "scales", "scales": [value], "seq": seq})
    last_seq, last_value = events[-1]
    assert w.scales == [last_value] and w.prediction["seq"] == last_seq
    assert w.ticks - before <= len(delivered)
    expected = SliderEngine(tiny_lm, PROMPT).predict({(1, 7): last_value})
    assert probs_of(w.prediction)[0] == pytest.approx(expected.top_probs, rel=1e-5)
    assert w.dispatch({"type": "scales", "scales": [0.5], "seq": 1001})  # still responsive afterwards
    assert w.scales == [0.5]


def test_widget_reports_bad_gestures_without_changing_state(tiny_lm):
    from ffn_widgets.widgets.sliders import NeuronSliders

    w = NeuronSliders(tiny_lm, PROMPT, [(1, 7)], continuation=0)
    assert not w.dispatch({"type": "scales", "scales": [5.0], "seq": 1})
    assert "between -1 and 3" in w.error and w.scales == [1.0]
    assert not w.dispatch({"type": "scales", "scales": [1.0, 2.0], "seq": 2})
    assert "Expected a list of scales" in w.error
    assert not w.dispatch({"type": "add", "text": "twelve"})
    assert "layer:neuron" in w.error
    assert not w.dispatch({"type": "add", "text": "9:1"})
    assert "layer must be" in w.error and w.neuron_list == [(1, 7)]
    assert w.continuation == {}


def test_neurons_picked_in_the_explorer_get_sliders(tiny_lm):
    from ffn_widgets.widgets.sliders import NeuronSliders

    ex = fw.Explorer(tiny_lm, PROMPT)
    w = NeuronSliders(tiny_lm, PROMPT, continuation=0)
    w.connect(ex)
    assert ex.shown is w
    assert ex.dispatch({"type": "select_neuron", "layer": 1, "neuron": 7})
    ex.select_neuron(0, 3)
    assert w.neuron_list == [(1, 7), (0, 3)] and w.scales == [1.0, 1.0]


def test_sliders_from_a_knowledge_neuron_result(tiny_lm):
    from ffn_widgets.analysis.knowledge import KnowledgeNeurons
    from ffn_widgets.widgets.sliders import NeuronSliders

    paris = tiny_lm.target_ids(" Paris")[0]
    kn = KnowledgeNeurons([PROMPT], " Paris", paris, torch.zeros(1, 2, 128), [(1, 7, 0.3), (0, 2, 0.1)], 0.2, 0.5, 20)
    w = NeuronSliders.from_knowledge(tiny_lm, kn, continuation=0)
    assert w.neuron_list == [(1, 7), (0, 2)] and w.engine.target_id == paris and w.prompt == PROMPT
