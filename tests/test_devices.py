"""A model accelerate spread out (some blocks offloaded to disk, their weights on the meta device and loaded
by hooks at each forward) gives every analysis the same numbers as the same model in one piece.

CI has no GPU, so the split is CPU + disk: it exercises the offload hooks, meta weights and writes to
offloaded weights; tests/test_gpu.py runs the same analyses on CUDA where there is one.
"""
import copy

import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.editing.rome import RomeSettings
from ffn_widgets.memories.corpus import load_corpus
from ffn_widgets.model import InputError
from ffn_widgets.model.placement import is_offloaded

PROMPT = "The Eiffel Tower is located in the city of"
SUBJECT = "The Eiffel Tower"
QUICK = RomeSettings(steps=4, prefix_lengths=((3, 2),))


def device_map_for(model, blocks: str, n_layers: int, where) -> dict:
    """Every top-level module on the CPU, block i on ``where(i)``."""
    out = {}

    def visit(prefix, module):
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if full == blocks:
                out.update({f"{full}.{i}": where(i) for i in range(n_layers)})
            elif blocks.startswith(full + "."):
                visit(full, child)
            else:
                out[full] = "cpu"
    visit("", model)
    return out


def split_copy(lm, folder, how: str = "disk"):
    """A copy of ``lm`` placed by accelerate: its odd blocks offloaded to disk (``"disk"``), or every weight
    on the meta device with the numbers kept in a dict in memory (``"cpu_offload"``)."""
    from accelerate import cpu_offload, dispatch_model

    model = copy.deepcopy(lm.model)
    if how == "cpu_offload":
        model = cpu_offload(model, execution_device="cpu")
    else:
        placement = device_map_for(model, lm.arch.layers, lm.n_layers, lambda i: "disk" if i % 2 else "cpu")
        model = dispatch_model(model, placement, main_device="cpu", offload_dir=str(folder))
    return fw.load_model(model=model, tokenizer=lm.tokenizer)


# gated MLP; GPT-2's transposed Conv1D with tied embeddings; every weight offloaded, kept in memory
@pytest.fixture(params=[("llama", "disk"), ("gpt2", "disk"), ("llama", "cpu_offload")], ids="-".join)
def pair(request, tiny_lm_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path / "cache"))
    family, how = request.param
    base = tiny_lm_factory(family)
    whole = fw.load_model(model=copy.deepcopy(base.model), tokenizer=base.tokenizer)
    split = split_copy(base, tmp_path / "offload", how)
    return whole, split


def test_the_split_really_offloads(pair):
    whole, split = pair
    module = split.blocks[1].get_submodule(split.arch.down)
    assert is_offloaded(module) and split.is_split and not whole.is_split
    assert split.device == torch.device("cpu")
    torch.testing.assert_close(split.values(1), whole.values(1), rtol=0, atol=0)
    torch.testing.assert_close(split.keys(1), whole.keys(1), rtol=0, atol=0)
    assert split.fingerprint == whole.fingerprint


def test_analyses_equal_the_unsplit_model(pair):
    whole, split = pair
    a, b = split.run(PROMPT), whole.run(PROMPT)
    for site in ("activations", "resid_pre", "attn_out", "mlp_out", "resid_post", "logits"):
        torch.testing.assert_close(getattr(a, site), getattr(b, site), rtol=0, atol=0)
    la, lb = fw.logit_lens(split, PROMPT, target=" Paris"), fw.logit_lens(whole, PROMPT, target=" Paris")
    torch.testing.assert_close(la.post.probs, lb.post.probs, rtol=0, atol=0)
    torch.testing.assert_close(la.mid.probs, lb.mid.probs, rtol=0, atol=0)
    for by in ("activation", "contribution"):
        ta = fw.top_neurons(split, PROMPT, 1, k=6, by=by, target=" Paris")
        tb = fw.top_neurons(whole, PROMPT, 1, k=6, by=by, target=" Paris")
        assert ta.neurons == tb.neurons
    assert fw.value_tokens(split, 1, 7, k=5).top_ids == fw.value_tokens(whole, 1, 7, k=5).top_ids
    ka = fw.knowledge_neurons(split, PROMPT, " Paris", steps=4)
    kb = fw.knowledge_neurons(whole, PROMPT, " Paris", steps=4)
    torch.testing.assert_close(ka.scores, kb.scores, rtol=1e-5, atol=1e-7)
    kw = dict(kind="all", samples=2, check_target=False, progress=False)
    ca, cb = fw.causal_trace(split, PROMPT, SUBJECT, **kw), fw.causal_trace(whole, PROMPT, SUBJECT, **kw)
    for kind in ("hidden", "mlp", "attn"):
        torch.testing.assert_close(ca[kind].probs, cb[kind].probs, rtol=1e-5, atol=1e-7)


def test_slider_ticks_equal_the_unsplit_model(pair):
    whole, split = pair
    scales = {(1, 3): 0.0, (0, 5): 2.5}
    ea, eb = fw.SliderEngine(split, PROMPT, target=" Paris"), fw.SliderEngine(whole, PROMPT, target=" Paris")
    torch.testing.assert_close(ea.predict(scales).logits, eb.predict(scales).logits, rtol=1e-5, atol=1e-6)
    with split.intervene(scales):  # and against a plain forward of the split model with the same scaling
        plain = split.logits(PROMPT)[-1]
    torch.testing.assert_close(ea.predict(scales).logits, plain, rtol=1e-5, atol=1e-6)


def test_mining_equals_the_unsplit_model(pair, tmp_path):
    whole, split = pair
    corpus = load_corpus(load_corpus("lee").sentences[:12])
    ia = fw.mine_triggers(split, corpus, k=4, path=tmp_path / "a", progress=False)
    ib = fw.mine_triggers(whole, corpus, k=4, path=tmp_path / "b", progress=False)
    for layer, neuron in [(0, 0), (1, 7), (1, 100)]:
        assert [(t.text, t.activation) for t in ia.top(layer, neuron)] == \
               [(t.text, t.activation) for t in ib.top(layer, neuron)]


def test_an_edit_of_an_offloaded_layer_lands_and_undoes_exactly(pair):
    whole, split = pair
    layer = 1  # offloaded to disk
    kw = dict(corpus=load_corpus("lee"), tokens=512, settings=QUICK, progress=False)
    before, version = split.logits(PROMPT)[-1], split.weights_version
    w0 = split.oriented_weight(split.blocks[layer].get_submodule(split.arch.down)).clone()
    ea = fw.rome_edit(split, PROMPT, SUBJECT, " Rome", layer, **kw)
    eb = fw.rome_edit(whole, PROMPT, SUBJECT, " Rome", layer, **kw)
    torch.testing.assert_close(split.values(layer), whole.values(layer), rtol=1e-5, atol=1e-6)
    assert split.weights_version != version
    assert not torch.equal(split.values(layer).T, w0)
    torch.testing.assert_close(split.logits(PROMPT)[-1], whole.logits(PROMPT)[-1], rtol=1e-4, atol=1e-5)
    ea.undo()
    eb.undo()
    assert torch.equal(split.values(layer).T, w0)
    assert torch.equal(split.logits(PROMPT)[-1], before)


def test_load_model_placement_arguments(tiny_lm_factory):
    base = tiny_lm_factory("llama")
    kept = fw.load_model(model=base.model, tokenizer=base.tokenizer)  # device=None keeps a given model in place
    assert kept.model is base.model and kept.device == base.device
    with pytest.raises(InputError, match="not both"):
        fw.load_model(device="cpu", device_map="auto")
    with pytest.raises(InputError, match="Unknown device"):
        fw.load_model(model=base.model, tokenizer=base.tokenizer, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="not available"):
            fw.load_model(model=base.model, tokenizer=base.tokenizer, device="cuda")


@pytest.mark.real_model
def test_default_model_split_over_cpu_and_disk(default_lm, tmp_path):
    """The README's device_map example on the real model: a third of the blocks on disk, same numbers."""
    placement = device_map_for(default_lm.model, default_lm.arch.layers, default_lm.n_layers,
                               lambda i: "disk" if i % 3 == 2 else "cpu")
    split = fw.load_model(device_map=placement, offload_folder=tmp_path)
    assert split.is_split and is_offloaded(split.blocks[2].get_submodule(split.arch.down))
    a, b = split.run(PROMPT), default_lm.run(PROMPT)
    torch.testing.assert_close(a.activations, b.activations, rtol=0, atol=0)
    torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=0)
    la, lb = fw.logit_lens(split, PROMPT, target=" Paris"), fw.logit_lens(default_lm, PROMPT, target=" Paris")
    torch.testing.assert_close(la.post.probs, lb.post.probs, rtol=0, atol=0)
    assert split.fingerprint == default_lm.fingerprint


def test_widgets_on_a_split_model_show_the_unsplit_numbers(pair):
    """A slider drag and a neuron card on the split model: the same state as on the model in one piece."""
    from ffn_widgets.widgets.neuron_card import NeuronCard
    from ffn_widgets.widgets.sliders import NeuronSliders

    whole, split = pair
    states = []
    for lm in (split, whole):
        w = NeuronSliders(lm, PROMPT, [(0, 3), (1, 7)], target=" Paris", k=4, continuation=3)
        w.send = lambda content, buffers=None: None
        assert w.dispatch({"type": "scales", "scales": [0.0, 2.5], "seq": 1})
        states.append((w.result.logits, w.continuation["tokens"]))
    torch.testing.assert_close(states[0][0], states[1][0], rtol=1e-5, atol=1e-6)
    assert states[0][1] == states[1][1]
    cards = [NeuronCard(lm, 1, 7, prompt=PROMPT).data for lm in (split, whole)]
    assert cards[0].value.top_ids == cards[1].value.top_ids
    assert cards[0].prompt_acts.tolist() == cards[1].prompt_acts.tolist()
