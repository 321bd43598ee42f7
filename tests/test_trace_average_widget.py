"""The AveragedTrace widget, kernel side (the browser side: js/tests/trace_average.test.ts and
tests/browser/test_trace_lab.py). Its synced grid is compared with a separate ``fw.trace_many`` and with an
average of single ``fw.causal_trace`` calls made by hand; the cluster side is in tests/test_cluster.py."""
import asyncio
import copy

import numpy as np
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.model import InputError
from ffn_widgets.tracing.average import GROUPS, token_groups
from ffn_widgets.widgets.serialize import unpack

FACTS = [{"prompt": "The Eiffel Tower is located in the city of", "subject": "The Eiffel Tower"},
         {"prompt": "Tiger Woods plays the sport of", "subject": "Tiger Woods", "target_true": "zzzz qq"},
         {"prompt": "The capital of Japan is", "subject": "Japan"}]
ARGS = dict(kind="mlp", samples=2, window=3)


@pytest.fixture
def lm(deep_factory):
    base = deep_factory("llama")
    return fw.load_model(model=copy.deepcopy(base.model), tokenizer=base.tokenizer)


def test_the_grid_equals_trace_many_and_a_hand_average(lm):
    w = fw.AveragedTrace(lm, FACTS, start=False, **ARGS)
    assert w.status == "idle" and w.result is None and w.grid["done"] == 0 and w.grid["total"] == 3
    avg = w.start()  # no event loop here: runs in place
    assert w.status == "done" and w.progress == {} and avg is w.result
    want = fw.trace_many(lm, FACTS, progress=False, **ARGS)
    g = w.grid
    assert (g["n_facts"], g["done"], g["skipped_count"], g["counts"]) == (2, 3, 1, want.counts.tolist())
    assert g["skipped"][0][0] == FACTS[1]["prompt"] and "does not predict" in g["skipped"][0][1]
    shown = unpack(g["indirect"]["mlp"]).reshape(len(GROUPS), lm.n_layers)
    np.testing.assert_array_equal(shown, want.indirect["mlp"].T.numpy())
    torch.testing.assert_close(avg.scores["mlp"], want.scores["mlp"], rtol=0, atol=0, equal_nan=True)
    # by hand: the last subject token's group is the mean over the two known facts of that token's scores
    sigma = want.traces[0]["mlp"].sigma
    one = [fw.causal_trace(lm, f["prompt"], f["subject"], kind="mlp", samples=2, window=3, noise=sigma,
                           progress=False) for f in (FACTS[0], FACTS[2])]
    last_subject = [t.scores[:, t.subject[1] - 1] - t.p_corrupted for t in one]
    torch.testing.assert_close(avg.indirect["mlp"][:, 2], (last_subject[0] + last_subject[1]) / 2)
    assert g["peaks"]["mlp"] == list(avg.peak("mlp"))
    assert token_groups(one[1].subject, len(one[1].tokens))[2] == [one[1].subject[1] - 1]


def test_it_fills_in_fact_by_fact_on_the_event_loop_and_cancel_keeps_what_is_done(lm):
    facts = [FACTS[0], FACTS[2], FACTS[0], FACTS[2]]
    seen = []

    async def run():
        w = fw.AveragedTrace(lm, facts, **ARGS)  # a running loop: it continues in the background
        assert w.status == "running" and w.result is None
        w.observe(lambda change: seen.append(change["new"]["n_facts"]), names="grid")
        while w.grid["n_facts"] < 2:
            await asyncio.sleep(0)
        w.cancel()
        while w.status == "running":
            await asyncio.sleep(0)
        return w

    w = asyncio.run(run())
    assert w.status == "cancelled" and w.result.n_facts == 2 and w.grid["done"] == 2
    assert seen[:2] == [1, 2]  # one fact averaged in at a time
    part = fw.trace_many(lm, facts[:2], progress=False, **ARGS)
    torch.testing.assert_close(w.result.indirect["mlp"], part.indirect["mlp"], rtol=0, atol=0, equal_nan=True)


def test_an_edit_while_it_runs_starts_it_again_and_a_finished_average_is_marked(lm):
    async def run():
        w = fw.AveragedTrace(lm, FACTS[:1], **ARGS)
        for _ in range(3):
            await asyncio.sleep(0)
        lm.edits.apply(rank_one(lm))  # between two of its steps
        while w.status == "running":
            await asyncio.sleep(0)
        return w

    w = asyncio.run(run())
    assert w._runner.restarts >= 1 and w.status == "done"
    assert w.result.weights_version == lm.state_version
    w.check_weights()  # the cell ends: the view hears the edit, and knows its numbers are of the edited model
    assert w.stale == "" and w.weights_version == lm.state_version
    want = fw.trace_many(lm, FACTS[:1], progress=False, **ARGS)  # on the edited weights, every number
    torch.testing.assert_close(w.result.indirect["mlp"], want.indirect["mlp"], rtol=0, atol=0, equal_nan=True)
    lm.edits.undo()
    w.check_weights()
    assert "earlier weights" in w.stale


def rank_one(lm):
    from ffn_widgets.editing.log import LogEntry, WeightDelta

    g = torch.Generator().manual_seed(1)
    path = f"{lm.arch.layers}.1.{lm.arch.down}"
    return LogEntry("test", [], [1], [WeightDelta(path, 2 * torch.randn(lm.d_model, 1, generator=g),
                                                  torch.randn(1, lm.d_mlp, generator=g))])


def test_bad_input_is_refused_before_anything_runs(lm):
    with pytest.raises(InputError, match="No facts"):
        fw.AveragedTrace(lm, [])
    with pytest.raises(InputError, match="'prompt' and 'subject'"):
        fw.AveragedTrace(lm, [{"prompt": "x"}])
    with pytest.raises(InputError):
        fw.AveragedTrace(lm, FACTS, kind="neurons")
    w = fw.AveragedTrace(lm, [FACTS[1]], start=False, **ARGS)  # a fact the model does not know: a clear failure
    with pytest.raises(InputError, match="predicts none"):
        w.start()
    assert w.status == "failed" and "predicts none" in w.error
