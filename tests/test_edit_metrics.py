"""CounterFact-style metrics (editing/metrics.py) against independent computations: plain per-prompt HF
forwards with a hand-written NLL, hand-computed n-gram entropies, uncached sampling, float64 KL sums."""
import math

import pytest
import torch

from ffn_widgets.editing import metrics as M
from ffn_widgets.data.facts import target as object_target
from ffn_widgets.model import InputError

PROMPTS = ["The Eiffel Tower is located in the city of", "Paris is the capital of", "Hello"]
TARGETS = [" Paris", " France", " the Eiffel Tower"]  # the last is several tokens


def manual_logprob(lm, prompt: str, target: str) -> float:
    """Mean log-probability of the target's tokens after the prompt: one unpadded forward, no helpers."""
    prompt_ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"][0]
    target_ids = lm.tokenizer(target, add_special_tokens=False)["input_ids"]
    ids = torch.cat([prompt_ids, torch.tensor(target_ids)])
    with torch.no_grad():
        logp = lm.model(input_ids=ids[None].to(lm.device)).logits[0].float().log_softmax(-1)
    n = len(prompt_ids)
    return sum(logp[n - 1 + j, t].item() for j, t in enumerate(target_ids)) / len(target_ids)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_target_probs_equal_unpadded_forwards(tiny_lm_factory, family):
    lm = tiny_lm_factory(family)
    probs = M.target_probs(lm, PROMPTS, TARGETS, batch_size=4)  # 9 sequences: chunks of 4, 4, 1
    assert probs.shape == (3, 3) and probs.dtype == torch.float32
    assert len(lm.target_ids(TARGETS[2])) > 1
    for i, p in enumerate(PROMPTS):
        for j, t in enumerate(TARGETS):
            assert math.log(probs[i, j].item()) == pytest.approx(manual_logprob(lm, p, t), abs=1e-4)


def test_compare_and_pair_probs(tiny_lm):
    got = M.compare(tiny_lm, PROMPTS, " Paris", " France")
    for i, p in enumerate(PROMPTS):
        p_new, p_true = math.exp(manual_logprob(tiny_lm, p, " Paris")), math.exp(manual_logprob(tiny_lm, p, " France"))
        assert got["p_new"][i].item() == pytest.approx(p_new, rel=1e-4)
        assert got["p_true"][i].item() == pytest.approx(p_true, rel=1e-4)
        assert bool(got["new_wins"][i]) == (p_new > p_true)
    pairs = M.pair_probs(tiny_lm, PROMPTS, TARGETS)
    table = M.target_probs(tiny_lm, PROMPTS, TARGETS)
    assert torch.allclose(pairs, table.diagonal(), rtol=1e-4)


@pytest.mark.parametrize("call", [
    lambda lm: M.target_probs(lm, [], [" Paris"]),
    lambda lm: M.target_probs(lm, ["Hello"], []),
    lambda lm: M.target_probs(lm, ["Hello"], [""]),
    lambda lm: M.target_probs(lm, ["  "], [" Paris"]),
    lambda lm: M.target_probs(lm, "Hello", [" Paris"]),
    lambda lm: M.pair_probs(lm, ["Hello", "Hi"], [" Paris"]),
    lambda lm: M.next_token_dists(lm, []),
    lambda lm: M.generate(lm, []),
    lambda lm: M.generate(lm, ["Hello"], n_tokens=0),
    lambda lm: M.ngram_entropy([]),
])
def test_bad_input_is_an_input_error(tiny_lm, call):
    with pytest.raises(InputError):
        call(tiny_lm)


# ---- fluency -------------------------------------------------------------------------------------------
def h(*counts) -> float:
    total = sum(counts)
    return -sum(c / total * math.log2(c / total) for c in counts)


def test_ngram_entropy_by_hand():
    # "a b a b": bigrams (a,b)×2 (b,a)×1; trigrams (a,b,a) (b,a,b)
    abab = (2 / 3 * h(2, 1) + 4 / 3 * h(1, 1)) / 2
    assert M.ngram_entropy(["a b a b"]) == pytest.approx(abab)
    # "x y z.": words x y z . -> 3 distinct bigrams, 2 distinct trigrams; the mean is over texts
    xyz = (2 / 3 * math.log2(3) + 4 / 3 * 1) / 2
    assert M.ngram_entropy(["a b a b", "x y z."]) == pytest.approx((abab + xyz) / 2)
    assert M.words("Don't STOP, now") == ["Don", "'", "t", "STOP", ",", "now"]  # case kept
    assert M.ngram_entropy(["A a A a"]) == pytest.approx(abab)
    assert M.ngram_entropy(["word"]) == 0.0 and M.ngram_entropy([""]) == 0.0
    assert M.ngram_entropy(["the the the the the"]) == 0.0


def sample_uncached(lm, prompt, n_tokens, top_k, seed) -> list[int]:
    """Top-k sampling with a full forward per step (no KV cache), the same draw order as generate."""
    g = torch.Generator().manual_seed(seed)
    ids = lm.encode(prompt).cpu().tolist()
    out = []
    with torch.no_grad():
        for _ in range(n_tokens):
            logits = lm.model(input_ids=torch.tensor([ids + out], device=lm.device)).logits[0, -1].float()
            top = logits.topk(top_k)
            pick = torch.multinomial(top.values.softmax(-1).cpu(), 1, generator=g)
            token = int(top.indices[pick].item())
            if token in lm.stop_ids:
                break
            out.append(token)
    return out


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_generate_equals_uncached_sampling(tiny_lm_factory, family):
    lm = tiny_lm_factory(family)
    ids = M.generate_ids(lm, PROMPTS[:2], n_tokens=8, top_k=5, seed=3)
    assert ids == [sample_uncached(lm, p, 8, 5, 3 + i) for i, p in enumerate(PROMPTS[:2])]


def test_generate_is_seeded_and_batch_independent(tiny_lm):
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    texts = M.generate(tiny_lm, PROMPTS[:2], n_tokens=8, seed=7)
    assert torch.equal(torch.get_rng_state(), global_state)  # never touches the global RNG
    assert texts == M.generate(tiny_lm, PROMPTS[:2], n_tokens=8, seed=7)
    assert [M.generate(tiny_lm, [p], n_tokens=8, seed=7 + i)[0] for i, p in enumerate(PROMPTS[:2])] == texts
    assert M.generate(tiny_lm, PROMPTS[:2], n_tokens=8, seed=8) != texts
    ids = M.generate_ids(tiny_lm, PROMPTS[:2], n_tokens=8, seed=7)
    assert [tiny_lm.tokenizer.decode(x) for x in ids] == texts
    assert all(len(x) == 8 for x in ids)  # a random model does not sample its stop tokens here


class StopAt:
    """The LM with extra stop ids (the shared fixture is not mutated)."""

    def __init__(self, lm, extra):
        self._lm, self.stop_ids = lm, lm.stop_ids | set(extra)

    def __getattr__(self, name):
        return getattr(self._lm, name)


def test_generate_stops_at_stop_ids(tiny_lm):
    full = M.generate_ids(tiny_lm, [PROMPTS[0]], n_tokens=12, seed=0)[0]
    stop = full[4]
    stopped = M.generate_ids(StopAt(tiny_lm, [stop]), [PROMPTS[0]], n_tokens=12, seed=0)[0]
    assert stopped == full[:full.index(stop)] and stop not in stopped
    text = M.generate(StopAt(tiny_lm, [stop]), [PROMPTS[0]], n_tokens=12, seed=0)[0]
    assert text == tiny_lm.tokenizer.decode(stopped)


# ---- next-token KL -----------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_next_token_dists_and_kl(tiny_lm_factory, family):
    lm = tiny_lm_factory(family)
    before = M.next_token_dists(lm, PROMPTS, batch_size=2)
    assert before.shape == (3, lm.W_U.shape[0])
    for i, p in enumerate(PROMPTS):
        assert torch.allclose(before[i], lm.logits(p)[-1].log_softmax(-1).cpu(), atol=1e-4)
    assert torch.allclose(M.kl(before, before), torch.zeros(3))
    with lm.intervene({(0, n): 0.0 for n in range(0, lm.d_mlp, 2)}):
        after = M.next_token_dists(lm, PROMPTS)
    got = M.kl(before, after)
    p, q = before.double(), after.double()
    manual = [sum(math.exp(a) * (a - b) for a, b in zip(p[i].tolist(), q[i].tolist())) for i in range(3)]
    assert (got > 0).all()
    assert got.tolist() == pytest.approx(manual, rel=1e-3, abs=1e-6)


def test_kl_ignores_impossible_tokens():
    before = torch.tensor([[0.0, -math.inf]])
    after = torch.tensor([[math.log(0.5), math.log(0.5)]])
    assert M.kl(before, after).item() == pytest.approx(math.log(2))


# ---- scores --------------------------------------------------------------------------------------------
def test_harmonic_mean_and_aggregate():
    assert M.harmonic_mean([1.0, 0.5]) == pytest.approx(2 / 3)
    assert M.harmonic_mean([1.0, 0.0, 0.5]) == 0.0
    with pytest.raises(InputError):
        M.harmonic_mean([])
    a = {"efficacy": 1.0, "efficacy_magnitude": 0.5, "paraphrase": 1.0, "paraphrase_magnitude": 0.2,
         "neighbourhood": 0.5, "neighbourhood_magnitude": 0.1}
    b = dict(a, efficacy=0.0, efficacy_magnitude=-0.1, neighbourhood=None, neighbourhood_magnitude=None)
    out = M.aggregate([a, b])
    assert out["efficacy"] == 0.5 and out["neighbourhood"] == 0.5  # b has no counted neighbour
    assert out["score"] == pytest.approx(3 / (1 / 0.5 + 1 / 1.0 + 1 / 0.5))


@pytest.mark.real_model
def test_fact_scores_unedited(default_lm, dev_facts):
    lm, fact = default_lm, dev_facts[0]
    s = M.fact_scores(lm, fact)
    new, true = object_target(fact["target_new"]), object_target(fact["target_true"])

    def P(prompt, t):
        return math.exp(manual_logprob(lm, prompt, t))

    # the unedited model knows the fact: it prefers the true object, and every neighbour keeps its own
    assert s["efficacy"] == 0.0 and s["neighbourhood"] == 1.0
    assert s["prompt"]["p_true"] == pytest.approx(P(fact["prompt"], true), rel=1e-3)
    assert s["efficacy_magnitude"] == pytest.approx(P(fact["prompt"], new) - P(fact["prompt"], true), abs=1e-4)
    para = [(P(p, new), P(p, true)) for p in fact["paraphrases"]]
    assert s["paraphrase"] == pytest.approx(sum(a > b for a, b in para) / len(para))
    assert s["paraphrase_magnitude"] == pytest.approx(sum(a - b for a, b in para) / len(para), abs=1e-4)
    counted = [(P(n["prompt"], object_target(n["target"])), P(n["prompt"], new))
               for n in fact["neighborhood"] if object_target(n["target"]) != new]
    assert len(counted) == sum(n["counted"] for n in s["neighbours"]) >= 1
    assert s["neighbourhood_magnitude"] == pytest.approx(sum(a - b for a, b in counted) / len(counted), abs=1e-4)
    # locality: the same model again has zero KL; a perturbed one a positive KL on the neighbour prompts
    assert s["neighbour_logprobs"].shape == (len(fact["neighborhood"]), lm.W_U.shape[0])
    assert M.fact_scores(lm, fact, before=s)["neighbourhood_kl"] == pytest.approx(0.0, abs=1e-5)
    with lm.intervene({(8, n): 0.0 for n in range(0, lm.d_mlp, 4)}):
        assert M.fact_scores(lm, fact, before=s)["neighbourhood_kl"] > 1e-4


@pytest.mark.real_model
def test_target_probs_real_model(default_lm, dev_facts):
    fact = dev_facts[0]
    probs = M.target_probs(default_lm, [fact["prompt"]] + fact["paraphrases"], [" Paris", " London", " New York"])
    assert (probs[:, 0] > probs[:, 1]).all()
    assert math.log(probs[0, 2].item()) == pytest.approx(manual_logprob(default_lm, fact["prompt"], " New York"), abs=1e-4)
