"""ROME on tiny models of every family: the update equals ROME's formulas computed independently (plain
unpadded forwards with a hook of the test's own), and the optimiser's loss equals a straightforward one."""
import copy

import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.editing.rome import RomeSettings, rome_edit
from ffn_widgets.editing.stats import corpus_texts, key_statistics
from ffn_widgets.model import InputError
from tests.conftest import FAMILIES
from tests.reference_edits import plain_keys

PROMPT, SUBJECT, TARGET = "The Eiffel Tower is located in the city of", "The Eiffel Tower", " Rome, Italy"
QUICK = RomeSettings(steps=4, prefix_lengths=((3, 2), (4, 1)))
TOKENS = 512


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture
def fresh(tiny_lm_factory):
    """``fresh(family)``: an LM on a private copy of the tiny model (edits never leak between tests)."""
    def make(family="llama"):
        base = tiny_lm_factory(family)
        return fw.load_model(model=copy.deepcopy(base.model), tokenizer=base.tokenizer)
    return make


def down_weight(lm, layer):
    return lm._weight(lm.arch.down, layer).detach().clone()


def plain_moment(lm, layer, corpus, tokens):
    ids = corpus_texts(lm, corpus, tokens)
    down = lm.site_module("neurons", layer)
    acc = torch.zeros(lm.d_mlp, lm.d_mlp, dtype=torch.float64)
    def add(module, args):
        k = args[0].reshape(-1, lm.d_mlp).double()
        acc.add_(k.T @ k)
    h = down.register_forward_pre_hook(add)
    try:
        with torch.no_grad():
            for row in ids:
                lm.model(input_ids=row[None])
    finally:
        h.remove()
    return acc / ids.numel()


def plain_loss(lm, e, settings):
    """ROME's loss at ``e.delta``, one unpadded forward per prompt with δ added by the test's own hook."""
    target_ids = lm.target_ids(e.target)
    down = lm.site_module("neurons", e.layer)
    texts = [""] + e.prefixes

    def run(ids, spot, delta):
        def add(m, a, out):
            x = out.reshape(1, len(ids), -1).clone()
            x[0, spot] += delta
            return x.reshape(out.shape)
        h = down.register_forward_hook(add)
        try:
            with torch.no_grad():
                return torch.log_softmax(lm.model(input_ids=ids[None]).logits[0].double(), -1)
        finally:
            h.remove()

    nlls = []
    for p in texts:
        ctx = lm.encode(p + e.prompt)
        ids = torch.cat([ctx, torch.as_tensor(target_ids[:-1], dtype=ctx.dtype)])
        spot = lm.find_subject(p + e.prompt, e.subject, len(p))[1] - 1
        logp = run(ids, spot, e.delta)
        nlls.append(-torch.stack([logp[len(ctx) - 1 + j, t] for j, t in enumerate(target_ids)]).mean())
    kl_text = settings.kl_prompt.format(e.subject)
    kl_ids, kl_spot = lm.encode(kl_text), lm.find_subject(kl_text, e.subject)[1] - 1
    before, after = run(kl_ids, kl_spot, torch.zeros_like(e.delta))[kl_spot], run(kl_ids, kl_spot, e.delta)[kl_spot]
    kl = settings.kl_factor * (after.exp() * (after - before)).sum()  # KL(edited ‖ original)
    decay = settings.weight_decay * e.delta.norm() / e.value_norm ** 2
    return float(torch.stack(nlls).mean() + kl + decay)


@pytest.mark.parametrize("family", FAMILIES)
def test_update_equals_rome_formulas(fresh, cache, family):
    lm = fresh(family)
    layer = 1
    corpus = fw.load_corpus("lee")
    w0 = down_weight(lm, layer)
    e = rome_edit(lm, PROMPT, SUBJECT, TARGET, layer, corpus=corpus, tokens=TOKENS, settings=QUICK, progress=False)
    dw = (down_weight(lm, layer) - w0).double()

    texts = [""] + e.prefixes
    keys = plain_keys(lm, layer, [p + PROMPT for p in texts], SUBJECT, [len(p) for p in texts])
    torch.testing.assert_close(e.key.double(), keys.mean(0), rtol=1e-4, atol=1e-5)
    C = key_statistics(lm, layer, corpus, TOKENS, progress=False)
    torch.testing.assert_close(C, plain_moment(lm, layer, corpus, TOKENS), rtol=1e-6, atol=1e-7)
    u = torch.linalg.solve(C, keys.mean(0))  # C as cached: float32 batch products lose digits C⁻¹ amplifies
    # r-ROME: k* in the numerator and the denominator: (v* − W k*) = δ + W (k(prompt) − k*)
    numerator = e.delta.double() + w0.double() @ (keys[0] - keys.mean(0))
    expected = torch.outer(numerator, u) / (keys.mean(0) @ u)
    torch.testing.assert_close(dw, expected, rtol=2e-3, atol=2e-5 * float(expected.abs().max()))
    # the loss the optimiser reported for its final δ equals a straightforward computation (unedited weights)
    with lm.edits.original():
        assert e.loss_curve[-1]["loss"] == pytest.approx(plain_loss(lm, e, QUICK), rel=1e-4, abs=1e-5)


def test_rome_and_r_rome_write_their_own_key(fresh, cache):
    """Each method maps its own key to v* = v + δ: ROME the bare prompt's key, r-ROME the prefix average k̄*
    (W′k̄* + b = v*, to 1e-4 of ‖v* − W k̄*‖; the numerator δ alone missed it by 18% on the default model)."""
    corpus = fw.load_corpus("lee")
    for method in ("rome", "r-rome"):
        lm = fresh("gpt2")  # Conv1D: the transposed orientation
        w0 = down_weight(lm, 1).double()
        e = rome_edit(lm, PROMPT, SUBJECT, TARGET, 1, method=method, corpus=corpus, tokens=TOKENS,
                      settings=QUICK, progress=False)
        k = (e.key_prompt if method == "rome" else e.key).double()
        v_star = w0 @ e.key_prompt.double() + e.delta.double()  # (the bias is on both sides)
        missed = down_weight(lm, 1).double() @ k - v_star
        assert float(missed.norm()) <= 1e-4 * float((v_star - w0 @ k).norm())
        if method == "r-rome":  # and the update is not ROME's numerator with another denominator
            assert float((e.key - e.key_prompt).norm()) > 0.05 * float(e.key.norm())


def test_kl_term_is_kl_of_edited_from_original(fresh):
    """One step by hand: the KL part of the loss is Σ p_edited (log p_edited − log p_original) on the KL
    prompt, ROME's eq. 4, and not the reverse direction (which differs here by far more than the tolerance)."""
    from ffn_widgets.editing.rome import ValueOptimiser

    lm = fresh("llama")
    with torch.no_grad():  # a random model's next-token distribution is nearly flat, where both directions agree
        lm.unembed_module.weight.mul_(30)
    o = ValueOptimiser(lm, [PROMPT], [0], SUBJECT, lm.target_ids(TARGET), 1, RomeSettings())
    delta = 3 * torch.randn(lm.d_model, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        o.delta.copy_(delta)
    _, parts = o.loss()
    text = RomeSettings().kl_prompt.format(SUBJECT)
    spot = lm.find_subject(text, SUBJECT)[1] - 1
    down = lm.site_module("neurons", 1)

    def logp(add):
        def hook(m, a, out):
            out = out.clone()
            out[0, spot] += add
            return out
        h = down.register_forward_hook(hook)
        try:
            with torch.no_grad():
                return torch.log_softmax(lm.model(input_ids=lm.encode(text)[None]).logits[0, spot].double(), -1)
        finally:
            h.remove()
    original, edited = logp(torch.zeros_like(delta)), logp(delta)
    forward = 0.0625 * float((edited.exp() * (edited - original)).sum())
    reverse = 0.0625 * float((original.exp() * (original - edited)).sum())
    assert parts["kl"] == pytest.approx(forward, rel=1e-4)
    assert abs(forward - reverse) > 0.05 * forward


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt", "gemma2"])
def test_reusing_states_gives_the_same_loss_and_gradient(fresh, family):
    """Running only the columns after the subject and the blocks from the edit layer (cached states below)
    gives the loss and gradient of running everything, at any δ."""
    from ffn_widgets.editing.rome import ValueOptimiser

    lm = fresh(family)
    prefixes = ["", "Hello there. ", "A much longer prefix of words. "]
    delta = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
    got = []
    for reuse in (True, False):
        o = ValueOptimiser(lm, [p + PROMPT for p in prefixes], [len(p) for p in prefixes], SUBJECT,
                           lm.target_ids(TARGET), 1, RomeSettings(), reuse)
        with torch.no_grad():
            o.delta.copy_(delta)
        total, parts = o.loss()
        got.append((parts, torch.autograd.grad(total, [o.delta])[0]))
    (a, ga), (b, gb) = got
    for key in ("nll", "kl", "decay"):
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7)
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)


def test_prefixes_are_seeded_and_stored(fresh, cache):
    lm = fresh("llama")
    kw = dict(corpus=fw.load_corpus("lee"), tokens=TOKENS, settings=QUICK, progress=False)
    a = rome_edit(lm, PROMPT, SUBJECT, TARGET, 1, seed=3, **kw)
    b = rome_edit(lm, PROMPT, SUBJECT, TARGET, 1, seed=3, **kw)  # a second edit: same prefixes for the seed
    assert a.prefixes == b.prefixes and len(a.prefixes) == 3 and all(p.endswith(". ") for p in a.prefixes)
    lm.edits.reset()
    c = rome_edit(lm, PROMPT, SUBJECT, TARGET, 1, prefixes=a.prefixes, seed=99, **kw)  # replay by prefixes
    torch.testing.assert_close(c.delta, a.delta)


def test_bad_requests_leave_weights_untouched(fresh, cache):
    lm = fresh("llama")
    before = [p.detach().clone() for p in lm.model.parameters()]
    kw = dict(corpus=fw.load_corpus("lee"), tokens=TOKENS, settings=QUICK, progress=False)
    with pytest.raises(InputError, match="does not occur"):
        rome_edit(lm, PROMPT, "The Louvre", TARGET, 1, **kw)
    with pytest.raises(InputError, match="empty"):
        rome_edit(lm, PROMPT, SUBJECT, "  ", 1, **kw)
    with pytest.raises(InputError, match="layer"):
        rome_edit(lm, PROMPT, SUBJECT, TARGET, 7, **kw)
    with pytest.raises(InputError, match="method"):
        rome_edit(lm, PROMPT, SUBJECT, TARGET, 1, method="memit", **kw)
    with pytest.raises(InputError, match="empty"):
        rome_edit(lm, "", SUBJECT, TARGET, 1, **kw)
    own = lm.token_strings([int(lm.logits(PROMPT)[-1].argmax())])[0]
    with pytest.raises(InputError, match="already continues"):
        rome_edit(lm, PROMPT, SUBJECT, own, 1, **kw)
    half = fw.load_model(model=copy.deepcopy(lm.model).to(torch.bfloat16), tokenizer=lm.tokenizer)
    with pytest.raises(InputError, match="float32"):
        rome_edit(half, PROMPT, SUBJECT, TARGET, 1, **kw)
    assert all(torch.equal(a, b) for a, b in zip(before, lm.model.parameters()))
    assert len(lm.edits) == 0


def test_interruption_mid_edit_leaves_weights_untouched(fresh, cache):
    """Ctrl-C during the optimisation (a KeyboardInterrupt from inside the model) and a cancelled step
    generator both leave every weight as it was."""
    from ffn_widgets.editing.rome import rome_steps

    lm = fresh("llama")
    before = [p.detach().clone() for p in lm.model.parameters()]
    kw = dict(corpus=fw.load_corpus("lee"), tokens=TOKENS, settings=QUICK)
    calls = []

    def interrupt(module, args, out):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
    h = lm.blocks[1].register_forward_hook(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            rome_edit(lm, PROMPT, SUBJECT, TARGET, 1, progress=False, **kw)
    finally:
        h.remove()
    steps = rome_steps(lm, PROMPT, SUBJECT, TARGET, 1, **kw)
    for event in steps:
        if event["stage"] == "optimise":
            steps.close()  # what the editor's Cancel does
            break
    assert all(torch.equal(a, b) for a, b in zip(before, lm.model.parameters()))
    assert len(lm.edits) == 0


def test_corrupt_statistics_cache_is_recomputed(fresh, cache):
    lm = fresh("llama")
    corpus = fw.load_corpus("lee")
    C = key_statistics(lm, 1, corpus, TOKENS, progress=False)
    (path,) = (cache / "key_stats").glob("*-L1.safetensors")
    path.write_bytes(path.read_bytes()[:-100] + b"\0" * 100)
    with pytest.warns(UserWarning, match="damaged"):
        again = key_statistics(lm, 1, corpus, TOKENS, progress=False)
    assert torch.equal(C, again)


def test_statistics_resume_after_interruption(fresh, cache):
    """A pass stopped between batches leaves a checkpoint; the next call resumes it to the same C."""
    from ffn_widgets.editing.stats import KeyMoments

    lm = fresh("llama")
    corpus = fw.load_corpus("lee")
    tokens = 256 * 20
    whole = KeyMoments(lm, [0, 1], corpus, tokens)
    list(whole.steps())
    for p in whole.paths.values():
        p.unlink()
    part = KeyMoments(lm, [0, 1], corpus, tokens, checkpoint_seconds=0.0)
    steps = part.steps()
    next(steps)
    next(steps)
    steps.close()  # stopped after two batches (GeneratorExit is handled like Ctrl-C)
    assert part.partial.exists()
    resumed = KeyMoments(lm, [0, 1], corpus, tokens)
    n_batches = -(-(-(-tokens // whole.width)) // 8)
    assert n_batches > 3 and len(list(resumed.steps())) == n_batches - 2  # the two done are not redone
    for layer in (0, 1):
        torch.testing.assert_close(resumed.result[layer], whole.result[layer], rtol=1e-12, atol=1e-12)
