"""MEMIT and AlphaEdit on tiny models: each update equals its formula computed independently."""
import copy

import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.editing.log import oriented_weight
from ffn_widgets.editing.memit import MemitSettings, alphaedit_edit, memit_edit
from ffn_widgets.editing.stats import key_statistics
from ffn_widgets.model import InputError
from tests.reference_edits import plain_keys

QUICK = MemitSettings(steps=3, prefix_lengths=((4, 2),), prefix_starts=("The", "Because"), mom2_weight=50.0,
                      nullspace_threshold=None)
REQUESTS = [{"prompt": "The Eiffel Tower is located in the city of", "subject": "The Eiffel Tower", "target_new": "Rome"},
            {"prompt": "The Louvre is located in the city of", "subject": "The Louvre", "target_new": "London"}]
KW = dict(corpus="lee", tokens=512, progress=False)


@pytest.fixture
def fresh(tiny_lm_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))

    def make(family="llama"):
        base = tiny_lm_factory(family)
        return fw.load_model(model=copy.deepcopy(base.model), tokenizer=base.tokenizer)
    return make


def settings_for(C):
    """A null-space threshold that keeps the lower half of C's spectrum (tiny models have their own scale)."""
    values = torch.linalg.eigvalsh(C)
    return MemitSettings(**{**QUICK.__dict__, "nullspace_threshold": float(values[len(values) // 2])})


def grouped_key(lm, layer, texts, r):
    """compute_ks' average with QUICK's one prefix group: the bare prompt 1/2, each of the two prefixes 1/4."""
    keys = plain_keys(lm, layer, [p + r["prompt"] for p in texts], r["subject"], [len(p) for p in texts])
    assert len(keys) == 3
    return 0.5 * keys[0] + 0.25 * keys[1] + 0.25 * keys[2]


def down(lm, layer):
    return lm._weight(lm.arch.down, layer).detach().clone().double()


def plain_block_output(lm, prompt, subject, layer):
    got = {}
    h = lm.blocks[layer].register_forward_hook(lambda m, a, out: got.setdefault("z", out[0] if isinstance(out, tuple) else out))
    try:
        with torch.no_grad():
            lm.model(input_ids=lm.encode(prompt)[None])
    finally:
        h.remove()
    return got["z"][0, lm.find_subject(prompt, subject)[1] - 1].double()


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_memit_update_equals_its_formula(fresh, family):
    lm = fresh(family)
    layers = [0, 1]
    reference = fw.load_model(model=copy.deepcopy(lm.model), tokenizer=lm.tokenizer)
    before = [down(lm, layer) for layer in layers]
    b = memit_edit(lm, REQUESTS, layers, settings=QUICK, **KW)
    texts = [""] + b.prefixes
    Cs = {layer: key_statistics(reference, layer, "lee", 512, progress=False) for layer in layers}  # unedited model
    for i, layer in enumerate(layers):  # layer by layer on a plain copy, as the paper writes it
        K = torch.stack([grouped_key(reference, layer, texts, r) for r in REQUESTS])
        cur = torch.stack([plain_block_output(reference, r["prompt"], r["subject"], layers[-1]) for r in REQUESTS])
        R = (b.targets.double() - cur) / (len(layers) - i)
        C = Cs[layer]
        dW = R.T @ torch.linalg.solve(QUICK.mom2_weight * C + K.T @ K, K.T).T
        w = reference._weight(reference.arch.down, layer)
        with torch.no_grad():
            w.add_(dW.float())
        torch.testing.assert_close(down(lm, layer) - before[i], dW, rtol=2e-3, atol=2e-5 * float(dW.abs().max()))


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_alphaedit_update_equals_its_formula(fresh, family):
    """ΔW = R Kᵀ P (P(K Kᵀ + K_p K_pᵀ) + α I)⁻¹ per layer, P over C's eigenvectors below the threshold; K_p
    empty for a first edit."""
    lm = fresh(family)
    layers = [0, 1]
    reference = fw.load_model(model=copy.deepcopy(lm.model), tokenizer=lm.tokenizer)
    Cs = {layer: key_statistics(reference, layer, "lee", 512, progress=False) for layer in layers}
    settings = settings_for(Cs[0])
    before = [down(lm, layer) for layer in layers]
    a = alphaedit_edit(lm, REQUESTS, layers, settings=settings, **KW)
    texts = [""] + a.prefixes
    for i, layer in enumerate(layers):
        K = torch.stack([grouped_key(reference, layer, texts, r) for r in REQUESTS])
        cur = torch.stack([plain_block_output(reference, r["prompt"], r["subject"], layers[-1]) for r in REQUESTS])
        R = (a.targets.double() - cur) / (len(layers) - i)
        values, vectors = torch.linalg.eigh(Cs[layer].double())
        U = vectors[:, values < settings.nullspace_threshold]
        P = U @ U.T
        A = P @ (K.T @ K) + settings.l2 * torch.eye(K.shape[1], dtype=torch.float64)
        dW = R.T @ torch.linalg.solve(A, P @ K.T).T
        with torch.no_grad():
            reference._weight(reference.arch.down, layer).add_(dW.float())
        # (the projection amplifies float32 noise in the keys: a few entries in 10⁴ differ by ~1e-4 of the max)
        torch.testing.assert_close(down(lm, layer) - before[i], dW, rtol=2e-3, atol=1e-4 * float(dW.abs().max()))


def test_memit_with_one_fact_and_layer_is_rome_like(fresh):
    """(λC + kkᵀ)⁻¹k = C⁻¹k / (λ + kᵀC⁻¹k): one fact at one layer is ROME's rank-one form with λ added."""
    lm = fresh("llama")
    before = down(lm, 1)
    b = memit_edit(lm, REQUESTS[:1], [1], settings=QUICK, **KW)
    d = b.entry.deltas[0]
    assert d.left.shape == (lm.d_model, 1)
    texts = [""] + b.prefixes
    with lm.edits.original():
        k = grouped_key(lm, 1, texts, REQUESTS[0])
        r = b.targets[0].double() - plain_block_output(lm, REQUESTS[0]["prompt"], REQUESTS[0]["subject"], 1)
    u = torch.linalg.solve(key_statistics(lm, 1, "lee", 512, progress=False), k)
    expected = torch.outer(r, u) / (QUICK.mom2_weight + k @ u)
    torch.testing.assert_close(down(lm, 1) - before, expected, rtol=2e-3, atol=2e-5 * float(expected.abs().max()))


def test_memit_keys_weigh_the_bare_prompt_half():
    """MEMIT's keys: the bare prompt 1/2 and each prefix 1/10 (the reference's compute_ks), not 1/6 each."""
    from ffn_widgets.editing.memit import template_mean

    keys = torch.randn(6, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(template_mean(keys, [1, 5]), 0.5 * keys[0] + 0.1 * keys[1:].sum(0))
    assert float((template_mean(keys, [1, 5]) - keys.mean(0)).norm()) > 0.1
    with pytest.raises(ValueError):
        template_mean(keys, [1, 4])


def test_alphaedit_spares_preserved_keys_and_remembers_edits(fresh):
    lm = fresh("llama")
    C = key_statistics(lm, 1, "lee", 512, progress=False)
    settings = settings_for(C)
    values, vectors = torch.linalg.eigh(C)
    preserved = vectors[:, values >= settings.nullspace_threshold]  # the directions the layer's keys use
    before = down(lm, 1)
    a = alphaedit_edit(lm, REQUESTS[:1], [1], settings=settings, **KW)
    dW = down(lm, 1) - before
    assert float(dW.norm()) > 0
    assert float((dW @ preserved).norm()) < 1e-4 * float(dW.norm()) * preserved.shape[1] ** 0.5
    # its keys are remembered, and a second edit is projected away from them too
    K = a.entry.state["keys.1"].double()
    from ffn_widgets.editing.memit import preserved_keys
    torch.testing.assert_close(preserved_keys(lm, 1), K.T @ K)
    alphaedit_edit(lm, REQUESTS[1:], [1], settings=settings, **KW)
    a.undo()
    torch.testing.assert_close(preserved_keys(lm, 1), lm.edits[0].state["keys.1"].double().T
                               @ lm.edits[0].state["keys.1"].double())


def test_batch_undo_reset_save_load_bit_exact(fresh, tmp_path):
    lm = fresh("gpt2")
    original = [p.detach().clone() for p in lm.model.parameters()]
    memit_edit(lm, REQUESTS, [0, 1], settings=QUICK, **KW)
    edited = [p.detach().clone() for p in lm.model.parameters()]
    path = lm.edits.save(tmp_path / "batch.safetensors")
    lm.edits.undo()
    assert all(torch.equal(a, b) for a, b in zip(original, lm.model.parameters()))
    lm.edits.load(path)
    assert all(torch.equal(a, b) for a, b in zip(edited, lm.model.parameters()))
    lm.edits.reset()
    assert all(torch.equal(a, b) for a, b in zip(original, lm.model.parameters()))


def test_bad_batches_name_the_request_and_touch_nothing(fresh):
    lm = fresh("llama")
    original = [p.detach().clone() for p in lm.model.parameters()]
    with pytest.raises(InputError, match="empty"):
        memit_edit(lm, [], [1], settings=QUICK, **KW)
    with pytest.raises(InputError, match="Request 1 .*does not occur"):
        memit_edit(lm, [REQUESTS[0], {**REQUESTS[1], "subject": "The Kremlin"}], [1], settings=QUICK, **KW)
    with pytest.raises(InputError, match="Requests 0 and 1 give 'The Eiffel Tower' two targets"):
        memit_edit(lm, [REQUESTS[0], {**REQUESTS[0], "target_new": "Madrid"}], [1], settings=QUICK, **KW)
    with pytest.raises(InputError, match="Requests 0 and 2 give 'The Eiffel Tower' two targets"):
        memit_edit(lm, [{**REQUESTS[0], "relation": "city"}, REQUESTS[1],
                        {**REQUESTS[0], "prompt": "The Eiffel Tower stands in", "target_new": "Oslo", "relation": "city"}],
                   [1], settings=QUICK, **KW)
    with pytest.raises(InputError, match="layer"):
        memit_edit(lm, REQUESTS, [0, 5], settings=QUICK, **KW)
    with pytest.raises(InputError, match="method"):
        from ffn_widgets.editing.memit import batch_steps
        next(batch_steps(lm, REQUESTS, [1], method="rome"))
    assert all(torch.equal(a, b) for a, b in zip(original, lm.model.parameters()))
    assert len(lm.edits) == 0


def test_batch_report_and_method_comparison_equal_plain_measurements(fresh):
    from ffn_widgets.editing.metrics import pair_probs

    lm = fresh("llama")
    facts = [f for f in fw.load_facts() if f["relation"] == "capital_of"][:2]
    requests = [{k: f[k] for k in ("prompt", "subject", "target_new")} for f in facts]
    before_state = {k: v.clone() for k, v in lm.model.state_dict().items()}
    p_before = pair_probs(lm, [f["prompt"] for f in facts], [" " + f["target_new"] for f in facts])
    b = memit_edit(lm, requests, [0, 1], settings=QUICK, **KW)
    report = b.report()
    prompts = [r for r in report.rows if r["kind"] == "prompt"]
    assert [r["prompt"] for r in prompts] == [f["prompt"] for f in facts]
    assert len(report.rows) == sum(1 + len(f["paraphrases"]) for f in facts)
    p_after = pair_probs(lm, [f["prompt"] for f in facts], [" " + f["target_new"] for f in facts])
    assert [r["before"]["p_new"] for r in prompts] == pytest.approx(p_before.tolist(), rel=1e-4)
    assert [r["after"]["p_new"] for r in prompts] == pytest.approx(p_after.tolist(), rel=1e-4)
    b.undo()
    rome_quick = fw.RomeSettings(steps=2, prefix_lengths=((3, 2),))
    cmp = fw.compare_methods(lm, facts, ["memit", "r-rome"], layer=1, n_unrelated=3,
                             settings={"memit": QUICK, "r-rome": rome_quick}, **KW)
    memit_row, rome_row = cmp.rows
    assert all(torch.equal(v, before_state[k]) for k, v in lm.model.state_dict().items())  # left as found
    # MEMIT's row is the same batch written again (layers 0–1 for layer=1 with a 2-layer model's range)
    b = memit_edit(lm, requests, [0, 1], settings=QUICK, **KW)
    wins = pair_probs(lm, [f["prompt"] for f in facts] * 2, [" " + f["target_new"] for f in facts]
                      + [" " + f["target_true"] for f in facts])
    assert memit_row["efficacy"] == pytest.approx(float((wins[:2] > wins[2:]).float().mean()))
    assert rome_row["facts"] == 2 and set(cmp.to_frame().index) == {"memit", "r-rome"}
    b.undo()
    # r-ROME's row: its own settings (each method gets its entry of the dict), the facts one after another
    with lm.edits.temporary():
        for f in facts:
            fw.rome_edit(lm, f["prompt"], f["subject"], f["target_new"], 1, settings=rome_quick, **KW)
        (path,) = {d.path for e in lm.edits for d in e.deltas}
        growth = float(oriented_weight(lm.model.get_submodule(path)).double().norm()
                       / lm.edits.originals[path].double().norm())
        wins = pair_probs(lm, [f["prompt"] for f in facts] * 2, [" " + f["target_new"] for f in facts]
                          + [" " + f["target_true"] for f in facts])
    assert rome_row["efficacy"] == pytest.approx(float((wins[:2] > wins[2:]).float().mean()))
    assert rome_row["norm_ratio"] == pytest.approx(growth, rel=1e-9)
    with pytest.raises(fw.InputError, match="not editing methods"):
        fw.compare_methods(lm, facts, ["memit"], settings={"memit": QUICK, "romе": rome_quick})  # a Cyrillic е
    with pytest.raises(fw.InputError, match="methods must be"):
        fw.compare_methods(lm, facts, ["sgd"])
