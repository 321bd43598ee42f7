"""The package's own calls raise no deprecation warnings from transformers (whose removals would break it),
and cached forwards use the cache keyword of the installed version."""
import inspect
import logging
import warnings

import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.model import kv


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2"])
def test_no_deprecation_warnings_from_package_calls(tiny_lm_factory, family):
    lm, prompt = tiny_lm_factory(family), "The capital of France is"
    records, logger = _Records(), logging.getLogger("transformers")
    logger.addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = lm.run(prompt)
            fw.logit_lens(lm, run, target=" Paris")
            engine = fw.SliderEngine(lm, prompt)
            engine.predict({(1, 3): 0.0})
            engine.continuation({(1, 3): 0.0}, 3)
            fw.knowledge_neurons(lm, prompt, " Paris", steps=4)
            fw.causal_trace(lm, prompt, "France", kind="all", samples=2, check_target=False, progress=False)
    finally:
        logger.removeHandler(records)
    said = [str(w.message) for w in caught] + records.messages
    assert not [m for m in said if "deprecat" in m.lower() or "will be removed" in m.lower()], said


def test_cached_forward_uses_the_installed_keyword(tiny_lm):
    """A two-step cached forward equals one plain forward, whichever keyword the installed version takes."""
    ids = tiny_lm.encode("The capital of France is")[None]
    names = inspect.signature(tiny_lm.model.forward).parameters
    assert "cache" in names or "past_key_values" in names
    with torch.no_grad():
        first = kv.forward(tiny_lm.model, ids[:, :-1])
        step = kv.forward(tiny_lm.model, ids[:, -1:], kv.cache_of(first))
        plain = tiny_lm.model(input_ids=ids).logits[:, -1]
    torch.testing.assert_close(step.logits[:, -1], plain, atol=1e-5, rtol=1e-5)
