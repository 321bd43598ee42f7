"""Knowledge-neuron attribution against brute-force integrated gradients, refinement, the experiment."""
import math

import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.analysis.knowledge import attribution, knowledge_experiment, knowledge_neurons, riemann_alphas

PROMPT = "The Eiffel Tower is located in the city of"


def brute_force_ig(lm, prompt, target_id, steps):
    """One full forward and backward per (layer, α), with a plain hook on the down projection's input."""
    ids = lm.encode(prompt)[None]
    clean = {}

    def grab(layer):
        def hook(module, args):
            clean[layer] = args[0][0, -1].detach().clone()
        return hook

    downs = [lm.blocks[l].get_submodule(lm.arch.down) for l in range(lm.n_layers)]
    handles = [d.register_forward_pre_hook(grab(l)) for l, d in enumerate(downs)]
    with torch.no_grad():
        lm.model(input_ids=ids)
    for h in handles:
        h.remove()
    scores = torch.zeros(lm.n_layers, lm.d_mlp)
    for layer, down in enumerate(downs):
        total = torch.zeros(lm.d_mlp)
        for k in range(1, steps + 1):
            leaf = (k / steps * clean[layer]).requires_grad_(True)

            def replace(module, args, leaf=leaf):
                x = args[0].clone()
                x[0, -1] = leaf
                return (x,)

            h = down.register_forward_pre_hook(replace)
            try:
                p = torch.softmax(lm.model(input_ids=ids).logits[0, -1], -1)[target_id]
                (grad,) = torch.autograd.grad(p, leaf)
            finally:
                h.remove()
            total += grad
        scores[layer] = clean[layer] * total / steps
    return scores


@pytest.mark.parametrize("family", ["llama", "gpt_neox", "gemma2"])
def test_attribution_equals_brute_force(tiny_lm_factory, family):
    lm = tiny_lm_factory(family)
    target_id = int(lm.logits(PROMPT)[-1].argmax())
    expected = brute_force_ig(lm, PROMPT, target_id, steps=3)
    got = attribution(lm, PROMPT, target_id, steps=3, rows_per_batch=3)  # one layer per batch
    mixed = attribution(lm, PROMPT, target_id, steps=3)  # both layers in one batch
    scale = expected.abs().max()
    assert scale > 0
    assert (got - expected).abs().max() <= 1e-4 * scale
    assert (mixed - expected).abs().max() <= 1e-4 * scale


def test_completeness_of_integrated_gradients(tiny_lm):
    """IG's defining property, independent of any gradient code: a layer's scores sum to
    p(clean) − p(that layer's last-position activations set to 0), up to the Riemann error."""
    target_id = int(tiny_lm.logits(PROMPT)[-1].argmax())
    scores = attribution(tiny_lm, PROMPT, target_id, steps=100)
    p_clean = torch.softmax(tiny_lm.logits(PROMPT)[-1], -1)[target_id]
    for layer in range(tiny_lm.n_layers):
        with tiny_lm.intervene([fw.Intervention("neurons", layer, "set", 0.0, positions=[-1])]):
            p_zero = torch.softmax(tiny_lm.logits(PROMPT)[-1], -1)[target_id]
        assert float(scores[layer].sum()) == pytest.approx(float(p_clean - p_zero), rel=0.02, abs=1e-6)


def test_riemann_path_ends_at_the_clean_activation():
    assert riemann_alphas(4).tolist() == [0.25, 0.5, 0.75, 1.0]


def test_refinement_and_iteration(tiny_lm):
    paraphrases = ["The Eiffel Tower can be found in the city of", "The Eiffel Tower, a landmark, is in"]
    target_id = int(tiny_lm.logits(PROMPT)[-1].argmax())
    kn = knowledge_neurons(tiny_lm, PROMPT, target_id, paraphrases, steps=4, threshold=0.2, share=0.6)
    assert kn.scores.shape == (3, tiny_lm.n_layers, tiny_lm.d_mlp)
    # neuron kept <=> above 0.2 × its prompt's maximum in at least 2 of the 3 prompts (ceil(0.6·3))
    expected = set()
    for layer in range(tiny_lm.n_layers):
        for neuron in range(tiny_lm.d_mlp):
            hits = sum(float(kn.scores[p, layer, neuron]) > 0.2 * float(kn.scores[p].max()) for p in range(3))
            if hits >= 2:
                expected.add((layer, neuron))
    triples = list(kn)
    assert {(l, n) for l, n, _ in triples} == expected and expected
    scores = [s for _, _, s in triples]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(float(kn.scores[:, triples[0][0], triples[0][1]].mean()))
    assert len(kn.to_frame()) == len(kn)
    fig = kn.figure()
    assert len(fig.data) == 2 and len(fig.data[1].x) == len(kn)
    for _, colour in fig.data[1].marker.colorscale:  # every kept neuron stands out on white, the weakest too
        r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
        assert 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.55, colour


def test_bad_input_leaves_the_model_untouched(tiny_lm):
    blocks = list(tiny_lm.blocks)
    hooks = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in tiny_lm.model.modules()]
    for kwargs in [dict(steps=0), dict(threshold=1.5), dict(share=0), dict(paraphrases="one string")]:
        with pytest.raises(fw.InputError):
            knowledge_neurons(tiny_lm, PROMPT, " Paris", **kwargs)
    with pytest.raises(fw.InputError, match="target"):
        knowledge_neurons(tiny_lm, PROMPT, "")
    with pytest.raises(fw.InputError, match="layer"):
        attribution(tiny_lm, PROMPT, " Paris", layers=[7])
    with pytest.raises(fw.InputError, match="positions"):
        knowledge_experiment(tiny_lm, [{"prompt": PROMPT, "target_true": "Paris"}], positions="first")
    assert list(tiny_lm.blocks) == blocks
    assert [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in tiny_lm.model.modules()] == hooks


def test_experiment_probabilities_match_manual_interventions(tiny_lm):
    fact = {"subject": "The Eiffel Tower", "prompt": PROMPT, "target_true": "Paris",
            "paraphrases": ["The Eiffel Tower can be found in the city of"]}
    result = knowledge_experiment(tiny_lm, [fact], steps=3, threshold=0.1, share=0.5, seed=3)
    row = result.rows[0]
    assert row["n_neurons"] > 0
    target_id = tiny_lm.target_ids(" Paris")[0]

    def p_with(neurons, scale, prompt):
        downs = {}
        for layer, neuron in neurons:
            downs.setdefault(layer, []).append(neuron)
        handles = []
        for layer, index in downs.items():
            def hook(module, args, index=index):
                x = args[0].clone()
                x[:, -1, index] *= scale
                return (x,)
            handles.append(tiny_lm.blocks[layer].get_submodule(tiny_lm.arch.down).register_forward_pre_hook(hook))
        try:
            with torch.no_grad():
                logits = tiny_lm.model(input_ids=tiny_lm.encode(prompt)[None]).logits[0, -1]
        finally:
            for h in handles:
                h.remove()
        return float(torch.softmax(logits, -1)[target_id])

    prompts = [PROMPT, *fact["paraphrases"]]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert row["p_base"] == pytest.approx(mean([p_with([], 1, p) for p in prompts]), rel=1e-4)
    assert row["p_suppress"] == pytest.approx(mean([p_with(row["neurons"], 0, p) for p in prompts]), rel=1e-4)
    assert row["p_amplify"] == pytest.approx(mean([p_with(row["neurons"], 2, p) for p in prompts]), rel=1e-4)
    change = mean([(p_with(row["neurons"], 0, p) - p_with([], 1, p)) / p_with([], 1, p) for p in prompts])
    assert row["change_suppress"] == pytest.approx(change, rel=1e-3, abs=1e-7)
    summary = result.summary()
    assert summary["facts_with_neurons"] == 1 and summary["suppress"] == row["change_suppress"]
    assert len(result.to_frame()) == 1 and len(result.figure().data) == 2


def test_drop_shared_leaves_out_neurons_common_to_many_facts(tiny_lm):
    facts = [{"prompt": PROMPT, "target_true": "Paris"},
             {"prompt": "The Colosseum is located in the city of", "target_true": "Rome"},
             {"prompt": "The capital of Japan is", "target_true": "Tokyo"}]
    kept = knowledge_experiment(tiny_lm, facts, steps=3, threshold=0.1)
    sets = [set(map(tuple, r["neurons"])) for r in kept.rows]
    common = {n for n in set().union(*sets) if sum(n in s for s in sets) >= 2}  # > 0.4 × 3 facts, > 1
    assert common, "the tiny model should share some neurons between facts (else the test checks nothing)"
    dropped = knowledge_experiment(tiny_lm, facts, steps=3, threshold=0.1, drop_shared=0.4)
    assert set(dropped.dropped) == common and dropped.summary()["dropped_shared"] == len(common)
    for before, after in zip(sets, dropped.rows):
        assert set(map(tuple, after["neurons"])) == before - common
    with pytest.raises(fw.InputError, match="drop_shared"):
        knowledge_experiment(tiny_lm, facts, drop_shared=1.5)


def test_remeasure_reuses_attributions_and_equals_a_fresh_run(tiny_lm, monkeypatch):
    """``remeasure(drop_shared=…)`` / ``positions="all"`` on an existing run gives what a run from scratch with
    those settings gives, without computing any attribution again."""
    import ffn_widgets.analysis.knowledge as knowledge

    facts = [{"prompt": PROMPT, "target_true": "Paris",
              "paraphrases": ["The Eiffel Tower can be found in the city of"]},
             {"prompt": "The Colosseum is located in the city of", "target_true": "Rome"},
             {"prompt": "The capital of Japan is", "target_true": "Tokyo"}]
    settings = dict(steps=3, threshold=0.1, seed=5)
    base = knowledge_experiment(tiny_lm, facts, **settings)
    scratch = knowledge_experiment(tiny_lm, facts, drop_shared=0.4, **settings)
    scratch_all = knowledge_experiment(tiny_lm, facts, drop_shared=0.4, positions="all", **settings)

    def no_attribution(*args, **kwargs):
        raise AssertionError("remeasure computed an attribution again")

    monkeypatch.setattr(knowledge, "attribution", no_attribution)
    reused = base.remeasure(tiny_lm, drop_shared=0.4)
    reused_all = base.remeasure(tiny_lm, drop_shared=0.4, positions="all")
    assert scratch.dropped and reused.dropped == scratch.dropped  # something was dropped: the variant differs
    assert [r["neurons"] for r in reused.rows] != [r["neurons"] for r in base.rows]
    for got_run, want_run in ((reused, scratch), (reused_all, scratch_all)):
        assert got_run.positions == want_run.positions
        for got, want in zip(got_run.rows, want_run.rows, strict=True):
            assert got["neurons"] == want["neurons"] and got["n_neurons"] == want["n_neurons"]
            for key, value in want.items():
                if key.startswith(("p_", "change_")):
                    assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-9), key
    assert reused_all.rows[0]["p_suppress"] != pytest.approx(reused.rows[0]["p_suppress"], rel=1e-6)
    assert base.remeasure(tiny_lm).rows == base.rows  # nothing dropped: the original run again
    with pytest.raises(fw.InputError, match="drop_shared"):
        base.remeasure(tiny_lm, drop_shared=2.0)
    with pytest.raises(fw.InputError, match="attributions"):
        knowledge.KnowledgeExperiment(base.rows, "last").remeasure(tiny_lm)


def test_random_baseline_uses_the_same_layers(tiny_lm):
    from ffn_widgets.analysis.knowledge import _random_same_layers

    chosen = [(0, 3), (0, 9), (1, 5)]
    random = _random_same_layers(tiny_lm, chosen, torch.Generator().manual_seed(0))
    assert sorted(l for l, _ in random) == [0, 0, 1]
    assert not set(random) & set(chosen) and len(set(random)) == 3


@pytest.mark.real_model
def test_knowledge_neurons_of_a_real_fact(default_lm):
    """On SmolLM2 the Eiffel Tower's knowledge neurons carry p(" Paris"): ×0 lowers it, ×2 raises it."""
    fact = {"prompt": PROMPT, "target_true": "Paris", "paraphrases": ["The Eiffel Tower can be found in the city of"]}
    row = knowledge_experiment(default_lm, [fact], steps=5).rows[0]  # 5 steps keep the test short
    assert 1 <= row["n_neurons"] <= 50
    assert row["change_suppress"] < 0 < row["change_amplify"]
    assert math.isfinite(row["change_random_suppress"])
