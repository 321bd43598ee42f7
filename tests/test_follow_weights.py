"""Views never describe other weights than the current ones, and no job mixes two models (tiny models).

Each view is built, the weights are changed by a route a user takes (an edit, undo, reset, a write through
``.data``, ``load_state_dict``, ``lm.edits.load``, a dtype change, an ``intervene`` block), and what the view holds next is
compared, in numbers, with a view built fresh on the new weights, or it must say that it is stale."""
import asyncio
import copy

import numpy as np
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.editing.log import LogEntry, WeightDelta
from ffn_widgets.model.watch import WeightsChanged, notify_all
from ffn_widgets.widgets.runner import StepRunner

PROMPT, SUBJECT = "The Eiffel Tower is located in the city of", "The Eiffel Tower"
NEURONS = [(1, 5), (0, 7)]


@pytest.fixture
def lm(tiny_lm_factory):
    base = tiny_lm_factory("llama")
    return fw.load_model(model=copy.deepcopy(base.model), tokenizer=base.tokenizer)


def rank_one(lm, layer=1, scale=3.0, seed=0):
    """A log entry that moves the prediction (a stand-in for ROME's update: the same kind of write)."""
    g = torch.Generator().manual_seed(seed)
    left, right = torch.randn(lm.d_model, 1, generator=g), torch.randn(1, lm.d_mlp, generator=g)
    return LogEntry("test", [], [layer], [WeightDelta(f"{lm.arch.layers}.{layer}.{lm.arch.down}", scale * left, right)])


def write_data(lm):
    with torch.no_grad():
        lm.site_module("neurons", 0).weight.data.mul_(1.5)


def load_state(lm):
    state = {k: v * 0.9 if "mlp" in k else v for k, v in lm.model.state_dict().items()}
    lm.model.load_state_dict(state)


def routes(lm, tmp_path):
    """(name, change) pairs: each changes the weights the way a user would."""
    def undo():
        lm.edits.apply(rank_one(lm, seed=1))
        notify_all()
        lm.edits.undo()

    def load():
        lm.edits.apply(rank_one(lm, seed=2))
        lm.edits.save(tmp_path / "log.safetensors")
        lm.edits.reset()
        notify_all()
        lm.edits.load(tmp_path / "log.safetensors")

    return [("edit", lambda: lm.edits.apply(rank_one(lm))), ("undo", undo), ("reset", lm.edits.reset),
            ("load", load), (".data", lambda: (lm.edits.forget(), write_data(lm))),
            ("load_state_dict", lambda: (lm.edits.forget(), load_state(lm))),
            ("dtype", lambda: (lm.edits.forget(), lm.model.to(torch.float64)))]  # last: the rest run in float32


def bars(sliders):
    return torch.tensor(sliders.result.top_probs), sliders.result.top_ids, sliders.result.logits


def test_sliders_follow_every_route(lm, tmp_path):
    """After each route, the bars at ×1.0 and ×0.5 equal fresh sliders on the new weights (the issue's case:
    before, ×1.0 returned the logits of a model that no longer existed)."""
    sliders = fw.NeuronSliders(lm, PROMPT, NEURONS, continuation=2)
    for name, change in routes(lm, tmp_path):
        before = sliders.result.logits.clone()
        change()
        notify_all()  # what a notebook cell's end does (an edit tells the views itself)
        for scale in (1.0, 0.5):
            sliders.set_scale(1, 5, scale)
            fresh = fw.NeuronSliders(lm, PROMPT, NEURONS, continuation=2)
            fresh.set_scale(1, 5, scale)
            torch.testing.assert_close(sliders.result.logits, fresh.result.logits, rtol=0, atol=1e-6, msg=name)
            assert sliders.result.weights_version == lm.state_version
        assert not torch.equal(before, sliders.result.logits), name  # the route really changed the model
        assert sliders.continuation["original"] == fresh.continuation["original"], name
        sliders.reset()


def test_sliders_recompute_on_their_own_after_an_edit(lm):
    sliders = fw.NeuronSliders(lm, PROMPT, NEURONS, continuation=0)
    ticks = sliders.ticks
    lm.edits.apply(rank_one(lm))  # no cell end, no gesture: the log tells the view
    assert sliders.ticks == ticks + 1 and sliders.weights_version == lm.state_version
    torch.testing.assert_close(sliders.result.logits, lm.logits(PROMPT)[-1], rtol=0, atol=1e-5)
    with lm.edits.original():  # an edit's "before" measured: same weights after, nothing recomputed
        pass
    assert sliders.ticks == ticks + 1 and sliders.weights_version == lm.state_version


def test_explorer_prompt_views_and_neuron_card_recompute(lm, tmp_path):
    views = [fw.Explorer(lm, PROMPT), fw.ActivationHeatmap(lm, PROMPT), fw.LogitLens(lm, PROMPT, target=" Paris")]
    card = fw.NeuronCard(lm, 1, 5, prompt=PROMPT)
    for name, change in routes(lm, tmp_path):
        change()
        notify_all()
        plain = lm.model(input_ids=lm.encode(PROMPT)[None]).logits[0].detach()
        for view in views:
            view.wait()
            torch.testing.assert_close(view.computed.run.logits, plain, rtol=0, atol=1e-5, check_dtype=False, msg=name)
            assert view.weights_version == lm.state_version and not view.stale
            fresh = type(view)(lm, PROMPT, target=view.target or None)
            fresh.wait()
            assert plain_state(view.data) == plain_state(fresh.data), (name, type(view).__name__)
        fresh = fw.NeuronCard(lm, 1, 5, prompt=PROMPT)
        assert card.card == fresh.card, name


def test_expensive_views_say_at_once_that_they_are_stale_on_every_route(lm, tmp_path):
    """Trace, localisation, stability monitor and the Editor's report keep their numbers and say so, whatever the
    route; Recompute then gives what a fresh view of the new weights gives (numbers compared)."""
    from ffn_widgets.editing.rome import RomeSettings

    quick = dict(corpus="lee", tokens=512)
    settings = RomeSettings(steps=2, prefix_lengths=((3, 1),))
    fact = {"prompt": PROMPT, "subject": SUBJECT, "target_true": "Paris", "target_new": "Rome"}
    trace = fw.CausalTrace(lm, PROMPT, SUBJECT, samples=2, kind="mlp", window=1)
    trace.wait()
    loc = fw.Localize(lm, fact, edit_layers=[], samples=2, steps=2)
    monitor = fw.StabilityMonitor(lm, fw.load_facts()[:2], steps=1, n_unrelated=2, settings=settings, **quick)
    editor = fw.Editor(lm, PROMPT, SUBJECT, " Rome", layer=1, settings=settings, **quick)
    editor.apply()
    editor.edit.undo()
    editor.dispatch({"type": "recompute"})
    views = [trace, loc, monitor, editor]
    for name, change in routes(lm, tmp_path):
        for view in views:
            view.recompute()
        trace.wait()
        change()
        notify_all()
        for view in views:
            assert view.stale and view.weights_version != lm.state_version, (name, type(view).__name__)
    trace.dispatch({"type": "recompute"})
    fresh = fw.CausalTrace(lm, PROMPT, SUBJECT, samples=2, kind="mlp", window=1).wait()["mlp"]
    torch.testing.assert_close(trace.wait()["mlp"].scores, fresh.scores, rtol=1e-5, atol=0)
    assert loc.dispatch({"type": "recompute"}) and not loc.stale
    again = fw.localize(lm, fact, edit_layers=[], samples=2, steps=2)
    for key, values in again.measures.items():
        np.testing.assert_allclose(loc.result.measures[key], values, rtol=1e-5, atol=1e-7, err_msg=key)


def test_intervene_block_is_followed(lm):
    sliders = fw.NeuronSliders(lm, PROMPT, NEURONS, continuation=0)
    clean = sliders.result.logits.clone()
    with lm.intervene({(1, 5): 0.0, (1, 6): 3.0}):
        sliders.set_scale(0, 7, 1.0)  # refreshed inside the block: the block's model
        inside = sliders.result.logits.clone()
        torch.testing.assert_close(inside, lm.logits(PROMPT)[-1], rtol=0, atol=1e-5)
    notify_all()  # the cell ends: the view no longer shows the block's model
    assert not torch.equal(inside, clean)
    torch.testing.assert_close(sliders.result.logits, clean, rtol=0, atol=1e-6)


def test_trace_is_marked_stale_and_recomputes(lm):
    tr = fw.CausalTrace(lm, PROMPT, SUBJECT, samples=2, kind="mlp", window=1)
    old = tr.wait()["mlp"].scores.clone()
    lm.edits.apply(rank_one(lm))
    assert tr.stale and tr.result["mlp"].weights_version != lm.state_version  # said at once, numbers kept
    torch.testing.assert_close(tr.result["mlp"].scores, old)
    assert tr.dispatch({"type": "recompute"})
    new = tr.wait()["mlp"]
    fresh = fw.CausalTrace(lm, PROMPT, SUBJECT, samples=2, kind="mlp", window=1).wait()["mlp"]
    assert not tr.stale and new.weights_version == lm.state_version
    torch.testing.assert_close(new.scores, fresh.scores, rtol=1e-5, atol=0)
    assert not torch.allclose(new.scores, old, rtol=1e-2, atol=0)


def test_trace_interleaved_with_an_edit_never_mixes(lm):
    """An edit lands between two of the widget's steps: the trace starts again and equals a trace of the
    edited model; the code-level stream stops with WeightsChanged instead of mixing."""
    tr = fw.CausalTrace(lm, PROMPT, SUBJECT, samples=2, kind="mlp", window=1, start=False)
    for _ in range(3):
        tr._advance()
    lm.edits.apply(rank_one(lm))
    got = tr.wait()["mlp"]
    fresh = fw.CausalTrace(lm, PROMPT, SUBJECT, samples=2, kind="mlp", window=1).wait()["mlp"]
    torch.testing.assert_close(got.scores, fresh.scores, rtol=1e-5, atol=0)
    assert got.weights_version == lm.state_version

    from ffn_widgets.tracing.results import TraceStream
    from ffn_widgets.tracing.setup import prepare_trace

    stream = TraceStream(lm, prepare_trace(lm, PROMPT, SUBJECT, samples=2), "mlp", 1, progress=False)
    steps = stream.steps()
    next(steps)
    lm.edits.undo()
    with pytest.raises(WeightsChanged):
        for _ in steps:
            pass


def test_runner_restarts_or_fails_when_an_edit_lands_between_steps(lm):
    """On a running event loop: an edit job (unguarded, as the Editor's) lands while a reading job runs;
    with ``restart`` the reading job starts again and its rows all come from the new weights."""
    def reader(rows):
        for _ in range(4):
            rows.append(lm.logits(PROMPT)[-1, :8].clone())
            yield {}

    def edit_job():
        yield {}
        lm.edits.apply(rank_one(lm))
        yield {}

    async def scenario(restart):
        rows, ended = [], []
        reading = StepRunner(lambda info: None, lambda status, value: ended.append((status, value)))
        editing = StepRunner(lambda info: None, lambda status, value: None)
        reading.start(reader(rows), lm=lm, restart=(lambda: reader(rows.clear() or rows)) if restart else None)
        editing.start(edit_job())
        while reading.running or editing.running:
            await asyncio.sleep(0.01)
        return rows, ended, reading.restarts

    rows, ended, restarts = asyncio.run(scenario(True))
    after = lm.logits(PROMPT)[-1, :8]
    assert restarts == 1 and ended[0][0] == "done" and len(rows) == 4
    for r in rows:
        torch.testing.assert_close(r, after)
    lm.edits.reset()
    rows, ended, _ = asyncio.run(scenario(False))
    assert ended[0][0] == "failed" and isinstance(ended[0][1], WeightsChanged)


def test_a_job_waits_while_an_edit_is_computed(lm):
    """The edit goes first: while weights are in between (MEMIT writing layer by layer), a guarded job takes
    no step, and views hear nothing until the edit is done."""
    sliders = fw.NeuronSliders(lm, PROMPT, NEURONS, continuation=0)
    steps = []

    def reader():
        for i in range(3):
            steps.append((i, lm.watch.busy))
            yield {}

    async def scenario():
        runner = StepRunner(lambda info: None, lambda status, value: None)
        with lm.edits.temporary():
            lm.edits.apply(rank_one(lm))
            runner.start(reader(), lm=lm)
            await asyncio.sleep(0.2)
            assert steps == [] and sliders.weights_version != lm.state_version  # held
        while runner.running:
            await asyncio.sleep(0.01)

    ticks = sliders.ticks
    asyncio.run(scenario())
    assert [busy for _, busy in steps] == [False] * 3
    assert sliders.ticks == ticks and sliders.weights_version == lm.state_version  # the same weights as before


def test_editor_says_it_is_stale_and_recomputes(lm):
    """A view that marks (the Editor) says at once that it describes earlier weights; Recompute brings its
    prediction to the current model's, checked against a plain forward. (Docked copies are the same widget;
    the real-browser check of that is still to be written.)"""
    ed = fw.Editor(lm, PROMPT, subject=SUBJECT, target=" Rome", layer=1)
    before = ed.prediction
    lm.edits.apply(rank_one(lm))
    assert ed.stale
    assert ed.dispatch({"type": "recompute"})
    assert not ed.stale and ed.prediction != before
    probs = lm.logits(PROMPT)[-1].softmax(-1)
    assert ed.prediction["prob"] == pytest.approx(float(probs.max()), rel=1e-5)


def test_an_edit_goes_first_when_a_job_holds_the_weights_in_between(lm):
    """A job paused inside a temporary edit (as MEMIT's, a localisation's, a stability run's) holds the weights.
    A write from elsewhere goes first: the job lets go (its temporary edit taken out exactly), then the write lands,
    and the job stops saying why, or starts again on the new weights. Gestures are refused while it holds, readers
    wait, and nothing is lost: the log and weights are exactly the earlier ones plus the write."""
    loaded = lm.site_module("neurons", 1).weight.detach().clone()
    lm.edits.apply(rank_one(lm, seed=5))  # already in the log: the job must not drop it
    kept, before = list(lm.edits.entries), lm.site_module("neurons", 1).weight.detach().clone()
    sliders = fw.NeuronSliders(lm, PROMPT, NEURONS, continuation=0)
    measured, read = [], []

    def holding_job():
        with lm.edits.temporary():
            lm.edits.apply(rank_one(lm, seed=6))
            while True:  # measures its temporary edit step by step until stopped
                measured.append((lm.state_version, lm.logits(PROMPT)[-1, :4].clone()))
                yield {}

    def reader():
        for _ in range(2):
            read.append(lm.logits(PROMPT)[-1, :4].clone())
            yield {}

    async def until(condition):
        while not condition():
            await asyncio.sleep(0.01)

    async def scenario():
        ended = []
        holder = StepRunner(lambda info: None, lambda status, value: ended.append((status, value)))
        reading = StepRunner(lambda info: None, lambda status, value: ended.append((status, value)))
        holder.start(holding_job(), lm=lm)
        await until(lambda: len(measured) >= 2)
        assert lm.watch.held_by == "a running job" and lm.watch.holder is holder and len(lm.edits) == 2
        assert not sliders.dispatch({"type": "scales", "scales": [0.5, 1.0]})  # what it would show is temporary
        assert "has to wait: a running job" in sliders.error and sliders.scales == [1.0, 1.0]
        reading.start(reader(), lm=lm)
        await asyncio.sleep(0.1)
        assert read == []  # readers wait while the weights are in between
        new = rank_one(lm, seed=7)
        lm.edits.apply(new)  # goes first: the job lets go, then this lands
        assert lm.watch.held_by is None and lm.edits.entries == [*kept, new]
        await until(lambda: not reading.running)
        plain = lm.model(input_ids=lm.encode(PROMPT)[None]).logits[0, -1, :4].detach()
        for r in read:  # the reader ran on the weights the write left, without the job's temporary edit
            torch.testing.assert_close(r, plain, rtol=0, atol=1e-5)
        (status, error), done = ended
        assert status == "failed" and isinstance(error, WeightsChanged) and "edit goes first" in str(error)
        assert done == ("done", None)
        lm.edits.undo(new)
        assert torch.equal(lm.site_module("neurons", 1).weight, before)  # the job's temporary edit left nothing

        measured.clear()
        holder.start(holding_job(), lm=lm, restart=holding_job)
        await until(lambda: len(measured) >= 2)
        lm.edits.undo()  # the earlier edit, undone while the job holds: it goes first, the job starts again
        await until(lambda: holder.restarts == 1 and len(measured) >= 4)
        holder.cancel()  # Cancel always gets through, and lets go
        await until(lambda: not holder.running)
        return ended

    ended = asyncio.run(scenario())
    assert ended[-1] == ("cancelled", None) and lm.watch.held_by is None
    assert lm.edits.entries == [] and torch.equal(lm.site_module("neurons", 1).weight, loaded)
    versions = [v for v, _ in measured]
    assert versions[0] == versions[1] != versions[-1]  # rows before and after the restart: two models, never mixed
    assert not torch.allclose(measured[0][1], measured[-1][1])


def test_explorer_stream_interleaved_with_writes_never_mixes(lm):
    """On a running event loop the explorer streams its parts; a write through ``.data`` (no notice) and an edit
    (a notice) land between two of its steps. It starts again each time, and everything it ends with (heatmap,
    tables, lens, value tokens) equals a fresh explorer's on the final weights."""
    async def main():
        ex = fw.Explorer(lm, PROMPT)
        steps, shown = [], ex._runner._on_step
        ex._runner._on_step = lambda info: (steps.append(info), shown(info))

        async def after(n):
            goal = len(steps) + n
            while len(steps) < goal and ex._runner.running:
                await asyncio.sleep(0)
            assert ex._runner.running, "the stream ended before the write could land between its steps"

        await after(2)
        write_data(lm)  # between two steps, and nobody is told: the runner sees it before the next step
        await after(2)  # it started again: the stream ended with WeightsChanged, the view recomputed
        assert ex.weights_version == lm.state_version and not ex.error
        lm.edits.forget()
        lm.edits.apply(rank_one(lm))  # the log tells the view: it starts again at once
        while ex._runner.running:
            await asyncio.sleep(0.01)
        return ex

    ex = asyncio.run(main())
    fresh = fw.Explorer(lm, PROMPT)
    fresh.wait()
    assert ex.weights_version == lm.state_version and not ex.error and not ex.stale
    torch.testing.assert_close(ex.computed.run.logits, fresh.computed.run.logits, rtol=0, atol=0)
    for part in ("grids", "top", "lens", "vocab"):
        assert plain_state(ex.data.get(part)) == plain_state(fresh.data.get(part)), part
    assert plain_state(ex.values) == plain_state(fresh.values)


def plain_state(x):
    """Synced state with its binary buffers as bytes, to compare by content."""
    if isinstance(x, dict):
        return {k: plain_state(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain_state(v) for v in x]
    return bytes(x) if isinstance(x, (memoryview, bytearray)) else x


def test_a_closed_view_stops_following(lm):
    """A closed view computes nothing more: the next edit costs only the views still open."""
    closed, kept = fw.NeuronSliders(lm, PROMPT, NEURONS, continuation=0), fw.NeuronSliders(lm, PROMPT, NEURONS)
    ticks = closed.ticks, kept.ticks
    closed.close()
    lm.edits.apply(rank_one(lm))
    assert (closed.ticks, kept.ticks) == (ticks[0], ticks[1] + 1)
    torch.testing.assert_close(kept.result.logits, lm.logits(PROMPT)[-1], rtol=0, atol=1e-5)
