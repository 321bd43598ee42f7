"""The edit log: undo and reset restore weights bit for bit, a saved log replays to identical weights,
and every cache that depends on weights is fresh after an edit."""
import copy
import hashlib

import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.editing.log import LogEntry, WeightDelta
from ffn_widgets.editing.rome import RomeSettings, rome_edit
from ffn_widgets.model import InputError

QUICK = RomeSettings(steps=3, prefix_lengths=((3, 2),))
FACTS = [("The Eiffel Tower is located in the city of", "The Eiffel Tower", " Rome"),
         ("The Louvre is located in the city of", "The Louvre", " London"),
         ("The Kremlin is located in the city of", "The Kremlin", " Madrid")]


@pytest.fixture
def lm(tiny_lm_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))
    base = tiny_lm_factory("gpt2")  # Conv1D: the transposed orientation
    return fw.load_model(model=copy.deepcopy(base.model), tokenizer=base.tokenizer)


def weights_hash(lm) -> str:
    h = hashlib.sha256()
    for name, p in lm.model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().contiguous().view(torch.uint8).reshape(-1).numpy().tobytes())
    return h.hexdigest()


def edit(lm, i, layer=1):
    prompt, subject, target = FACTS[i]
    return rome_edit(lm, prompt, subject, target, layer, corpus="lee", tokens=512, settings=QUICK, progress=False)


def random_entry(lm, layer, seed, rank=1):
    """A log entry of a random low-rank change (no optimisation: log mechanics only)."""
    g = torch.Generator().manual_seed(seed)
    path = f"{lm.arch.layers}.{layer}.{lm.arch.down}"
    delta = WeightDelta(path, torch.randn(lm.d_model, rank, generator=g), torch.randn(rank, lm.d_mlp, generator=g))
    return LogEntry("test", [{"subject": f"s{seed}", "target": "t"}], [layer], [delta])


def test_undo_and_reset_are_bit_exact(lm):
    original = weights_hash(lm)
    states = [original]
    for i in range(3):
        edit(lm, i, layer=i % 2)
        states.append(weights_hash(lm))
    assert len(set(states)) == 4 and len(lm.edits) == 3
    lm.edits.undo()
    assert weights_hash(lm) == states[2]
    lm.edits.undo()
    assert weights_hash(lm) == states[1]
    edit(lm, 2)
    lm.edits.reset()
    assert weights_hash(lm) == original and len(lm.edits) == 0


def test_undo_any_one_keeps_the_others_in_order(lm):
    a, b, c = (lm.edits.apply(random_entry(lm, layer, seed)) for layer, seed in ((1, 0), (0, 1), (1, 2)))
    lm.edits.undo(b)
    assert lm.edits.entries == [a, c]
    undone = [p.detach().clone() for p in lm.model.parameters()]
    # independently: the original weights plus a's and c's changes, applied in order
    lm.edits.reset()
    fresh = copy.deepcopy(lm.model)
    for entry in (a, c):
        for d in entry.deltas:
            w = fresh.get_submodule(d.path).weight  # Conv1D: [in, out]
            with torch.no_grad():
                w.add_((d.left @ d.right).T)
    for (name, q), p in zip(fresh.named_parameters(), undone):
        assert torch.equal(p, q), name


def test_undo_of_an_edit_object_and_context_manager(lm):
    original = weights_hash(lm)
    e = edit(lm, 0)
    e.undo()
    assert weights_hash(lm) == original and not e.applied
    with edit(lm, 1) as e:
        assert e.applied and weights_hash(lm) != original
    assert weights_hash(lm) == original
    with pytest.raises(RuntimeError, match="boom"):
        with lm.edits.temporary():
            edit(lm, 2)
            raise RuntimeError("boom")
    assert weights_hash(lm) == original and len(lm.edits) == 0
    with pytest.raises(InputError, match="no edit to undo"):
        lm.edits.undo()


def test_saved_log_replays_to_identical_weights(lm, tmp_path):
    original = weights_hash(lm)
    edit(lm, 0)
    edit(lm, 1, layer=0)
    edited = weights_hash(lm)
    path = lm.edits.save(tmp_path / "edits.safetensors")
    lm.edits.reset()
    other = fw.load_model(model=copy.deepcopy(lm.model), tokenizer=lm.tokenizer)  # a new process's model
    other.edits.load(path)
    assert weights_hash(other) == edited and len(other.edits) == 2
    assert [e.facts[0]["subject"] for e in other.edits] == ["The Eiffel Tower", "The Louvre"]
    other.edits.undo()
    other.edits.undo()
    assert weights_hash(other) == original


def test_log_of_another_model_is_refused(lm, tmp_path):
    edit(lm, 0)
    path = lm.edits.save(tmp_path / "edits.safetensors")
    lm.edits.reset()
    stranger = fw.load_model(model=copy.deepcopy(lm.model), tokenizer=lm.tokenizer)  # same shapes, other weights
    with torch.no_grad():
        stranger.model.transformer.wte.weight[0, 0] += 1e-3
    before = weights_hash(stranger)
    with pytest.raises(InputError, match="other weights"):
        stranger.edits.load(path)
    assert weights_hash(stranger) == before
    (tmp_path / "junk.safetensors").write_bytes(b"not a log")
    with pytest.raises(InputError, match="not a readable edit log"):
        lm.edits.load(tmp_path / "junk.safetensors")


def test_writes_outside_the_log_are_detected(lm):
    lm.edits.apply(random_entry(lm, 1, 0))
    with torch.no_grad():
        lm.model.get_submodule(lm.edits[0].deltas[0].path).weight.data[0, 0] += 1
    with pytest.raises(InputError, match="outside the edit log"):
        lm.edits.undo()
    lm.edits.forget()
    assert len(lm.edits) == 0


def test_a_failed_write_restores_the_weights(lm):
    original = weights_hash(lm)
    good = random_entry(lm, 1, 0)
    bad = random_entry(lm, 0, 1)
    bad.deltas.append(WeightDelta(good.deltas[0].path, torch.ones(3, 1), torch.ones(1, 3)))  # wrong shape
    with pytest.raises(RuntimeError):
        lm.edits.apply(bad)
    assert weights_hash(lm) == original and len(lm.edits) == 0


def test_caches_are_fresh_after_an_edit(lm):
    """The lens and the memoised value projections after an edit equal a fresh computation."""
    prompt = FACTS[0][0]
    lens_before = fw.logit_lens(lm, prompt, target=" Rome")
    values_before = fw.value_tokens(lm, 1, 3, k=5)
    version = lm.weights_version
    edit(lm, 0)
    assert lm.weights_version != version
    lens_after = fw.logit_lens(lm, prompt, target=" Rome")
    with torch.no_grad():
        plain = torch.softmax(lm.model(input_ids=lm.encode(prompt)[None]).logits[0].float(), -1)
    tid = lm.target_ids(" Rome")[0]
    torch.testing.assert_close(lens_after.probs[-1], plain[:, tid], rtol=1e-4, atol=1e-7)
    assert not torch.allclose(lens_after.probs[-1], lens_before.probs[-1])
    fresh = fw.load_model(model=copy.deepcopy(lm.model), tokenizer=lm.tokenizer)
    after = fw.value_tokens(lm, 1, 3, k=5).top
    assert after == fw.value_tokens(fresh, 1, 3, k=5).top
    assert after != values_before.top  # the rank-one change moves every value vector a little

