"""The side panel's kernel half: docking, the model list, and undo per edit entry (bit-exact)."""
import copy

import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.editing.rome import RomeSettings
from ffn_widgets.memories.corpus import load_corpus
from ffn_widgets.model import InputError
from ffn_widgets.widgets.dock import Dock, model_row

PROMPT = "The Eiffel Tower is located in the city of"
QUICK = RomeSettings(steps=3, prefix_lengths=((3, 1),))


@pytest.fixture
def lm(tiny_lm_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))
    base = tiny_lm_factory("llama")
    return fw.load_model(model=copy.deepcopy(base.model), tokenizer=base.tokenizer)


def test_docking_and_undocking(lm):
    from ffn_widgets.widgets.sliders import NeuronSliders

    d = Dock()
    a, b = NeuronSliders(lm, PROMPT, [(1, 7)], continuation=0), fw.NeuronCard(lm, 1, 7)
    d.add(a)
    d.add(b)
    d.add(a)  # twice: still once
    assert d.docked == [a, b]
    assert d.dispatch({"type": "undock", "index": 0}) and d.docked == [b]
    assert not d.dispatch({"type": "undock", "index": 5}) and "no longer docked" in d.error
    with pytest.raises(InputError, match="Only widgets"):
        d.add("not a widget")
    # a view of a docked widget is the same model: a drag in either copy moves the one state
    d.add(a)
    assert a.dispatch({"type": "scales", "scales": [0.0], "seq": 1}) and d.docked[-1].scales == [0.0]


def test_models_and_edits_follow_the_log_and_undo_is_exact(lm):
    d = Dock()
    mine = [row for row in d.models if row["serial"] == lm.serial]
    assert mine == [model_row(lm)] and mine[0]["edits"] == [] and mine[0]["name"] == lm.name
    w0 = lm.values(1).clone()
    kw = dict(corpus=load_corpus("lee"), tokens=512, settings=QUICK, progress=False)
    fw.rome_edit(lm, PROMPT, "The Eiffel Tower", " Rome", 1, **kw)
    fw.rome_edit(lm, "The Louvre is located in the city of", "The Louvre", " London", 0, **kw)
    row = next(r for r in d.models if r["serial"] == lm.serial)  # refreshed by the log, no call needed
    assert [e["layers"] for e in row["edits"]] == [[1], [0]]
    assert "The Eiffel Tower → Rome" in row["edits"][0]["facts"][0]
    after_both = lm.values(0).clone()
    assert d.dispatch({"type": "undo", "model": lm.serial, "entry": 0})
    assert torch.equal(lm.values(1), w0) and torch.equal(lm.values(0), after_both)
    row = next(r for r in d.models if r["serial"] == lm.serial)
    assert [e["layers"] for e in row["edits"]] == [[0]]
    assert d.dispatch({"type": "reset", "model": lm.serial}) and len(lm.edits) == 0
    assert not d.dispatch({"type": "undo", "model": lm.serial, "entry": 0}) and "no longer in the log" in d.error
    assert not d.dispatch({"type": "undo", "model": 10 ** 6, "entry": 0}) and "no longer loaded" in d.error


def test_a_new_model_appears_in_the_panel(tiny_lm_factory):
    d = Dock()
    base = tiny_lm_factory("gpt2")
    other = fw.load_model(model=base.model, tokenizer=base.tokenizer)
    assert other.serial in [r["serial"] for r in d.models]


def test_current_model_is_the_newest_live_one(tiny_lm_factory, monkeypatch):
    """What the JupyterLab commands run on (fw.current_model()): the newest model still referenced."""
    import gc
    import weakref

    from ffn_widgets.model import lm as lm_module

    monkeypatch.setattr(lm_module, "_LIVE", weakref.WeakValueDictionary())
    with pytest.raises(InputError, match=r"fw\.load_model\(\)"):
        fw.current_model()
    base = tiny_lm_factory("gpt2")
    first = fw.load_model(model=base.model, tokenizer=base.tokenizer)
    second = fw.load_model(model=base.model, tokenizer=base.tokenizer)
    assert fw.current_model() is second
    del second
    gc.collect()
    assert fw.current_model() is first


def test_the_panel_is_brought_forward_by_the_extension_when_it_is_there():
    """ipylab can only expand the right area; the package's extension's command selects the panel's tab."""
    from types import SimpleNamespace

    from ffn_widgets.widgets.dock import SHOW_PANEL, _show

    calls = []
    frontend = SimpleNamespace(
        commands=SimpleNamespace(list_commands=lambda: [SHOW_PANEL], execute=lambda *a: calls.append(("execute", *a))),
        shell=SimpleNamespace(expand_right=lambda: calls.append(("expand_right",))))
    _show(frontend)
    frontend.commands.list_commands = lambda: []  # the extension is not installed
    _show(frontend)
    assert calls == [("execute", SHOW_PANEL, {"quiet": True}), ("expand_right",)]
