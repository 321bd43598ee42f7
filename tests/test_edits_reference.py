"""The edits equal the research code, written out plainly (tests/reference_edits.py), on the default model and
held-out facts (benchmarks/more_facts.jsonl, never used to tune anything): the same prefixes and key
statistics go to both, and ΔW of ROME, r-ROME, MEMIT and AlphaEdit must agree to 1e-4 relative (Frobenius).
Tiny random models cannot show this: their δ gradients are ~1e-9, below Adam's ε, so float noise steers the
optimisation; their formula tests (test_rome, test_memit) feed both sides the same δ instead."""
import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.editing.memit import MemitSettings, alphaedit_edit, memit_edit, mom2_weight
from ffn_widgets.editing.rome import RomeSettings, rome_edit
from ffn_widgets.data.facts import target
from tests.reference_edits import reference_batch, reference_rome

pytestmark = pytest.mark.real_model
TOKENS = 8192
HELD_OUT = [json.loads(line) for line in (Path(__file__).parents[1] / "benchmarks/more_facts.jsonl").open()]
# fewer prefixes and steps than the defaults keep the plain loop short; every formula is the same
ROME = RomeSettings(steps=8, prefix_lengths=((5, 3), (10, 2)))
BATCH = MemitSettings(steps=8, prefix_lengths=((10, 3),), prefix_starts=("The", "Because", "I"))


@pytest.fixture(scope="module", autouse=True)
def statistics_cache(tmp_path_factory):
    """One private statistics cache for the module: each layer's C is computed once."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FFN_WIDGETS_CACHE", str(tmp_path_factory.mktemp("stats")))
    yield
    mp.undo()


def relative_gap(got, expected) -> float:
    return float((got - expected).norm() / expected.norm())


def delta_of(entry, i=0):
    d = entry.deltas[i]
    return d.left.double() @ d.right.double()


@pytest.mark.parametrize("method,index", [("r-rome", 0), ("rome", 30)])
def test_rome_equals_the_reference(default_lm, method, index):
    lm, fact = default_lm, HELD_OUT[index]
    new = target(fact["target_new"])
    e = rome_edit(lm, fact["prompt"], fact["subject"], new, method=method, tokens=TOKENS, settings=ROME,
                  apply=False, progress=False)
    C = fw.key_statistics(lm, e.layer, tokens=TOKENS, progress=False)
    expected, delta, losses = reference_rome(lm, fact["prompt"], fact["subject"], new, e.layer, e.prefixes, C,
                                             ROME, method)
    assert [r["loss"] for r in e.loss_curve] == pytest.approx([r["loss"] for r in losses], rel=1e-4)
    assert relative_gap(delta_of(e.entry), expected) <= 1e-4


@pytest.mark.parametrize("method", ["memit", "alphaedit"])
def test_batch_equals_the_reference(default_lm, method):
    lm = default_lm
    requests = [{k: f[k] for k in ("prompt", "subject", "target_new")} for f in (HELD_OUT[0], HELD_OUT[40])]
    layers = [3, 4]
    Cs = {layer: fw.key_statistics(lm, layer, tokens=TOKENS, progress=False) for layer in layers}
    settings = dataclasses.replace(BATCH, nullspace_threshold=float(torch.linalg.eigvalsh(Cs[3]).median()))
    b = (memit_edit if method == "memit" else alphaedit_edit)(lm, requests, layers, tokens=TOKENS, settings=settings,
                                                              apply=False, progress=False)
    reference = fw.load_model(model=copy.deepcopy(lm.model), tokenizer=lm.tokenizer)  # each layer's update lands
    plain = [{**r, "target_new": target(r["target_new"])} for r in requests]
    expected, Z = reference_batch(reference, plain, layers, b.prefixes, Cs,
                                  dataclasses.replace(settings, mom2_weight=mom2_weight(lm, settings)), method)
    assert relative_gap(b.targets.double(), Z) <= 1e-4
    for i, layer in enumerate(layers):
        assert relative_gap(delta_of(b.entry, i), expected[i]) <= 1e-4, layer

