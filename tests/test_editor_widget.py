"""The Editor widget, kernel side (the browser side is in js/tests and tests/browser/test_editor_lab.py).

Gestures go through ``dispatch`` as the browser's messages do. The weights a widget's Apply writes are compared
with an independent ``rome_edit`` of the same arguments, and Undo with the weights as loaded, bit for bit."""
import asyncio

import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.editing.rome import rome_edit
from ffn_widgets.widgets.serialize import unpack

PROMPT, SUBJECT, NEW = "The Eiffel Tower is located in the city of", "The Eiffel Tower", " Rome"
SMALL = dict(tokens=2048, corpus="lee")  # key statistics over 2,048 tokens of a small corpus: fast


@pytest.fixture
def lm(tiny_lm_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))
    lm = tiny_lm_factory("llama")
    lm.edits.reset()
    yield lm
    lm.edits.reset()


def down(lm, layer):
    return lm.model.get_submodule(f"{lm.arch.layers}.{layer}.{lm.arch.down}").weight


def snapshot(lm) -> dict:
    return {name: p.detach().clone() for name, p in lm.model.named_parameters()}


def same_weights(lm, snap) -> bool:
    return all(torch.equal(p, snap[name]) for name, p in lm.model.named_parameters())


def apply_msg(layer=1, subject=SUBJECT, target=NEW, method="r-rome"):
    return {"type": "apply", "subject": subject, "target": target, "layer": layer, "method": method}


def test_apply_writes_what_rome_edit_writes_and_undo_restores_bit_for_bit(lm):
    original = snapshot(lm)
    ed = fw.Editor(lm, PROMPT, **SMALL)
    assert ed.status == "idle" and ed.edit_log == [] and ed.layer == fw.default_layer(lm)
    assert ed.dispatch(apply_msg(layer=1)), ed.error
    assert ed.status == "done" and ed.progress == {} and ed.error == ""
    assert (ed.subject, ed.target, ed.layer, ed.method) == (SUBJECT, NEW, 1, "r-rome")
    edited = down(lm, 1).detach().clone()
    assert not torch.equal(edited, original[f"{lm.arch.layers}.1.{lm.arch.down}.weight"])
    # the optimisation streamed one curve point per step, the same as the edit's own loss curve
    assert [p["step"] for p in ed.curve] == [r["step"] for r in ed.edit.loss_curve]
    assert [p["loss"] for p in ed.curve] == pytest.approx([r["loss"] for r in ed.edit.loss_curve])
    # the log row, the before/after rows and the continuation are there
    assert len(ed.edit_log) == 1 and ed.edit_log[0]["mine"] and ed.edit_log[0]["layers"] == [1]
    assert ed.comparison["applied"] and ed.comparison["rows"][0]["kind"] == "prompt"
    assert ed.comparison["rows"][0]["new"] == NEW and set(ed.comparison["continuations"]) == {"before", "after"}
    assert ed.report.rows[0]["after"]["p_new"] == pytest.approx(ed.comparison["rows"][0]["after"]["p_new"])

    lm.edits.undo()  # now the same edit made independently, from the same (original) weights
    assert same_weights(lm, original)
    reference = rome_edit(lm, PROMPT, SUBJECT, NEW, 1, progress=False, **SMALL)
    assert torch.equal(down(lm, 1), edited)
    lm.edits.undo(reference)

    assert ed.dispatch(apply_msg(layer=1))
    key = ed.edit_log[0]["key"]
    assert ed.dispatch({"type": "undo", "key": key}), ed.error
    assert same_weights(lm, original) and ed.edit_log == [] and not ed.comparison["applied"]
    assert not ed.dispatch({"type": "undo", "key": key}) and "no longer in the log" in ed.error


def test_rome_method_and_typed_target_without_space(lm):
    original = snapshot(lm)
    ed = fw.Editor(lm, PROMPT, SUBJECT, **SMALL)
    assert ed.dispatch(apply_msg(layer=0, target="Rome", method="rome")), ed.error
    assert ed.target == " Rome" and ed.edit.method == "rome" and ed.edit.layer == 0
    edited = down(lm, 0).detach().clone()
    lm.edits.reset()
    rome_edit(lm, PROMPT, SUBJECT, NEW, 0, method="rome", progress=False, **SMALL)
    assert torch.equal(down(lm, 0), edited)
    assert ed.dispatch({"type": "reset"}) and same_weights(lm, original) and ed.edit_log == []


def test_bad_input_shows_an_error_and_leaves_the_weights(lm):
    original = snapshot(lm)
    ed = fw.Editor(lm, PROMPT, **SMALL)
    assert not ed.dispatch(apply_msg(subject="Big Ben"))
    assert "Big Ben" in ed.error and ed.status == "idle" and same_weights(lm, original)
    assert not ed.dispatch(apply_msg(target="   "))
    assert "empty" in ed.error and same_weights(lm, original)
    assert not ed.dispatch(apply_msg(layer=99)) and "layer" in ed.error
    assert not ed.dispatch(apply_msg(layer="two")) and "whole number" in ed.error
    assert not ed.dispatch(apply_msg(method="memit")) and "method" in ed.error
    assert same_weights(lm, original) and len(lm.edits) == 0
    with pytest.raises(fw.InputError, match="Big Ben"):
        ed.apply(subject="Big Ben")
    with pytest.raises(fw.InputError, match="no edit"):
        fw.Editor(lm, PROMPT).undo()
    with pytest.raises(fw.InputError, match="one value per layer"):
        fw.Editor(lm, PROMPT, layer_hint=[1.0, 2.0, 3.0])


def test_a_failure_during_the_steps_shows_in_the_widget(lm):
    original = snapshot(lm)
    ed = fw.Editor(lm, PROMPT, SUBJECT, NEW, tokens=100)  # fewer than one 256-token text: refused by the statistics
    assert not ed.dispatch({"type": "apply"})
    assert ed.status == "failed" and "tokens" in ed.error and ed.progress == {} and same_weights(lm, original)


def test_cancel_on_the_event_loop_leaves_the_weights_untouched(lm):
    original = snapshot(lm)

    async def main():
        ed = fw.Editor(lm, PROMPT, SUBJECT, NEW, layer=1, **SMALL)
        assert ed.dispatch({"type": "apply"})
        assert ed.status == "running" and ed._runner.task is not None  # runs as a task: the kernel stays responsive
        assert not ed.dispatch({"type": "reset"}) and "being computed" in ed.error
        while len(ed.curve) < 2:
            await asyncio.sleep(0)
        assert ed.dispatch({"type": "cancel"})
        await ed._runner.task
        return ed

    ed = asyncio.run(main())
    assert ed.status == "cancelled" and ed.progress == {} and ed.edit is None
    assert same_weights(lm, original) and len(lm.edits) == 0

    async def finish():  # a second Apply after the cancel runs to the end as a task
        assert ed.dispatch({"type": "apply"})
        await ed._runner.task

    asyncio.run(finish())
    assert ed.status == "done" and ed.edit.applied and len(ed.curve) == len(ed.edit.loss_curve)


def test_the_log_follows_edits_made_from_code_and_python_undo(lm):
    original = snapshot(lm)
    ed = fw.Editor(lm, PROMPT, SUBJECT, NEW, layer=1, **SMALL)
    before = ed.prediction
    made = rome_edit(lm, PROMPT, SUBJECT, " London", 0, progress=False, **SMALL)
    assert [r["layers"] for r in ed.edit_log] == [[0]] and not ed.edit_log[0]["mine"]
    assert ed.edit_log[0]["facts"] == [{"prompt": PROMPT, "subject": SUBJECT, "target": " London"}]
    assert ed.prediction != before  # the prediction shown follows the weights
    ed.apply()
    assert [r["mine"] for r in ed.edit_log] == [False, True]
    ed.undo(0)  # by index: the edit made from code; this widget's stays
    assert lm.edits.entries == [ed.edit.entry] and not made.applied
    ed.undo()  # None: this widget's edit
    assert same_weights(lm, original) and ed.edit_log == []


def test_layer_hint_marks_its_peak_and_picks_the_layer(lm):
    ed = fw.Editor(lm, PROMPT, SUBJECT, layer_hint=torch.tensor([0.1, 0.7]), hint_label="effect")
    assert ed.layer == 1 and ed.hint["peak"] == 1 and ed.hint["label"] == "effect"
    assert unpack(ed.hint["values"]).tolist() == pytest.approx([0.1, 0.7])
    ed = fw.Editor(lm, PROMPT, SUBJECT, layer=0, layer_hint={1: 0.5})
    assert ed.layer == 0 and ed.hint["peak"] == 1
    assert torch.isnan(torch.from_numpy(unpack(ed.hint["values"]).copy())[0])
    fact = {"subject": SUBJECT, "target_new": "Rome", "prompt": PROMPT, "target_true": "Paris"}
    ed = fw.Editor(lm, PROMPT, fact=fact)
    assert (ed.subject, ed.target) == (SUBJECT, NEW)


def test_causal_trace_opens_an_editor_at_the_clicked_layer(lm):
    trace = fw.CausalTrace(lm, PROMPT, SUBJECT, samples=2, noise=0.5, check_target=False)
    trace.wait()
    assert trace.dispatch({"type": "select_cell", "kind": "mlp", "layer": 1, "token": 3})
    assert trace.dispatch({"type": "open_editor"}), trace.error
    ed = trace.editor
    assert isinstance(ed, fw.Editor) and trace.editor_slot == [ed]
    assert (ed.prompt, ed.subject, ed.layer) == (PROMPT, SUBJECT, 1)
    last = lm.find_subject(PROMPT, SUBJECT)[1] - 1
    expected = trace.result["mlp"].indirect[:, last]
    torch.testing.assert_close(torch.from_numpy(unpack(ed.hint["values"]).copy()), expected.float())
    assert "MLP indirect effect" in ed.hint["label"]

    explorer = fw.Explorer(lm, PROMPT)
    trace.show_in(explorer)
    assert trace.dispatch({"type": "open_editor", "layer": 0})
    assert explorer.shown is trace.editor and trace.editor.layer == 0 and trace.editor is not ed
    assert not trace.dispatch({"type": "open_editor", "layer": 7}) and "layer" in trace.error


def test_editor_in_the_explorer(lm):
    explorer = fw.Explorer(lm, PROMPT)
    ed = fw.Editor(lm, PROMPT, SUBJECT, NEW).show_in(explorer)
    assert explorer.shown is ed and "ROME" in explorer.slot_title


@pytest.fixture
def one_thread():
    """One torch thread: on a busy two-core machine, two threads waiting on each other make the real model's
    batched forwards many times slower (the notebooks' tip too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.real_model
def test_real_model_edit_and_undo(default_lm, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))
    lm = default_lm
    lm.edits.reset()
    weight = down(lm, 4).detach().clone()
    ed = fw.Editor(lm, PROMPT, SUBJECT, NEW, layer=4, tokens=2048, settings=fw.lessons.quick_settings())
    assert ed.prediction["token"] == " Paris"
    try:
        assert ed.dispatch({"type": "apply"}), ed.error
        assert ed.prediction["token"] == NEW and ed.comparison["rows"][0]["after"]["top"][0][0] == NEW
        kinds = {r["kind"] for r in ed.comparison["rows"]}
        assert kinds == {"prompt", "paraphrase", "neighbour"}  # the dev fact of this prompt is found
        assert ed.dispatch({"type": "undo", "key": ed.edit_log[-1]["key"]}), ed.error
        assert torch.equal(down(lm, 4), weight) and ed.prediction["token"] == " Paris"
    finally:
        lm.edits.reset()


# ---- batch mode: a list of facts and a method ----------------------------------------------------------
BATCH = [{"prompt": PROMPT, "subject": SUBJECT, "target_new": "Rome", "target_true": "Paris",
          "paraphrases": ["The Eiffel Tower can be found in the city of"]},
         {"prompt": "The Colosseum is located in the city of", "subject": "The Colosseum", "target_new": "Paris",
          "target_true": "Rome"}]


def memit_quick():
    from ffn_widgets.editing.memit import MemitSettings

    return MemitSettings(steps=3, prefix_lengths=((4, 2),), prefix_starts=("The", "Because"), mom2_weight=50.0)


@pytest.mark.parametrize("method", ["memit", "alphaedit"])
def test_batch_apply_writes_what_the_batch_function_writes(lm, method):
    from ffn_widgets.editing.memit import batch_steps, default_layers

    original = snapshot(lm)
    ed = fw.Editor(lm, facts=BATCH, method=method, layer=1, settings=memit_quick(), **SMALL)
    assert ed.methods == ["memit", "alphaedit", "r-rome", "rome"] and len(ed.batch) == 2
    assert ed.batch[1] == {"prompt": BATCH[1]["prompt"], "subject": "The Colosseum", "target": " Paris"}
    assert ed.dispatch({"type": "apply"}), ed.error
    assert ed.status == "done" and len(ed.edit) == 1 and len(lm.edits) == 1
    assert ed.edit_log[0]["layers"] == [0, 1] == default_layers(lm, 1) and ed.edit_log[0]["mine"]
    assert ed.comparison["applied"] and ed.comparison["layers"] == [0, 1]
    ed.undo()  # the widget's Apply off again, bit for bit
    assert same_weights(lm, original) and not ed.comparison["applied"]
    assert ed.dispatch({"type": "apply"}), ed.error
    written = {name: p.detach().clone() for name, p in lm.model.named_parameters()}
    lm.edits.reset()
    assert same_weights(lm, original)
    gen = batch_steps(lm, [{k: f[k] for k in ("prompt", "subject", "target_new")} for f in BATCH], [0, 1],
                      method=method, settings=memit_quick(), **SMALL)
    while True:
        try:
            next(gen)
        except StopIteration:
            break
    assert same_weights(lm, written)  # the widget wrote exactly what the batch function writes
    # before/after rows: every fact's prompt and paraphrase, each with its own new object, against plain measurements
    c = ed.comparison
    assert [(r["kind"], r["new"]) for r in c["rows"]] == [("prompt", " Rome"), ("paraphrase", " Rome"),
                                                         ("prompt", " Paris")]
    from ffn_widgets.editing.metrics import pair_probs

    after = pair_probs(lm, [r["prompt"] for r in c["rows"]], [r["new"] for r in c["rows"]])
    assert [r["after"]["p_new"] for r in c["rows"]] == pytest.approx(after.tolist(), rel=1e-4)
    es = [r["after"]["p_new"] > r["after"]["p_true"] for r in c["rows"] if r["kind"] == "prompt"]
    assert c["efficacy"] == sum(es) / 2 and c["batch"]


def test_batch_rome_sequence_and_cancel_rolls_back(lm):
    original = snapshot(lm)
    ed = fw.Editor(lm, facts=BATCH, method="r-rome", layer=1, **SMALL)
    assert ed.dispatch({"type": "apply"}), ed.error
    assert ed.status == "done" and len(ed.edit) == 2 and [e["facts"][0]["subject"] for e in ed.edit_log] == \
        [SUBJECT, "The Colosseum"]
    # the same two edits made one after another from code give the same weights
    written = {name: p.detach().clone() for name, p in lm.model.named_parameters()}
    lm.edits.reset()
    for f in BATCH:
        rome_edit(lm, f["prompt"], f["subject"], " " + f["target_new"], 1, **SMALL)
    assert same_weights(lm, written)
    lm.edits.reset()

    async def main():  # Cancel while the second fact is optimised: the first fact's edit is taken out again
        assert ed.dispatch({"type": "apply"})
        while not ed.progress.get("message", "").startswith("Fact 2 of 2"):
            await asyncio.sleep(0)
        assert len(lm.edits) == 1
        ed.cancel()
        await ed._runner.task

    asyncio.run(main())
    assert ed.status == "cancelled" and len(lm.edits) == 0 and same_weights(lm, original)


def test_batch_bad_input_names_the_fact(lm):
    with pytest.raises(fw.InputError, match="Request 1 .*Colosseum"):
        fw.Editor(lm, facts=[BATCH[0], {**BATCH[1], "subject": "The Louvre"}])
    with pytest.raises(fw.InputError, match="empty"):
        fw.Editor(lm, facts=[])
    with pytest.raises(fw.InputError, match="method must be one of"):
        fw.Editor(lm, facts=BATCH, method="rank-one")
    with pytest.raises(fw.InputError, match="two targets"):
        fw.Editor(lm, facts=[BATCH[0], {**BATCH[0], "target_new": "Berlin"}])
