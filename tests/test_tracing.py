"""Causal tracing: the engine against ROME's straightforward loop, the limits (restore everything /
nothing), activation patching, averaging, errors, streaming and cancelling."""
import dataclasses

import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.model import InputError
from ffn_widgets.tracing.average import GROUPS, average, token_groups
from ffn_widgets.tracing.engine import KINDS, TraceEngine, reference_cell, reference_trace, window_layers
from ffn_widgets.tracing.results import TraceStream
from ffn_widgets.tracing.setup import find_subject, prepare_patch, prepare_trace

PROMPT, SUBJECT = "The Eiffel Tower is located in the city of", "Eiffel Tower"
NOISE = 0.5  # random models need a strong corruption for visible effects


def _untouched(lm):
    """No hook left on any module and every block is the model's own."""
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in lm.model.modules())
    return hooks == 0 and all(type(b).__name__ != "_Replay" for b in lm.blocks)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox", "gptj", "gemma2"])
def test_engine_equals_reference_loop(deep_factory, family):
    lm = deep_factory(family)
    setup = prepare_trace(lm, PROMPT, SUBJECT, samples=3, noise=NOISE, check_target=False)
    got = TraceStream(lm, setup, "all", window=3, max_tokens=64, progress=False).run()
    ref = reference_trace(lm, setup, KINDS, window=3)
    for kind in KINDS:
        torch.testing.assert_close(got[kind].probs, ref[kind], rtol=1e-4, atol=1e-7)
        spread = float((ref[kind].max() - ref[kind].min()) / ref[kind].max())
        assert spread > 0.05  # the grid is far from flat: a wrong cell would show
    if family == "llama":  # the benchmark's ablation: recomputing the prefix instead of caching it
        no_cache = TraceStream(lm, setup, "all", window=3, progress=False)
        no_cache.engine.prefix_cache = False
        torch.testing.assert_close(no_cache.run()["attn"].probs, ref["attn"], rtol=1e-4, atol=1e-7)
    assert _untouched(lm)


def test_forwards_that_merge_start_layers_equal_the_reference_loop(deep_factory):
    """Restorations starting at different blocks in one forward (the later ones joining the batch at
    their own block) give the reference's numbers; so do forwards of one restoration each."""
    lm = deep_factory("llama")
    setup = prepare_trace(lm, PROMPT, SUBJECT, samples=3, noise=NOISE, check_target=False)
    ref = reference_trace(lm, setup, KINDS, window=3)
    merged = TraceEngine(lm, setup, KINDS, 3, max_tokens=10**6)  # no memory bound: one forward per part
    assert all(len(forwards) == 1 for forwards in merged.groups.values())
    assert all(len({start for *_, start in forwards[0]}) > 1 for forwards in merged.groups.values())
    single = TraceEngine(lm, setup, KINDS, 3, max_tokens=1)
    assert all(len(f) == 1 for forwards in single.groups.values() for f in forwards)
    for engine in (merged, single):
        grid = {kind: torch.empty_like(ref[kind]) for kind in KINDS}
        for row in engine.rows():
            for kind, p in row.probs.items():
                grid[kind][:, row.token] = p
        for kind in KINDS:
            torch.testing.assert_close(grid[kind], ref[kind], rtol=1e-4, atol=1e-7)
    assert _untouched(lm)


def test_plan_forwards_covers_each_restoration_once_within_the_memory_bound():
    from ffn_widgets.tracing.engine import plan_forwards

    restos = [("hidden", l, l + 1) for l in range(29)] + [("mlp", l, max(0, l - 5)) for l in range(30)]
    for samples, positions, max_rows in [(10, 1, 4096), (10, 12, 4096), (10, 12, 100), (3, 40, 1)]:
        plan = plan_forwards(restos, samples, positions, 30, max_rows)
        flat = [r for forward in plan for r in forward]
        assert sorted(flat) == sorted(restos)
        assert all(len(f) == 1 or len(f) * samples * positions <= max_rows for f in plan)
        starts = [[r[2] for r in f] for f in plan]
        assert all(a[-1] <= b[0] for a, b in zip(starts, starts[1:]))  # neighbouring starts only
    # rows join at their own start, so merging wastes nothing: as few forwards as the memory bound allows
    assert len(plan_forwards(restos, 10, 1, 30, 4096)) == 1
    assert len(plan_forwards(restos, 10, 1, 30, 400)) == 2  # 590 token-rows, at most 400 a forward


def test_patching_equals_reference_loop(deep_factory):
    lm = deep_factory("llama")
    other = "The Colosseum is located in the city of"
    setup = prepare_patch(lm, PROMPT, other, check_target=False)
    assert setup.subject == (1, 4) and setup.samples == 1 and setup.first_affected == 1
    got = TraceStream(lm, setup, ("hidden", "attn"), window=2, progress=False).run()
    ref = reference_trace(lm, setup, ("hidden", "attn"), window=2)
    for kind in ("hidden", "attn"):
        torch.testing.assert_close(got[kind].probs, ref[kind], rtol=1e-4, atol=1e-7)
    with torch.no_grad():  # the corrupted probability is the other prompt's own prediction
        plain = torch.softmax(lm.model(lm.encode(other)[None]).logits[0, -1], -1)[setup.target_id]
    assert got["hidden"].p_corrupted == pytest.approx(float(plain), rel=1e-5)


def test_restoring_every_corrupted_state_gives_the_clean_probability(deep_factory):
    """With only the last token noised, restoring its block output at any layer restores everything."""
    lm = deep_factory("llama")
    tr = fw.causal_trace(lm, PROMPT, "city of"[-2:], kind="hidden", samples=4, noise=NOISE, check_target=False,
                         progress=False)
    ids = lm.encode(PROMPT)
    with torch.no_grad():
        clean = torch.softmax(lm.model(ids[None]).logits[0, -1], -1)
    assert tr.p_clean == pytest.approx(float(clean[tr.target_id]), rel=1e-5)
    assert tr.subject == (len(ids) - 1, len(ids))
    torch.testing.assert_close(tr.scores[:, -1], torch.full((lm.n_layers,), tr.p_clean), rtol=1e-4, atol=1e-7)
    assert abs(tr.p_corrupted - tr.p_clean) > 1e-3


def test_restoring_unchanged_states_gives_the_corrupted_probability(deep_factory):
    """Tokens before the subject are the same in both runs: restoring them (computed, not skipped)
    leaves the corrupted probability, which equals a plain forward on noised embeddings."""
    lm = deep_factory("llama")
    setup = prepare_trace(lm, PROMPT, "located", samples=3, noise=NOISE, check_target=False)
    forced = dataclasses.replace(setup, first_affected=0)
    stream = TraceStream(lm, forced, "all", window=3, progress=False)
    got = stream.run()
    a = setup.subject[0]
    emb = lm.model.get_submodule(lm.arch.embed)
    with torch.no_grad():
        x = emb(setup.ids[None]).repeat(3, 1, 1)
        x[:, a:setup.subject[1]] += setup.noise
        plain = torch.softmax(lm.model(inputs_embeds=x).logits[:, -1], -1)[:, setup.target_id]
    torch.testing.assert_close(got["hidden"].p_corrupted_samples, plain, rtol=1e-5, atol=1e-8)
    for kind in KINDS:
        torch.testing.assert_close(got[kind].probs[:, :a], plain.expand(lm.n_layers, a, 3), rtol=1e-4, atol=1e-7)
    skipped = TraceStream(lm, setup, "all", window=3, progress=False).run()  # the fast path agrees
    torch.testing.assert_close(skipped["mlp"].probs, got["mlp"].probs, rtol=1e-4, atol=1e-7)


def test_subject_tokens_and_window():
    assert list(window_layers(0, 10, 30)) == list(range(0, 5))
    assert list(window_layers(12, 10, 30)) == list(range(7, 17))
    assert list(window_layers(29, 10, 30)) == list(range(24, 30))
    assert list(window_layers(3, 1, 30)) == [3]


def test_find_subject_by_text(deep_factory):
    lm = deep_factory("llama")
    tokens = lm.token_strings(lm.encode(PROMPT))
    a, b = find_subject(lm, PROMPT, "Eiffel Tower")
    assert "".join(tokens[a:b]).strip() == "Eiffel Tower"
    assert find_subject(lm, PROMPT, "The Eiffel Tower")[0] == 0
    assert find_subject(lm, PROMPT, " of") == (len(tokens) - 1, len(tokens))


def test_bad_inputs_give_clear_errors(deep_factory):
    lm = deep_factory("llama")
    with pytest.raises(InputError, match="does not occur in the prompt"):
        prepare_trace(lm, PROMPT, "Big Ben")
    with pytest.raises(InputError, match="other capitals: 'Eiffel Tower'"):
        prepare_trace(lm, PROMPT, "eiffel tower")
    with pytest.raises(InputError, match="subject is empty"):
        prepare_trace(lm, PROMPT, " ")
    with torch.no_grad():
        probs = torch.softmax(lm.model(lm.encode(PROMPT)[None]).logits[0, -1], -1)
    unlikely = lm.tokenizer.decode([int(probs.argmin())])
    with pytest.raises(InputError, match="does not predict"):
        prepare_trace(lm, PROMPT, SUBJECT, target=unlikely)
    with pytest.raises(InputError, match="kind must be one of"):
        fw.causal_trace(lm, PROMPT, SUBJECT, kind="mlps", check_target=False)
    with pytest.raises(InputError, match="window"):
        fw.causal_trace(lm, PROMPT, SUBJECT, window=0, check_target=False)
    with pytest.raises(InputError, match="samples"):
        prepare_trace(lm, PROMPT, SUBJECT, samples=0, check_target=False)
    with pytest.raises(InputError, match="same number of tokens"):
        prepare_patch(lm, PROMPT, "The Great Wall of China is located in the city of", check_target=False)
    with pytest.raises(InputError, match="nothing to patch"):
        prepare_patch(lm, PROMPT, PROMPT, check_target=False)
    assert _untouched(lm)


def test_stream_last_token_first_cancel_and_cleanup(deep_factory):
    lm = deep_factory("llama")
    setup = prepare_trace(lm, PROMPT, SUBJECT, samples=2, check_target=False)
    stream = TraceStream(lm, setup, "all", window=3, progress=False)
    T = len(setup.ids)
    rows = iter(stream)
    first = [next(rows) for _ in KINDS]  # the last token, one kind at a time, cheapest first
    assert [r.token for r in first] == [T - 1] * 3 and [list(r.probs) for r in first] == [["hidden"], ["attn"], ["mlp"]]
    stream.cancel()
    assert list(rows) == [] and _untouched(lm)
    partial = stream.result()
    assert not partial["mlp"].scores[:, -1].isnan().any() and partial["mlp"].scores[:, 0].isnan().all()
    order = [row.token for row in TraceStream(lm, setup, "hidden", progress=False)]
    assert order == list(range(T - 1, setup.first_affected - 1, -1)) + list(range(setup.first_affected - 1, -1, -1))


def test_engine_error_leaves_model_untouched(deep_factory):
    lm = deep_factory("llama")
    setup = prepare_trace(lm, PROMPT, SUBJECT, samples=2, check_target=False)
    broken = dataclasses.replace(setup, target_id=10 ** 9)
    with pytest.raises(IndexError):
        list(TraceEngine(lm, broken, KINDS, 3).rows())
    assert _untouched(lm)


def test_results_figures_and_frames(deep_factory):
    lm = deep_factory("llama")
    res = fw.causal_trace(lm, PROMPT, SUBJECT, kind="all", samples=2, window=3, check_target=False, progress=False)
    mlp = res["mlp"]
    L, T = mlp.scores.shape
    assert (L, T) == (lm.n_layers, len(mlp.tokens)) and mlp.probs.shape == (L, T, 2)
    torch.testing.assert_close(mlp.spread, mlp.probs.std(-1, correction=0))
    assert mlp.labels[mlp.subject[0]].endswith("*") and not mlp.labels[0].endswith("*")
    assert mlp.peak()[2] == pytest.approx(float(mlp.scores.max()))
    assert len(res.to_frame()) == 3 * L * T
    assert len(res.figure().data) == 3 and len(mlp.figure().data) == 1


def test_token_groups_follow_rome():
    assert token_groups((2, 5), 9) == [[2], [3], [4], [5], [6, 7], [8]]
    assert token_groups((0, 1), 3) == [[0], [], [0], [1], [], [2]]
    assert token_groups((1, 3), 4) == [[1], [], [2], [], [], [3]]


def test_trace_many_averages_aligned_groups(deep_factory):
    lm = deep_factory("llama")
    facts = [{"prompt": PROMPT, "subject": SUBJECT},
             {"prompt": "The capital of Japan is", "subject": "Japan"},
             {"prompt": "Tiger Woods plays the sport of", "subject": "Tiger Woods", "target_true": "zzzz qq"}]
    avg = fw.trace_many(lm, facts, kind=("hidden", "mlp"), samples=2, window=3, progress=False)
    assert avg.n_facts == 2 and len(avg.skipped) == 1 and "does not predict" in avg.skipped[0][1]
    one = [fw.causal_trace(lm, f["prompt"], f["subject"], kind=("hidden", "mlp"), samples=2, window=3,
                           noise=avg.traces[0]["mlp"].sigma, progress=False) for f in facts[:2]]
    for kind in ("hidden", "mlp"):  # recompute the groups by hand from the single traces
        eiffel, japan = one[0][kind], one[1][kind]
        a, b = eiffel.subject
        torch.testing.assert_close(avg.scores[kind][:, 2], (eiffel.scores[:, b - 1] + japan.scores[:, 3]) / 2)
        torch.testing.assert_close(avg.scores[kind][:, 1], eiffel.scores[:, a + 1:b - 1].mean(1))
        want = ((eiffel.scores[:, -1] - eiffel.p_corrupted) + (japan.scores[:, -1] - japan.p_corrupted)) / 2
        torch.testing.assert_close(avg.indirect[kind][:, 5], want)
    assert avg.counts.tolist() == [2, int(b - a > 2), 2, 1, 1, 2]
    assert len(avg.figure().data) == 2 and len(avg.to_frame()) == 2 * lm.n_layers * len(GROUPS)
    assert average(avg.traces).scores["mlp"].allclose(avg.scores["mlp"], equal_nan=True)


@pytest.mark.real_model
def test_real_model_cells_match_reference_and_show_the_late_site(default_lm):
    lm = default_lm
    setup = prepare_trace(lm, "The capital of Japan is", "Japan", samples=4)
    assert setup.target == " Tokyo"
    res = TraceStream(lm, setup, "all", progress=False).run()
    T = len(setup.ids)
    for kind, layer, token in [("hidden", 3, T - 2), ("mlp", 5, T - 2), ("attn", 20, T - 1), ("hidden", 12, T - 1)]:
        ref = reference_cell(lm, setup, kind, layer, token)
        torch.testing.assert_close(res[kind].probs[layer, token], ref, rtol=1e-4, atol=1e-5)
    hidden = res["hidden"]
    assert hidden.p_clean > 0.3 and hidden.p_corrupted < hidden.p_clean / 2
    assert hidden.scores[-1, -1] == pytest.approx(hidden.p_clean, rel=1e-4)
    late = res["attn"].scores[lm.n_layers // 2:, -1].max()  # attention at the last token, late layers
    assert late - hidden.p_corrupted > 0.3 * hidden.total_effect


# ---- the widget (kernel side; the browser side is in js/tests and tests/browser) ---------------------

def test_widget_streams_on_the_event_loop_and_matches_the_analysis(deep_factory):
    import asyncio

    from ffn_widgets.widgets.serialize import unpack

    lm = deep_factory("llama")
    seen = []

    async def main():
        widget = fw.CausalTrace(lm, PROMPT, SUBJECT, samples=2, noise=NOISE, window=3, check_target=False)
        widget.observe(lambda change: seen.append(change["new"]["finished"]), names="grid")
        await widget._runner.task  # the step runner drives it on the loop
        return widget

    widget = asyncio.run(main())
    assert widget.status == "done" and widget.progress == {} and widget.error == ""
    assert seen == sorted(seen) and seen[-1] == len(widget.setup.tokens) + 2  # rows arrive one by one
    ref = fw.causal_trace(lm, PROMPT, SUBJECT, kind="all", samples=2, noise=NOISE, window=3, check_target=False,
                          progress=False)
    for kind in KINDS:
        torch.testing.assert_close(torch.from_numpy(unpack(widget.grid["scores"][kind]).copy()), ref[kind].scores.T)
    assert widget.grid["p_clean"] == pytest.approx(ref["mlp"].p_clean)


def test_widget_mlp_click_lists_neurons_by_contribution(deep_factory):
    from ffn_widgets.analysis.neurons import contributions
    from ffn_widgets.widgets.serialize import unpack

    lm = deep_factory("llama")
    widget = fw.CausalTrace(lm, PROMPT, SUBJECT, samples=2, noise=NOISE, window=3, check_target=False)
    assert widget.status == "waiting"  # no event loop here: nothing runs until wait()
    picked = []
    widget.on_neuron_selected(lambda layer, neuron: picked.append((layer, neuron)))
    assert widget.dispatch({"type": "select_cell", "kind": "mlp", "layer": 2, "token": 3})
    ids = unpack(widget.neurons["neurons"]).tolist()
    run = lm.run(PROMPT)
    c = contributions(lm, run, 2, 3, widget.setup.target_id)
    assert ids == c.topk(len(ids)).indices.tolist()
    assert widget.dispatch({"type": "select_neuron", "layer": 2, "neuron": ids[0]}) and picked == [(2, ids[0])]
    assert not widget.dispatch({"type": "select_cell", "kind": "mlp", "layer": 99, "token": 0})
    assert "layer must be" in widget.error
    widget.dispatch({"type": "cancel"})
    assert widget.status == "cancelled" and _untouched(lm)
    assert widget.result["hidden"].scores.isnan().all()
    with pytest.raises(InputError, match="either a subject"):
        fw.CausalTrace(lm, PROMPT)
    with pytest.raises(InputError, match="does not occur"):
        fw.CausalTrace(lm, PROMPT, "Big Ben")


def test_embedding_sigma_is_remembered_until_the_weight_changes(tiny_lm):
    from ffn_widgets.tracing.setup import embedding_sigma

    weight = tiny_lm.model.get_submodule(tiny_lm.arch.embed).weight
    first = embedding_sigma(tiny_lm)
    assert first == pytest.approx(float(weight.detach().float().std()), rel=1e-5)  # no embedding scale here
    original = weight.detach().clone()
    try:
        weight.data.mul_(2.0)  # in place through .data: the version counter does not move
        assert embedding_sigma(tiny_lm) == pytest.approx(2 * first, rel=1e-5)
    finally:
        weight.data.copy_(original)
    assert embedding_sigma(tiny_lm) == pytest.approx(first, rel=1e-6)
