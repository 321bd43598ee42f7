"""The same analyses on a GPU and on the CPU give the same numbers (issue 14).

Marked ``gpu`` and skipped unless the device is there. One model of the default model's shape with random
(seeded) weights and perturbed norms; the same weights on the CPU and on the device. Each check runs on both —
each with its own cache folder, so nothing one computes is read back by the other — and the results must agree
within float tolerance; integer results (rankings, trigger positions, histogram counts) must be equal except
where the CPU's own values are a near-tie.

``FFN_TEST_DEVICE`` names the device compared with the CPU (default ``cuda``; ``cpu`` runs the checks here,
which tests the test code itself); ``FFN_TEST_CONFIG`` a config.json other than the default model's shape
(``benchmarks/configs/tiny-llama.json`` for a quick run). The tokenizer is the default model's, or the folder
in ``FFN_BENCH_TOKENIZER`` (see ``benchmarks/common.py``; ``benchmarks/gpu_check.sh`` runs these on a GPU machine).

    pytest -m gpu tests/test_gpu.py                        # on a GPU machine
    FFN_TEST_DEVICE=cpu pytest -m gpu tests/test_gpu.py    # anywhere
"""
import copy
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import _perturb_norms

import ffn_widgets as fw
from ffn_widgets.analysis.scaling import SliderEngine
from ffn_widgets.editing.rome import RomeSettings
from ffn_widgets.editing.tokens import generate_prefixes

ROOT = Path(__file__).resolve().parents[1]
DEVICE = os.environ.get("FFN_TEST_DEVICE", "cuda")
CONFIG = Path(os.environ.get("FFN_TEST_CONFIG") or ROOT / "benchmarks" / "configs" / "smollm2-135m.json")
PROMPT, SUBJECT, TARGET = "The Eiffel Tower is located in the city of", "The Eiffel Tower", " Paris"
REL = 1e-3  # of the largest magnitude: float32 kernels of two devices add in different orders
REL_EDIT = 1e-2  # ROME solves with the key statistics and optimises: small differences grow a little
QUICK = RomeSettings(steps=4, prefix_lengths=((3, 2), (4, 1)))


def _available(name: str) -> bool:
    kind = torch.device(name).type
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return True


pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not _available(DEVICE), reason=f"no {DEVICE} here (FFN_TEST_DEVICE=cpu runs "
                                                                 "these checks on the CPU)")]


def _bench_common():
    spec = importlib.util.spec_from_file_location("ffn_bench_common", ROOT / "benchmarks" / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pair():
    """``(cpu LM, device LM)``: the same random weights (seeded, norms perturbed) on the CPU and on DEVICE."""
    common = _bench_common()
    try:
        tokenizer = common.default_tokenizer()
    except fw.ModelNotFoundError as e:
        pytest.skip(f"no default tokenizer: {e} (or set FFN_BENCH_TOKENIZER)")
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")  # no TF32: the device computes in float32 as the CPU does
    model = common.random_model(CONFIG, "cpu", "float32", seed=0)
    _perturb_norms(model)
    cpu = fw.load_model(model=model, tokenizer=tokenizer, device="cpu")
    dev = fw.load_model(model=copy.deepcopy(model), tokenizer=tokenizer, device=DEVICE)
    assert cpu.device.type == "cpu" and dev.device.type == torch.device(DEVICE).type
    yield cpu, dev
    torch.set_float32_matmul_precision(precision)


@pytest.fixture
def both(pair, tmp_path, monkeypatch):
    """``both(fn)`` -> ``[fn(cpu LM), fn(device LM)]``, each with a cache folder of its own."""
    def run(fn):
        out = []
        for name, lm in zip(("cpu", "device"), pair):
            monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path / name))
            out.append(fn(lm))
        return out
    return run


@pytest.fixture(scope="module")
def sentences(pair):
    """Text without any download: decoded runs of random token ids (seeded), about 6,000 tokens."""
    tok = pair[0].tokenizer
    rng = np.random.default_rng(0)
    return [tok.decode(rng.integers(200, len(tok) - 1, 30).tolist()).strip() for _ in range(200)]


# ---- comparisons -----------------------------------------------------------------------------------------------
def _t(x) -> torch.Tensor:
    return (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.array(x))).detach().cpu().double()


def close(cpu, dev, what: str, rel: float = REL) -> None:
    a, b = _t(cpu), _t(dev)
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} on the CPU, {tuple(b.shape)} on {DEVICE}"
    if not a.numel():
        return
    scale, err = float(a.abs().max()), float((a - b).abs().max())
    assert err <= rel * scale + 1e-30, f"{what}: max |cpu - {DEVICE}| = {err:.3g} > {rel:g} x max |cpu| {scale:.3g}"


def same_order(ids_cpu, ids_dev, values_cpu, what: str, rel: float = REL) -> None:
    """Top-k ids ``[..., k]`` equal, except at a slot whose CPU value is within tolerance of a neighbour's."""
    a, b, v = _t(ids_cpu), _t(ids_dev), _t(values_cpu)
    assert a.shape == b.shape == v.shape, what
    tol = rel * float(v.abs().max()) if v.numel() else 0.0
    inf = torch.full_like(v[..., :1], float("inf"))
    gap = torch.minimum(torch.cat([inf, (v[..., 1:] - v[..., :-1]).abs()], -1),
                       torch.cat([(v[..., 1:] - v[..., :-1]).abs(), v[..., :1] * 0], -1))  # last slot: unknowable
    bad = (a != b) & (gap > tol)
    assert not bad.any(), f"{what}: {int(bad.sum())} ids differ on {DEVICE} where the CPU's values are no tie"


# ---- the checks ------------------------------------------------------------------------------------------------
def test_the_model_is_on_the_device(pair):
    cpu, dev = pair
    assert all(p.device.type == torch.device(DEVICE).type for p in dev.model.parameters())
    assert cpu.fingerprint == dev.fingerprint  # the same weights


def test_run_captures_the_same_sites(both):
    c, d = both(lambda lm: lm.run(PROMPT))
    assert torch.equal(c.input_ids, d.input_ids) and c.tokens == d.tokens
    for site in ("logits", "activations", "resid_pre", "attn_out", "mlp_out", "resid_post"):
        close(getattr(c, site), getattr(d, site), f"run.{site}")


def test_logit_lens(both):
    c, d = both(lambda lm: fw.logit_lens(lm, PROMPT, target=TARGET))
    for stage in ("post", "mid"):
        gc, gd = getattr(c, stage), getattr(d, stage)
        close(gc.probs, gd.probs, f"lens {stage} target probability")
        close(gc.top_probs, gd.top_probs, f"lens {stage} top probabilities")
        same_order(gc.top_ids, gd.top_ids, gc.top_probs, f"lens {stage} top tokens")


@pytest.mark.parametrize("by", ["activation", "contribution"])
def test_top_neurons(both, pair, by):
    layer = pair[0].n_layers // 2
    c, d = both(lambda lm: fw.top_neurons(lm, PROMPT, layer, by=by, target=TARGET, k=10))
    close(c.activations, d.activations, "top neuron activations")
    close(c.contributions, d.contributions, "top neuron contributions")
    scores = [abs(x) for x in c.activations] if by == "activation" else c.contributions
    same_order([c.neurons], [d.neurons], [scores], f"top neurons by {by}")


def test_knowledge_neurons(both):
    c, d = both(lambda lm: fw.knowledge_neurons(lm, PROMPT, TARGET, steps=8))
    close(c.scores, d.scores, "integrated-gradient scores")
    close(c.base_probs, d.base_probs, "p(target)")
    threshold = c.threshold * float(c.scores[0].max())
    tol = REL * float(c.scores.abs().max())
    for layer, neuron in {(l, i) for l, i, _ in c} ^ {(l, i) for l, i, _ in d}:
        assert abs(float(c.scores[0, layer, neuron]) - threshold) <= tol, f"neuron {(layer, neuron)} kept on one only"


def test_causal_trace(both):
    c, d = both(lambda lm: fw.causal_trace(lm, PROMPT, SUBJECT, kind="all", samples=2, window=4,
                                           check_target=False, progress=False))
    assert set(c) == set(d) == {"hidden", "mlp", "attn"}
    for kind in c:
        assert c[kind].target_id == d[kind].target_id and c[kind].subject == d[kind].subject
        close(c[kind].probs, d[kind].probs, f"causal trace {kind}")
        close(c[kind].p_corrupted_samples, d[kind].p_corrupted_samples, f"corrupted p ({kind})")
        close([c[kind].p_clean], [d[kind].p_clean], f"clean p ({kind})")


def test_slider_tick(both, pair):
    cpu = pair[0]
    mid = cpu.n_layers // 2
    nxt = min(mid + 1, cpu.n_layers - 1)
    a = fw.top_neurons(cpu, PROMPT, mid, by="contribution", target=TARGET, k=1).neurons[0]
    b = fw.top_neurons(cpu, PROMPT, nxt, by="contribution", target=TARGET, k=2).neurons[-1]
    ticks = [{(mid, a): 0.0}, {(mid, a): 2.0, (nxt, b): 0.5}]

    def slide(lm):
        engine = SliderEngine(lm, PROMPT, target=TARGET, k=5)
        return [engine.predict(t) for t in ticks] + [engine.predict({})]

    for i, (pc, pd) in enumerate(zip(*both(slide))):
        close(pc.logits, pd.logits, f"tick {i} logits")
        close([pc.target_prob], [pd.target_prob], f"tick {i} p(target)")


def test_mining(both, sentences, tmp_path):
    corpus = fw.load_corpus(sentences[:24] + ["The cat sat on the mat.", "The Eiffel Tower is in Paris."])
    names = iter(range(4))

    def mine(lm, dtype=None):
        return fw.mine_triggers(lm, corpus, k=4, dtype=dtype, path=tmp_path / f"index{next(names)}",
                                batch_tokens=128, progress=False)

    c, d = both(mine)
    assert c.complete and d.complete and c.tokens_mined == d.tokens_mined
    close(c.values, d.values, "top activations")
    where_c = np.asarray(c.offsets)[np.asarray(c.sentence_ids)] + np.asarray(c.positions)
    where_d = np.asarray(d.offsets)[np.asarray(d.sentence_ids)] + np.asarray(d.positions)
    same_order(where_c, where_d, c.values, "trigger positions")
    counts_c, counts_d = np.asarray(c.counts, np.int64), np.asarray(d.counts, np.int64)
    assert (counts_c.sum(-1) == counts_d.sum(-1)).all()  # every token counted once per neuron
    # a value at a bin edge (bins are a quarter octave wide) may fall on the other side: few counts move
    moved = int(np.abs(counts_c - counts_d).sum()) // 2
    assert moved <= 0.01 * counts_c.sum(), f"{moved} of {counts_c.sum()} histogram counts moved"
    # bfloat16 (the speed setting): runs on the device; half precision rounds differently, so loosely equal
    bc, bd = both(lambda lm: mine(lm, "bfloat16"))
    assert bd.complete and bd.dtype == "bfloat16" and bd.tokens_mined == c.tokens_mined
    close(bc.values, bd.values, "bfloat16 top activations", rel=0.1)


def test_rome_edit(both, pair, sentences):
    cpu, dev = pair
    corpus = fw.load_corpus(sentences)
    assert len(generate_prefixes(dev, QUICK.prefix_lengths, 0)) == 3  # sampling runs on the device
    prefixes = generate_prefixes(cpu, QUICK.prefix_lengths, 0)  # the same context for both edits
    layer = fw.default_layer(cpu)

    def edit(lm):
        before = lm._weight(lm.arch.down, layer).detach().cpu().clone()
        try:
            e = fw.rome_edit(lm, PROMPT, SUBJECT, " Rome", layer, corpus=corpus, tokens=4096, settings=QUICK,
                             prefixes=prefixes, progress=False)
            change = lm._weight(lm.arch.down, layer).detach().cpu() - before
        finally:
            lm.edits.reset()
        assert torch.equal(lm._weight(lm.arch.down, layer).detach().cpu(), before)  # undone to the bit
        return e, change

    (ec, wc), (ed, wd) = both(edit)
    close(ec.key, ed.key, "k* (prefix-averaged key)")
    close([ec.value_norm], [ed.value_norm], "‖v‖")
    close(ec.delta, ed.delta, "δ", rel=REL_EDIT)
    close(wc, wd, "weight change", rel=REL_EDIT)
    close([c["loss"] for c in ec.loss_curve], [c["loss"] for c in ed.loss_curve], "loss curve", rel=REL_EDIT)
