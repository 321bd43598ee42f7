"""Two rules every door follows (issue 25): no NaN or infinite scale gets in, and a target that would glue onto the
prompt's last word gets the space it lacks, as ``fw.fact_target`` gives it (README, "Targets"). Each check
compares the unspaced call with the spaced one by numbers, or a refused value with the state left as it was."""
import copy
import math

import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.editing.rome import RomeSettings
from ffn_widgets.model import InputError, Intervention

PROMPT, SUBJECT = "The Eiffel Tower is located in the city of", "The Eiffel Tower"
QUICK = dict(corpus="lee", tokens=512, settings=RomeSettings(steps=2, prefix_lengths=((3, 1),)))


@pytest.fixture
def lm(tiny_lm_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))
    base = tiny_lm_factory("llama")
    return fw.load_model(model=copy.deepcopy(base.model), tokenizer=base.tokenizer)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_is_refused_at_every_door(lm, bad):
    clean = lm.logits(PROMPT)[-1]
    with pytest.raises(InputError, match="finite"):
        with lm.intervene({(1, 5): bad}):
            pass
    with pytest.raises(InputError, match="finite"):
        Intervention("neurons", 1, "scale", bad, index=[5])
    with pytest.raises(InputError, match="finite"):
        Intervention("resid_pre", 1, "add", torch.tensor([0.0, bad]))
    sliders = fw.NeuronSliders(lm, PROMPT, [(1, 5)], continuation=0)
    with pytest.raises(InputError, match="between"):
        sliders.scales = [bad]
    assert sliders.scales == [1.0]
    with pytest.raises(InputError):
        sliders.set_scale(1, 5, bad)
    assert not sliders.dispatch({"type": "scales", "scales": [bad], "keys": ["1:5"], "seq": 1})
    assert sliders.scales == [1.0]
    torch.testing.assert_close(lm.logits(PROMPT)[-1], clean, rtol=0, atol=0)  # nothing was left hooked


def test_the_target_rule():
    rule = fw.LM.continuation
    assert rule(PROMPT, "Paris") == " Paris" and rule(PROMPT, " Paris") == " Paris"
    assert rule("The capital of France is Paris", ",") == ","  # punctuation continues a word as it is
    assert rule("The capital of France is ", "Paris") == "Paris"  # the prompt gave the space
    assert rule("日本の首都は", "東京") == "東京"  # scripts without spaces between words
    assert rule(PROMPT, 42) == 42 and rule(PROMPT, None) is None


def test_every_function_that_takes_a_target_applies_the_rule(lm):
    spaced, bare = " Paris", "Paris"
    assert lm.target_ids(bare) != lm.target_ids(spaced)  # the rule matters with this tokenizer
    a, b = fw.logit_lens(lm, PROMPT, bare), fw.logit_lens(lm, PROMPT, spaced)
    assert a.target == b.target == spaced and a.target_id == b.target_id
    torch.testing.assert_close(a.post.probs, b.post.probs, rtol=0, atol=0)
    a = fw.causal_trace(lm, PROMPT, SUBJECT, bare, kind="mlp", samples=2, check_target=False, progress=False)
    b = fw.causal_trace(lm, PROMPT, SUBJECT, spaced, kind="mlp", samples=2, check_target=False, progress=False)
    assert a.target == b.target == spaced
    torch.testing.assert_close(a.scores, b.scores, rtol=0, atol=0)
    a, b = fw.knowledge_neurons(lm, PROMPT, bare, steps=2), fw.knowledge_neurons(lm, PROMPT, spaced, steps=2)
    assert a.target == b.target == spaced and a.target_id == b.target_id
    torch.testing.assert_close(a.scores, b.scores, rtol=0, atol=0)
    sliders = fw.NeuronSliders(lm, PROMPT, [(1, 5)], target=bare, continuation=0)
    assert sliders.engine.target_id == lm.target_ids(spaced)[0]
    ex = fw.Explorer(lm, PROMPT, target=bare)
    assert ex.computed.target_id == lm.target_ids(spaced)[0]


def test_edits_apply_the_target_rule(lm):
    before = lm.site_module("neurons", 1).weight.detach().clone()
    a = fw.rome_edit(lm, PROMPT, SUBJECT, "Rome", 1, apply=False, **QUICK)
    b = fw.rome_edit(lm, PROMPT, SUBJECT, " Rome", 1, apply=False, **QUICK)
    assert a.target == b.target == " Rome"
    torch.testing.assert_close(a.delta, b.delta, rtol=0, atol=0)
    editor = fw.Editor(lm, PROMPT, SUBJECT, "Rome", layer=1, **QUICK)
    assert editor.target == " Rome"
    editor.dispatch({"type": "apply", "target": "Rome"})
    assert editor.edit.target == " Rome"
    editor.edit.undo()
    request = {"prompt": PROMPT, "subject": SUBJECT, "target_new": "Rome"}  # facts store objects without the space
    batch = dict(corpus="lee", tokens=512, settings=fw.MemitSettings(steps=2, prefix_lengths=((3, 1),), mom2_weight=50.0))
    for edit in (fw.memit_edit, fw.alphaedit_edit):
        e = edit(lm, [request], layers=[1], apply=False, **batch)
        assert e.requests[0]["target_new"] == " Rome", edit.__name__
    assert torch.equal(lm.site_module("neurons", 1).weight, before) and len(lm.edits) == 0


def test_tokens_that_are_part_of_a_character_show_their_bytes(lm):
    """Byte-level BPE splits "→" or "ü" into tokens that are not characters on their own: they show as their
    bytes (``\\xe2``), never as "�", and the bytes of a word's tokens read back as the word."""
    text = "naïve café → Zürich Ωmega 東京"
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    shown = lm.token_strings(ids)
    assert not any("\ufffd" in s for s in shown)
    partial = [s for s in shown if "\\x" in s]
    assert partial, "this text has tokens that are parts of characters"
    raw = b"".join(s.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1")
                   if "\\x" in s else s.encode() for s in shown)
    assert raw.decode() == lm.tokenizer.decode(ids)
