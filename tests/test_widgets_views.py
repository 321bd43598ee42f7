"""Explorer, ActivationHeatmap, LogitLens, NeuronList: payloads checked against plain-torch recomputations
from the weights (own hooks on the HF modules, not the hook core), and gestures called directly."""
import numpy as np
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.analysis.values import value_top_ids
from ffn_widgets.widgets import unpack
from ffn_widgets.widgets.serialize import nbytes

PROMPT = "The Eiffel Tower is located in the city of"


def manual(lm, prompt):
    """Neuron activations and MLP outputs of a plain HF forward, with our own hooks (not the hook core)."""
    layers = lm.model.model.layers
    acts, mlp_out, handles = {}, {}, []
    for i, block in enumerate(layers):
        handles.append(block.mlp.down_proj.register_forward_pre_hook(lambda m, a, i=i: acts.__setitem__(i, a[0][0])))
        handles.append(block.mlp.register_forward_hook(lambda m, a, o, i=i: mlp_out.__setitem__(i, o[0])))
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
    try:
        with torch.no_grad():
            out = lm.model(input_ids=ids)
    finally:
        for h in handles:
            h.remove()
    L = len(layers)
    return {"acts": torch.stack([acts[i] for i in range(L)]), "mlp_out": torch.stack([mlp_out[i] for i in range(L)]),
            "logits": out.logits[0], "ids": ids[0]}


@torch.no_grad()
def final_direction(lm, resid_raw, target):
    """d_t with contribution(x) = x·d_t: W_U[target] · gain / rms(final raw residual) (RMSNorm, eps from config)."""
    norm = lm.model.model.norm
    rms = torch.sqrt(resid_raw.pow(2).mean(-1) + norm.variance_epsilon)  # [T]
    return lm.model.lm_head.weight[target][None, :] * norm.weight[None, :] / rms[:, None]


@pytest.fixture(scope="module")
def explorer(tiny_lm):
    return fw.Explorer(tiny_lm, PROMPT, target=" Paris", k=5)


def raw_final_residual(lm, prompt):
    """The residual stream after the last block, from a hook on the last block's output."""
    return raw_layer_output(lm, prompt, len(lm.model.model.layers) - 1)


def test_heatmap_grids_match_a_plain_forward(explorer, tiny_lm):
    ref = manual(tiny_lm, PROMPT)
    data = explorer.data
    assert data["tokens"] == [tiny_lm.tokenizer.decode([int(i)]) for i in ref["ids"]]
    max_act = unpack(data["grids"]["max_act"])
    np.testing.assert_allclose(max_act, ref["acts"].abs().amax(-1).numpy(), rtol=2e-3, atol=1e-4)
    paris = tiny_lm.tokenizer(" Paris", add_special_tokens=False)["input_ids"][0]
    assert data["target"] == {"id": paris, "text": " Paris"}
    d = final_direction(tiny_lm, raw_final_residual(tiny_lm, PROMPT), paris)  # [T, d_model]
    expected = torch.einsum("ltd,td->lt", ref["mlp_out"], d)
    np.testing.assert_allclose(unpack(data["grids"]["contrib"]), expected.numpy(), rtol=5e-3, atol=2e-3)
    # 2 bytes per statistic: the heatmap costs 4 bytes per cell
    assert nbytes(data["grids"]) == 4 * tiny_lm.n_layers * len(data["tokens"])


def test_top_neuron_tables_match_manual_rankings(explorer, tiny_lm):
    ref = manual(tiny_lm, PROMPT)
    paris = explorer.data["target"]["id"]
    d = final_direction(tiny_lm, raw_final_residual(tiny_lm, PROMPT), paris)
    top = explorer.data["top"]
    for layer in range(tiny_lm.n_layers):
        V = tiny_lm.model.model.layers[layer].mlp.down_proj.weight  # [d_model, d_mlp]: column i = value i
        with torch.no_grad():
            contrib = ref["acts"][layer] * (d @ V)  # [T, d_mlp]
        for by, score in (("activation", ref["acts"][layer].abs()), ("contribution", contrib)):
            ids = unpack(top[by]["ids"])[layer]
            want = score.topk(5, dim=-1).indices.numpy()
            np.testing.assert_array_equal(ids, want)
            np.testing.assert_allclose(unpack(top[by]["act"])[layer],
                                       np.take_along_axis(ref["acts"][layer].numpy(), want, -1), rtol=2e-3, atol=1e-4)
            np.testing.assert_allclose(unpack(top[by]["contrib"])[layer],
                                       np.take_along_axis(contrib.numpy(), want, -1), rtol=5e-3, atol=1e-4)


def test_value_tokens_and_vocab_match_the_unembedding(explorer, tiny_lm):
    vals = explorer.values
    pairs, tops = unpack(vals["neurons"]), unpack(vals["top"])
    gain = tiny_lm.model.model.norm.weight
    vocab = dict(zip(unpack(vals["vocab"]["ids"]).tolist(), vals["vocab"]["text"]))
    seen = {(int(l), int(n)) for l, n in pairs}
    for by in ("activation", "contribution"):
        ids = unpack(explorer.data["top"][by]["ids"])
        assert {(l, int(n)) for l in range(ids.shape[0]) for n in ids[l].flatten()} <= seen
    for (layer, neuron), top in list(zip(pairs, tops))[::7]:
        v = tiny_lm.model.model.layers[layer].mlp.down_proj.weight[:, neuron]
        with torch.no_grad():
            want = (tiny_lm.model.lm_head.weight @ (gain * v)).topk(tops.shape[1]).indices.numpy()
        np.testing.assert_array_equal(top, want)
        assert [vocab[int(t)] for t in top] == [tiny_lm.tokenizer.decode([int(t)]) for t in want]


def test_lens_matches_the_model_and_hidden_states(explorer, tiny_lm):
    ref = manual(tiny_lm, PROMPT)
    lens = explorer.data["lens"]["post"]
    probs = unpack(lens["prob"]).astype(np.float32)
    paris = explorer.data["target"]["id"]
    final = torch.softmax(ref["logits"], -1)
    np.testing.assert_allclose(probs[-1], final[:, paris].numpy(), rtol=2e-3, atol=1e-7)
    assert (unpack(lens["top"])[-1] == final.argmax(-1).numpy()).all()
    ranks = unpack(lens["rank"])[-1]
    assert (ranks == (ref["logits"] > ref["logits"][:, paris:paris + 1]).sum(-1).numpy()).all()
    # layer 0 through the final norm and unembedding
    h0 = raw_layer_output(tiny_lm, PROMPT, 0)
    with torch.no_grad():
        p0 = torch.softmax(tiny_lm.model.lm_head(tiny_lm.model.model.norm(h0)), -1)
    np.testing.assert_allclose(probs[0], p0[:, paris].numpy(), rtol=2e-3, atol=1e-7)
    vocab = dict(zip(unpack(explorer.data["vocab"]["ids"]).tolist(), explorer.data["vocab"]["text"]))
    assert all(int(i) in vocab for i in unpack(lens["top"]).flatten())


def raw_layer_output(lm, prompt, layer):
    got = {}
    h = lm.model.model.layers[layer].register_forward_hook(lambda m, a, o: got.__setitem__("x", (o[0] if isinstance(o, tuple) else o)[0]))
    try:
        with torch.no_grad():
            lm.model(input_ids=lm.tokenizer(prompt, return_tensors="pt")["input_ids"])
    finally:
        h.remove()
    return got["x"]


def test_prompt_target_and_neuron_gestures(tiny_lm):
    ex = fw.Explorer(tiny_lm, "Hello world", k=3)
    top1 = int(torch.softmax(tiny_lm.logits("Hello world")[-1], -1).argmax())
    assert ex.data["target"]["id"] == top1 and ex.target == ""
    assert ex.dispatch({"type": "set_prompt", "prompt": PROMPT, "_ack": 1})
    assert ex.data["prompt"] == PROMPT and len(ex.data["tokens"]) == len(tiny_lm.encode(PROMPT))
    assert ex.progress == {}
    before = ex.data
    assert not ex.dispatch({"type": "set_prompt", "prompt": "   "})
    assert "prompt is empty" in ex.error and ex.data is before  # the old picture stays
    assert ex.prompt == PROMPT  # and the prompt goes back to the one it shows
    assert ex.dispatch({"type": "set_target", "target": " Rome"})
    assert ex.data["target"]["text"] == " Rome" and ex.error == ""
    assert not ex.dispatch({"type": "set_target", "target": 12345678})
    assert "target token id must be in" in ex.error and ex.target == " Rome"
    picked = []
    ex.on_neuron_selected(lambda layer, neuron: picked.append((layer, neuron)))
    assert ex.dispatch({"type": "select_neuron", "layer": 1, "neuron": 17})
    assert picked == [(1, 17)] and ex.stat == "neuron"
    np.testing.assert_allclose(unpack(ex.neuron["acts"]), ex.run.activations[1, :, 17].numpy())
    assert not ex.dispatch({"type": "select_neuron", "layer": 9, "neuron": 0})
    assert "layer must be an integer in 0..1" in ex.error and picked == [(1, 17)]
    ex.on_neuron_selected(lambda layer, neuron: 1 / 0)
    assert not ex.dispatch({"type": "select_neuron", "layer": 0, "neuron": 3})
    assert ex.error.startswith("ZeroDivisionError")
    # the selected neuron follows a new prompt
    ex.prompt = "Another prompt entirely"
    assert len(unpack(ex.neuron["acts"])) == len(tiny_lm.encode("Another prompt entirely"))


def test_a_new_prompt_moves_the_selection_to_its_last_token(tiny_lm):
    ex = fw.Explorer(tiny_lm, PROMPT, k=3)
    assert ex.dispatch({"type": "set_prompt", "prompt": "Hello world"})
    assert ex.cell == {}  # nothing was selected: nothing is
    ex.cell = {"layer": 1, "token": 0}
    assert ex.dispatch({"type": "set_prompt", "prompt": PROMPT})
    last = len(tiny_lm.encode(PROMPT)) - 1
    assert ex.cell == {"layer": 1, "token": last}  # where the next-token prediction is read
    ranking = ex.top_neurons()
    assert ranking.neurons == fw.top_neurons(tiny_lm, PROMPT, 1, last, k=3, by=ex.rank_by).neurons
    ex.cell = {"layer": 0, "token": 2}
    assert ex.dispatch({"type": "set_target", "target": " Rome"})
    assert ex.cell == {"layer": 0, "token": 2}  # same tokens: the selection stays
    assert not ex.dispatch({"type": "set_prompt", "prompt": "   "})
    assert ex.cell == {"layer": 0, "token": 2}  # a failed prompt changes nothing
    assert ex.dispatch({"type": "set_prompt", "prompt": "Hello world"})
    assert ex.cell == {"layer": 0, "token": len(tiny_lm.encode("Hello world")) - 1}


def test_explorer_slot_and_exports(tiny_lm):
    ex = fw.Explorer(tiny_lm, PROMPT, k=3)
    lens = fw.LogitLens(tiny_lm, PROMPT, target=" Paris", stage="mid", value="rank")
    ex.show(lens, "Lens on its own")
    assert ex.shown is lens and ex.slot_title == "Lens on its own"
    with pytest.raises(fw.InputError, match="takes a widget"):
        ex.show("not a widget")
    ex.show(None)
    assert ex.shown is None
    fig = ex.figure("contrib")
    z = np.array(fig.data[0].z, dtype=float)
    np.testing.assert_allclose(z, unpack(ex.data["grids"]["contrib"]), rtol=5e-3, atol=2e-3)
    assert "lens" not in fw.ActivationHeatmap(tiny_lm, PROMPT).data
    assert "top" not in lens.data and lens.values == {}
    assert lens.figure().data[0].type == "heatmap"
    with pytest.raises(fw.InputError, match="stage"):
        fw.LogitLens(tiny_lm, PROMPT, stage="after")
    with pytest.raises(fw.InputError, match="prompt is empty"):
        fw.Explorer(tiny_lm, "")


def test_neuron_list_rows_equal_top_neurons(tiny_lm):
    nl = fw.NeuronList(tiny_lm, PROMPT, layer=1, position=3, by="contribution", target=" Paris", k=4)
    ref = fw.top_neurons(tiny_lm, PROMPT, 1, 3, k=4, by="contribution", target=" Paris")
    assert unpack(nl.rows["neurons"]).tolist() == ref.neurons
    np.testing.assert_allclose(unpack(nl.rows["contrib"]), ref.contributions, rtol=1e-6)
    assert nl.rows["value_top"] == ref.value_top and nl.rows["target"] == " Paris"
    assert nl.dispatch({"type": "set_by", "by": "activation"})
    assert unpack(nl.rows["neurons"]).tolist() == fw.top_neurons(tiny_lm, PROMPT, 1, 3, k=4, target=" Paris").neurons
    assert not nl.dispatch({"type": "set_by", "by": "size"}) and "by must be" in nl.error
    picked = []
    nl.on_neuron_selected(lambda *a: picked.append(a))
    assert nl.dispatch({"type": "select_neuron", "layer": 1, "neuron": 5}) and picked == [(1, 5)]
    assert nl.figure().data and len(nl.to_frame()) == 4


def test_value_token_cache_follows_weight_edits(tokenizer):
    import transformers as T
    from conftest import tiny_config

    torch.manual_seed(3)
    lm = fw.load_model(model=T.AutoModelForCausalLM.from_config(tiny_config("llama")), tokenizer=tokenizer)
    first = value_top_ids(lm, 0, [1, 2, 3])
    down = lm.model.model.layers[0].mlp.down_proj.weight
    with torch.no_grad():
        down[:, 2] = -down[:, 2]  # in place: bumps the version counter
    second = value_top_ids(lm, 0, [1, 2, 3])
    assert torch.equal(first[[0, 2]], second[[0, 2]]) and not torch.equal(first[1], second[1])
    with torch.no_grad():
        want = (lm.model.lm_head.weight @ (lm.model.model.norm.weight * down[:, 2])).topk(3).indices
    assert torch.equal(second[1], want)
