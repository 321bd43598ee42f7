"""ROME on the real default model: edited facts are predicted, neighbours keep theirs, undo restores."""
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.data.facts import target

pytestmark = pytest.mark.real_model
TOKENS = 8192  # statistics of a small slice keep the test short; the default is 100,000


def top_token(lm, prompt):
    with torch.no_grad():
        logits = lm.model(input_ids=lm.encode(prompt)[None]).logits[0, -1]
    return lm.token_strings([int(logits.argmax())])[0]


@pytest.mark.parametrize("index", [0, 26])  # a landmark's city, a person's native language
def test_edit_rewrites_the_fact_and_undo_restores(default_lm, dev_facts, index):
    lm, fact = default_lm, dev_facts[index]
    new = target(fact["target_new"])
    before = {p: lm.logits(p)[-1] for p in [fact["prompt"]] + [n["prompt"] for n in fact["neighborhood"]]}
    e = fw.rome_edit(lm, fact["prompt"], fact["subject"], new, tokens=TOKENS, progress=False)
    try:
        assert top_token(lm, fact["prompt"]) == new
        assert any(top_token(lm, p) == new for p in fact["paraphrases"])
        kept = [top_token(lm, n["prompt"]) == target(n["target"]) for n in fact["neighborhood"]
                if n["target"] != fact["target_new"]]
        assert sum(kept) >= len(kept) - 1  # at most one neighbour pulled along
    finally:
        e.undo()
    for p, logits in before.items():
        assert torch.equal(lm.logits(p)[-1], logits)
    assert len(lm.edits) == 0
