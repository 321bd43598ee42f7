"""The prompt views stream a new prompt: the heatmap goes out after the forward pass, the tables, the lens
stage shown and the value tokens follow as separate state updates, the other lens stage when it is asked
for, and a newer prompt replaces the parts still coming. The final state is checked against the
all-at-once computation and against softmax(unembed(hidden states)) from our own hooks."""
import asyncio

import numpy as np
import pytest
import torch
from conftest import FAMILIES

import ffn_widgets as fw
import ffn_widgets.analysis.lens as lens_module
import ffn_widgets.analysis.prompt_summary as summary_module
import ffn_widgets.widgets.prompt_views as views_module
from ffn_widgets.analysis.prompt_summary import summarize
from ffn_widgets.widgets import unpack
from ffn_widgets.widgets.payload import run_payload, value_payload

PROMPT = "The Eiffel Tower is located in the city of"
OTHER = "Mount Fuji is the highest mountain in"


@pytest.fixture
def events(monkeypatch):
    """A log of the lens stages and value vectors computed, in order (spies on the real functions)."""
    log = []
    real_lens, real_values = summary_module.lens_grid_steps, views_module.value_top_ids

    def lens_steps(lm, run, stage, *args, **kwargs):
        log.append(("lens computed", run.prompt, stage))
        return (yield from real_lens(lm, run, stage, *args, **kwargs))

    def value_top_ids(lm, layer, neurons, k=3):
        log.append(("values computed", layer, len(list(neurons))))
        return real_values(lm, layer, neurons, k)

    monkeypatch.setattr(summary_module, "lens_grid_steps", lens_steps)
    monkeypatch.setattr(views_module, "value_top_ids", value_top_ids)
    return log


def record_messages(widget, log):
    """Log each state message the widget sends with ``data`` or ``values`` in it (what ipywidgets sends)."""
    real = widget.send_state

    def send_state(key=None):
        keys = set(key) if isinstance(key, (set, list, tuple)) else {key}
        if "data" in keys:
            d = widget.data
            log.append(("data sent", d["prompt"], tuple(p for p in ("grids", "top", "lens") if p in d),
                        tuple(d["pending"])))
        if "values" in keys:
            log.append(("values sent", len(unpack(widget.values["neurons"]))))
        return real(key)

    widget.send_state = send_state


def test_the_first_message_carries_the_heatmap_before_the_lens_and_values_are_computed(tiny_lm, events):
    ex = fw.Explorer(tiny_lm, PROMPT, k=5)
    record_messages(ex, events)
    events.clear()
    ex.cell = {"layer": 1, "token": 2}
    ex.prompt = OTHER
    assert events[0] == ("data sent", OTHER, ("grids",), ("top", "lens"))  # one forward: the heatmap
    tables = events.index(("data sent", OTHER, ("grids", "top"), ("lens",)))
    lens = events.index(("lens computed", OTHER, "post"))
    cell_values = next(i for i, e in enumerate(events) if e[0] == "values sent")
    all_values = max(i for i, e in enumerate(events) if e[0] == "values sent")
    assert 0 < tables < cell_values < lens < all_values
    assert events[cell_values][1] <= 2 * 5  # the selected cell's rows first: two rankings of k neurons
    assert not any(e[0] == "values computed" for e in events[:tables])
    assert events[lens + 1:].count(("data sent", OTHER, ("grids", "top", "lens"), ())) == 1
    assert ("lens computed", OTHER, "mid") not in events  # the stage not shown is not computed
    assert ex.progress == {} and ex.error == ""


def test_the_streamed_state_equals_the_full_computation(tiny_lm):
    ex = fw.Explorer(tiny_lm, PROMPT, target=" Paris", k=5)
    full = summarize(tiny_lm, PROMPT, " Paris", 5)
    want = run_payload(tiny_lm, full)
    got = ex.data
    assert got["pending"] == [] and set(got["lens"]) == {"post"} and set(want["lens"]) == {"post", "mid"}
    for key in ("prompt", "tokens", "target", "predictions"):
        assert got[key] == want[key]
    for part, name in [("grids", "max_act"), ("grids", "contrib")] + [
            ("top", by) for by in ("activation", "contribution")]:
        a, b = got[part][name], want[part][name]
        for field in (["ids", "act", "contrib"] if part == "top" else [None]):
            np.testing.assert_array_equal(unpack(a[field] if field else a), unpack(b[field] if field else b))
    for field in ("prob", "rank", "top", "top_prob"):
        np.testing.assert_array_equal(unpack(got["lens"]["post"][field]), unpack(want["lens"]["post"][field]))
    vals, want_vals = ex.values, value_payload(tiny_lm, full)
    np.testing.assert_array_equal(unpack(vals["neurons"]), unpack(want_vals["neurons"]))
    np.testing.assert_array_equal(unpack(vals["top"]), unpack(want_vals["top"]))
    # the lens against fw.logit_lens on a fresh run, and against softmax over the unembedded hidden states
    paris = tiny_lm.target_ids(" Paris")[0]
    run = tiny_lm.run(PROMPT)
    lens = fw.logit_lens(tiny_lm, run, target=" Paris", k=5)
    np.testing.assert_allclose(unpack(got["lens"]["post"]["prob"]), lens.post.probs.numpy(), rtol=2e-3, atol=1e-6)
    np.testing.assert_array_equal(unpack(got["lens"]["post"]["top"]), lens.post.top_ids[..., 0].numpy())
    with torch.no_grad():
        logits = tiny_lm.model.lm_head(tiny_lm.model.model.norm(run.resid_post))
        p = torch.softmax(logits, -1)
    np.testing.assert_allclose(unpack(got["lens"]["post"]["prob"]), p[..., paris].numpy(), rtol=2e-3, atol=1e-6)
    np.testing.assert_array_equal(unpack(got["lens"]["post"]["rank"]), (logits > logits[..., paris:paris + 1]).sum(-1).numpy())
    np.testing.assert_array_equal(unpack(got["lens"]["post"]["top"]), p.argmax(-1).numpy())


def test_switching_the_lens_stage_computes_the_other_stage_once(tiny_lm, events):
    ex = fw.Explorer(tiny_lm, PROMPT, target=" Paris", k=3)
    assert [e for e in events if e[0] == "lens computed"] == [("lens computed", PROMPT, "post")]
    events.clear()
    ex.lens_stage = "mid"  # what the stage buttons sync from the browser
    assert events == [("lens computed", PROMPT, "mid")]
    assert set(ex.data["lens"]) == {"post", "mid"} and ex.data["pending"] == [] and ex.progress == {}
    # before each MLP = the block's output minus the MLP's output, through the final norm and unembedding
    paris = tiny_lm.target_ids(" Paris")[0]
    outs, mlps, hooks = {}, {}, []
    for i, block in enumerate(tiny_lm.model.model.layers):
        hooks.append(block.register_forward_hook(lambda m, a, o, i=i: outs.__setitem__(i, o[0] if isinstance(o, tuple) else o)))
        hooks.append(block.mlp.register_forward_hook(lambda m, a, o, i=i: mlps.__setitem__(i, o)))
    try:
        with torch.no_grad():
            tiny_lm.model(input_ids=tiny_lm.tokenizer(PROMPT, return_tensors="pt")["input_ids"])
            mid = torch.stack([(outs[i] - mlps[i])[0] for i in range(len(outs))])
            logits = tiny_lm.model.lm_head(tiny_lm.model.model.norm(mid))
            p = torch.softmax(logits, -1)
    finally:
        for h in hooks:
            h.remove()
    got = ex.data["lens"]["mid"]
    np.testing.assert_allclose(unpack(got["prob"]), p[..., paris].numpy(), rtol=2e-3, atol=1e-6)
    np.testing.assert_array_equal(unpack(got["rank"]), (logits > logits[..., paris:paris + 1]).sum(-1).numpy())
    np.testing.assert_array_equal(unpack(got["top"]), p.argmax(-1).numpy())
    ex.lens_stage = "post"
    ex.lens_stage = "mid"
    assert events == [("lens computed", PROMPT, "mid")]  # both stages kept: nothing recomputed
    ex.prompt = OTHER  # a new prompt: only the stage shown
    lens_events = [e for e in events if e[0] == "lens computed"]
    assert lens_events[1:] == [("lens computed", OTHER, "mid")] and set(ex.data["lens"]) == {"mid"}
    events.clear()
    ex.wait(both_lens_stages=True)  # for a page saved without a kernel to ask: the stage not shown too
    ex.wait(both_lens_stages=True)
    assert events == [("lens computed", OTHER, "post")] and set(ex.data["lens"]) == {"post", "mid"}
    assert ex.data["pending"] == []
    events.clear()
    lens = fw.LogitLens(tiny_lm, PROMPT, stage="mid")
    assert events == [("lens computed", PROMPT, "mid")] and "grids" not in lens.data
    assert lens.lens.post is not None  # the export computes what it needs


def test_a_new_prompt_mid_stream_replaces_the_old_one(tiny_lm, events):
    tiny_lm.forget()  # a cold value cache: the slow part

    async def main():
        ex = fw.Explorer(tiny_lm, PROMPT, k=3)
        # in a kernel the constructor returns with the heatmap; the rest is a task on the event loop
        assert "grids" in ex.data and "top" not in ex.data and ex.data["pending"] == ["top", "lens"]
        assert ex.progress["message"] == "Neuron tables and logit lens"
        while "top" not in ex.data:
            await asyncio.sleep(0)
        ex.cell = {"layer": 1, "token": 4}
        while not ex.values:
            await asyncio.sleep(0)
        listed = {(1, int(n)) for n in ex.computed.listed(1, 4)}
        assert {tuple(p) for p in unpack(ex.values["neurons"]).tolist()} == listed  # the clicked cell first
        record_messages(ex, events)
        events.clear()
        assert ex.dispatch({"type": "set_prompt", "prompt": OTHER, "_ack": 1})  # answered between steps
        while ex._runner.running:
            await asyncio.sleep(0)
        return ex

    ex = asyncio.run(main())
    sent = [e for e in events if e[0] == "data sent"]
    assert sent[0] == ("data sent", OTHER, ("grids",), ("top", "lens")) and {e[1] for e in sent} == {OTHER}
    assert [e for e in events if e[0] == "lens computed"] == [("lens computed", OTHER, "post")]
    want = run_payload(tiny_lm, summarize(tiny_lm, OTHER, None, 3, lens=False))
    np.testing.assert_array_equal(unpack(ex.data["top"]["contribution"]["ids"]),
                                  unpack(want["top"]["contribution"]["ids"]))
    assert ex.data["pending"] == [] and ex.cell == {"layer": 1, "token": len(tiny_lm.encode(OTHER)) - 1}
    assert ex.progress == {} and ex.error == ""


def test_a_stream_started_by_a_cell_is_finished_when_the_cell_ends(tiny_lm, monkeypatch):
    """So that run-all and headless runs (nbclient) save complete widgets, not the heatmap alone."""
    import IPython

    hooks = {}

    class Shell:
        class events:
            @staticmethod
            def register(name, callback):
                hooks.setdefault(name, []).append(callback)

    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell)
    monkeypatch.setattr(views_module, "_HOOKED", [])
    monkeypatch.setattr("ffn_widgets.model.watch._CELL_HOOK", [])  # the views' weights notices hook in too

    async def cell():
        ex = fw.Explorer(tiny_lm, PROMPT, k=3)  # a kernel: the rest streams as a task
        assert ex._runner.running and "top" not in ex.data
        for hook in hooks["post_run_cell"]:  # what IPython calls when the cell ends
            hook(None)
        assert not ex._runner.running and ex.data["pending"] == [] and "lens" in ex.data and ex.values
        await asyncio.sleep(0)  # the task that was driving the stream ends quietly
        return ex

    ex = asyncio.run(cell())
    assert ex.progress == {} and ex.error == ""


def test_a_failing_part_is_reported_and_nothing_stays_pending(tiny_lm, monkeypatch):
    ex = fw.Explorer(tiny_lm, PROMPT, k=3)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")
        yield  # pragma: no cover - a generator

    monkeypatch.setattr(summary_module, "lens_grid_steps", broken)
    ex.prompt = OTHER
    assert ex.error == "RuntimeError: out of memory" and ex.progress == {}
    assert ex.data["prompt"] == OTHER and "grids" in ex.data and ex.data["pending"] == []


def drain(steps):
    """Run a step generator to its end: (fractions yielded, value returned)."""
    fractions = []
    while True:
        try:
            fractions.append(next(steps))
        except StopIteration as done:
            return fractions, done.value


@pytest.mark.parametrize("family", FAMILIES)
def test_the_lens_by_vocabulary_slices_equals_softmax_of_the_unembedding(tiny_lm_factory, family):
    lm = tiny_lm_factory(family)
    run = lm.run(PROMPT)
    paris = lm.target_ids(" Paris")[0]
    flat = run.resid_mid.reshape(-1, lm.d_model)
    steps = lens_module._by_vocab(lm, lm.unembed_module, flat, paris, 3, size=1000, steps=50)  # target's slice first
    fractions, (probs, ranks, ids, top_probs) = drain(steps)
    assert len(fractions) == 50 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    fewer, grouped = drain(lens_module._by_vocab(lm, lm.unembed_module, flat, paris, 3, size=1000, steps=12))
    assert len(fewer) == 10 and fewer[-1] == 1.0  # 50 slices, a step every 5
    for a, b in zip((probs, ranks, ids, top_probs), grouped):
        assert torch.equal(a, b)  # how often it yields changes nothing computed
    logits = lm.unembed(flat)  # the model's own final norm and head (and soft-capping), all at once
    p = torch.softmax(logits, -1)
    np.testing.assert_allclose(probs.numpy(), p[:, paris].numpy(), rtol=1e-4, atol=1e-9)
    np.testing.assert_array_equal(ranks.numpy(), (logits > logits[:, paris:paris + 1]).sum(-1).numpy())
    top = p.topk(3, dim=-1)
    np.testing.assert_array_equal(ids.numpy(), top.indices.numpy())
    np.testing.assert_allclose(top_probs.numpy(), top.values.numpy(), rtol=1e-4, atol=1e-9)


def test_an_offloaded_head_is_read_through_the_model_with_the_same_numbers(tiny_lm):
    """A head whose weights accelerate keeps elsewhere goes through lm.unembed a chunk of rows at a time,
    reduced in the same slices: the sliced head's numbers (to float rounding: matrix kernels add in another
    order for another row count or thread count), the same integers."""
    run = tiny_lm.run(PROMPT)
    paris = tiny_lm.target_ids(" Paris")[0]
    for resid in (run.resid_post, run.resid_mid):
        flat = resid.reshape(-1, tiny_lm.d_model)
        _, sliced = drain(lens_module._by_vocab(tiny_lm, tiny_lm.unembed_module, flat, paris, 2))
        _, rows = drain(lens_module._by_rows(tiny_lm, flat, paris, 2, chunk_rows=7))
        for a, b in zip(sliced, rows):
            if a.is_floating_point():
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)
            else:
                assert torch.equal(a, b)


def test_stream_progress_waits_half_a_second_then_comes_five_times_a_second(tiny_lm, monkeypatch):
    """A stream that ends within half a second sends no progress of its own (the panels say what is coming);
    a longer one shows its step, at most every 0.2 s: each message costs the browser a repaint."""
    ex = fw.Explorer(tiny_lm, PROMPT, k=3)
    clock = {"now": 1000.0}
    monkeypatch.setattr(views_module.time, "time", lambda: clock["now"])
    ex.progress = {"message": "Neuron tables and logit lens", "fraction": None, "started": 1000.0}
    shown = []
    for now, fraction in ((1000.1, 0.1), (1000.45, 0.2), (1000.55, 0.3), (1000.65, 0.4), (1000.76, 0.5), (1000.9, 0.6)):
        clock["now"] = now
        ex._streamed({"message": "Logit lens (after each block)", "fraction": fraction})
        shown.append(ex.progress.get("fraction"))
    assert shown == [None, None, 0.3, 0.3, 0.5, 0.5]
    assert ex.progress["started"] == 1000.0 and ex.progress["message"] == "Logit lens (after each block)"
