"""CounterFact-style measurements of a weight edit (ROME's definitions, SCIENCE §8), whatever made the edit.

They read the model as it is now, so the same call before and after an edit gives the two sides of a
comparison. Every probability of a continuation is ROME's P(x) = exp(−mean token NLL of x's tokens given
the prompt): a multi-token object is scored by all its tokens, not just the first.

    probs = target_probs(lm, ["The Eiffel Tower is located in the city of"], [" Paris", " London"])
    scores = fact_scores(lm, fact)                 # efficacy, paraphrase, neighbourhood (+ magnitudes)
    ... edit the model ...
    after = fact_scores(lm, fact, before=scores)   # adds the KL of next-token dists on neighbour prompts
    ngram_entropy(generate(lm, prompts))           # fluency (ROME's generation entropy)
"""
from __future__ import annotations

import math
import re
from collections import Counter

import torch

from ..data.facts import target as object_target
from ..model import LM, InputError, kv

_WORD = re.compile(r"\w+|[^\w\s]")


# ---- probabilities of continuations ------------------------------------------------------------------
def pair_probs(lm: LM, prompts: list[str], targets: list[str], batch_size: int = 16) -> torch.Tensor:
    """P(target_i | prompt_i) for paired lists, ``[n]`` float32 on the CPU.

    The prompt's ids (``lm.encode``) and the target's (``lm.target_ids``) are concatenated, never the joined
    text re-tokenised, so the target is scored as exactly the tokens the model would have to produce.
    Sequences are right-padded into chunks of ``batch_size`` with an attention mask: causal attention means
    the padding after a sequence never changes the logits of its own tokens. For the same reason pairs that
    share a prompt share a forward: the prompt's last position predicts every target's first token whatever
    follows it, so a single-token target is read from any sequence that starts with its prompt, and only
    targets of several tokens need a sequence of their own."""
    prompts, targets = _texts(prompts, "prompts"), _texts(targets, "targets")
    if len(prompts) != len(targets):
        raise InputError(f"Got {len(prompts)} prompts but {len(targets)} targets; pair them one to one.")
    encoded: dict[str, torch.Tensor] = {}
    reads = []  # per pair: (prompt, the target's tokens but its last), prompt length, target ids
    for prompt, target in zip(prompts, targets):
        if prompt not in encoded:
            encoded[prompt] = lm.encode(prompt).cpu()
        ids = encoded[prompt]
        tids = torch.tensor(lm.target_ids(target), dtype=ids.dtype)
        if len(ids) + len(tids) > lm.n_ctx:
            raise InputError(f"Prompt plus target {target!r} is {len(ids) + len(tids)} tokens; "
                             f"this model reads at most {lm.n_ctx}.")
        reads.append(((prompt, tuple(tids[:-1].tolist())), len(ids), tids))
    longer = {}  # prompt -> a sequence that continues it, which also serves its single-token targets
    for (prompt, rest), _, _ in reads:
        if rest:
            longer.setdefault(prompt, (prompt, rest))
    keys = [key if key[1] else longer.get(key[0], key) for key, _, _ in reads]
    unique = list(dict.fromkeys(keys))
    at_seq: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        at_seq.setdefault(key, []).append(i)
    out = torch.empty(len(reads))
    with torch.no_grad():
        for start in range(0, len(unique), batch_size):
            chunk = unique[start:start + batch_size]
            ids, mask = _pad([torch.cat([encoded[p], torch.tensor(rest, dtype=torch.long)]) for p, rest in chunk],
                             lm.device)
            logits = lm.forward(ids, attention_mask=mask)
            for row, key in enumerate(chunk):
                for i in at_seq[key]:
                    _, n, tids = reads[i]
                    at = torch.arange(n - 1, n + len(tids) - 1, device=logits.device)
                    logprobs = logits[row, at].float().log_softmax(-1)
                    out[i] = torch.exp(logprobs[torch.arange(len(tids), device=logits.device),
                                                tids.to(logits.device)].mean()).cpu()
    return out


def target_probs(lm: LM, prompts: list[str], targets: list[str], batch_size: int = 16) -> torch.Tensor:
    """P(target | prompt) for every prompt and every target, ``[n_prompts, n_targets]`` float32 on the CPU.
    Targets are continuation texts with their leading space (``" Paris"``); see :func:`pair_probs`."""
    prompts, targets = _texts(prompts, "prompts"), _texts(targets, "targets")
    flat = pair_probs(lm, [p for p in prompts for _ in targets], [t for _ in prompts for t in targets], batch_size)
    return flat.view(len(prompts), len(targets))


def compare(lm: LM, prompts: list[str], new: str, true: str) -> dict:
    """Per prompt: ``p_new``, ``p_true`` (``[n]`` tensors) and ``new_wins`` (bool ``[n]``, p_new > p_true)."""
    probs = target_probs(lm, prompts, [new, true])
    return {"p_new": probs[:, 0], "p_true": probs[:, 1], "new_wins": probs[:, 0] > probs[:, 1]}


# ---- next-token distributions ------------------------------------------------------------------------
def next_token_dists(lm: LM, prompts: list[str], batch_size: int = 16) -> torch.Tensor:
    """Float32 log-probabilities of the next token after each prompt, ``[n, vocab]`` on the CPU (right-padded
    batches; each row is read at its prompt's own last position)."""
    ids = [lm.encode(p).cpu() for p in _texts(prompts, "prompts")]
    rows = []
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            padded, mask = _pad(chunk, lm.device)
            logits = lm.forward(padded, attention_mask=mask)
            last = torch.tensor([len(x) - 1 for x in chunk], device=logits.device)
            rows.append(logits[torch.arange(len(chunk), device=logits.device), last].log_softmax(-1).cpu())
    return torch.cat(rows)


def kl(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """KL(P_before ‖ P_after) in nats per row, ``[n]``, of log-probabilities ``[n, vocab]`` (as from
    :func:`next_token_dists`). Tokens with zero probability before contribute nothing."""
    if before.shape != after.shape:
        raise InputError(f"before {tuple(before.shape)} and after {tuple(after.shape)} must have the same shape.")
    before, after = before.float(), after.float()
    terms = before.exp() * (before - after)
    return torch.where(torch.isneginf(before), torch.zeros_like(terms), terms).sum(-1)


# ---- generation and fluency --------------------------------------------------------------------------
def generate_ids(lm: LM, prompts: list[str], n_tokens: int = 100, top_k: int = 5, seed: int = 0) -> list[list[int]]:
    """The generated token ids of each prompt (see :func:`generate`), without the stop token."""
    prompts = _texts(prompts, "prompts")
    for name, value in (("n_tokens", n_tokens), ("top_k", top_k)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}.")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer, got {seed!r}.")
    return [_sample(lm, lm.encode(p), n_tokens, top_k, torch.Generator().manual_seed(seed + i))
            for i, p in enumerate(prompts)]


def generate(lm: LM, prompts: list[str], n_tokens: int = 100, top_k: int = 5, seed: int = 0) -> list[str]:
    """Top-k sampled continuations (ROME's fluency generations: top-k 5), only the generated text.

    Prompts run one by one with a KV cache; prompt ``i`` samples from its own CPU ``torch.Generator`` seeded
    ``seed + i`` (never the global RNG), so ``generate(lm, ps, seed=s)[i] == generate(lm, [ps[i]], seed=s + i)[0]``
    and the draws do not depend on the device. A text ends before a stop token (``lm.stop_ids``), after
    ``n_tokens`` new tokens, or at the model's context length. (ROME's ``max_out_len=100`` counts the prompt
    too; here ``n_tokens`` counts only new tokens.)"""
    return [lm.tokenizer.decode(ids) for ids in generate_ids(lm, prompts, n_tokens, top_k, seed)]


def _sample(lm: LM, ids: torch.Tensor, n_tokens: int, top_k: int, generator: torch.Generator) -> list[int]:
    out: list[int] = []
    cache = None
    step = ids[None]
    with torch.no_grad():
        while len(out) < n_tokens and len(ids) + len(out) < lm.n_ctx:
            result = kv.forward(lm.model, step, cache=cache, use_cache=True, last_only=True)
            cache = kv.cache_of(result)
            top = result.logits[0, -1].float().topk(min(top_k, result.logits.shape[-1]))
            probs = top.values.softmax(-1).cpu()  # = the full softmax restricted to the top k, renormalised
            token = int(top.indices[torch.multinomial(probs, 1, generator=generator)].item())
            if token in lm.stop_ids:
                break
            out.append(token)
            step = torch.tensor([[token]], device=lm.device)
    return out


def words(text: str) -> list[str]:
    """Word tokens for n-gram statistics: runs of word characters, and each other non-space character alone
    (``\\w+|[^\\w\\s]``), case kept. A stand-in for ROME's ``nltk.word_tokenize``, which splits contractions
    (``don't`` -> ``do n't``) where this gives ``don ' t``; counts on ordinary prose differ little."""
    return _WORD.findall(text)


def ngram_entropy(texts: list[str]) -> float:
    """ROME's generation entropy (fluency, "GE"), in bits: per text, ``(2/3 · H2 + 4/3 · H3) / 2`` where ``Hn``
    is the entropy ``−Σ p log2 p`` of the text's n-gram frequency distribution over :func:`words`; then the
    plain mean over texts. (ROME: ``compute_n_gram_entropy`` with ``ns=[2, 3]``, ``weights=[2/3, 4/3]``,
    returning ``mean(weights · entropies)``.) A text with fewer than n words has ``Hn = 0``. Repetitive
    text scores low; ROME reports ~6.22 (×100 = 622) unedited on GPT-2 XL."""
    texts = _texts(texts, "texts", allow_empty_text=True)
    return sum(_text_entropy(words(t)) for t in texts) / len(texts)


def _text_entropy(tokens: list[str]) -> float:
    entropies = []
    for n in (2, 3):
        counts = Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        total = sum(counts.values())
        entropies.append(-sum(c / total * math.log2(c / total) for c in counts.values()))
    return (2 / 3 * entropies[0] + 4 / 3 * entropies[1]) / 2


# ---- one fact ----------------------------------------------------------------------------------------
def fact_scores(lm: LM, fact: dict, before: dict | None = None) -> dict:
    """ROME's per-fact scores on a fact of ``facts.jsonl`` / CounterFact, for the model as it is now.

    - ``efficacy`` (ES): 1.0 if P(new) > P(true) on the fact's prompt, else 0.0; ``efficacy_magnitude`` (EM):
      P(new) − P(true) there.
    - ``paraphrase`` (PS) and ``paraphrase_magnitude``: the means of the same over the paraphrases.
    - ``neighbourhood`` (NS): the mean over neighbour prompts of [P(own) > P(new)], ``neighbourhood_magnitude``:
      of P(own) − P(new), where "new" is the edited fact's ``target_new`` and "own" the neighbour's own object.
      In CounterFact every neighbour's object is the fact's ``target_true`` (a bare prompt here means that);
      our facts' neighbours name their own objects, so the question stays "did the edit pull this other
      subject to the new object?". A neighbour whose own object *is* ``target_new`` cannot tell and is left
      out (``counted`` False); with none counted both are ``None``.
    - Raw probabilities: ``prompt`` {p_new, p_true}, ``paraphrases`` and ``neighbours`` (lists of dicts).
    - ``neighbour_logprobs``: next-token log-probs ``[n_neighbours, vocab]`` after each neighbour prompt;
      given a ``before`` result (of the unedited model), also ``neighbour_kl`` (per prompt) and
      ``neighbourhood_kl`` (their mean): KL(before ‖ now), in nats, a locality measure that sees more than
      two objects.

    Two batched forwards: one over every (prompt, object) pair, one over the neighbour prompts."""
    for key in ("prompt", "target_true", "target_new"):
        if not isinstance(fact.get(key), str) or not fact[key].strip():
            raise InputError(f"The fact needs a non-empty {key!r}; got {fact.get(key)!r}.")
    new, true = object_target(fact["target_new"]), object_target(fact["target_true"])
    paraphrases = list(fact.get("paraphrases") or [])
    neighbours = [(n, true) if isinstance(n, str) else (n["prompt"], object_target(n.get("target") or true))
                  for n in fact.get("neighborhood") or []]
    pairs = [(fact["prompt"], new), (fact["prompt"], true)]
    pairs += [(p, t) for p in paraphrases for t in (new, true)]
    pairs += [(p, t) for p, own in neighbours for t in (new, own)]
    probs = pair_probs(lm, [p for p, _ in pairs], [t for _, t in pairs]).tolist()
    p_new, p_true = probs[0], probs[1]
    para = [{"prompt": p, "p_new": probs[2 + 2 * i], "p_true": probs[3 + 2 * i]} for i, p in enumerate(paraphrases)]
    base = 2 + 2 * len(paraphrases)
    neigh = [{"prompt": p, "target": own, "p_new": probs[base + 2 * i], "p_target": probs[base + 2 * i + 1],
              "counted": own != new} for i, (p, own) in enumerate(neighbours)]
    counted = [n for n in neigh if n["counted"]]
    out = {
        "efficacy": float(p_new > p_true),
        "efficacy_magnitude": p_new - p_true,
        "paraphrase": _mean([float(x["p_new"] > x["p_true"]) for x in para]),
        "paraphrase_magnitude": _mean([x["p_new"] - x["p_true"] for x in para]),
        "neighbourhood": _mean([float(x["p_target"] > x["p_new"]) for x in counted]),
        "neighbourhood_magnitude": _mean([x["p_target"] - x["p_new"] for x in counted]),
        "prompt": {"prompt": fact["prompt"], "p_new": p_new, "p_true": p_true},
        "paraphrases": para,
        "neighbours": neigh,
        "neighbour_logprobs": next_token_dists(lm, [p for p, _ in neighbours]) if neighbours else None,
    }
    if before is not None and out["neighbour_logprobs"] is not None:
        if before.get("neighbour_logprobs") is None or before["neighbour_logprobs"].shape != out["neighbour_logprobs"].shape:
            raise InputError("`before` must be fact_scores of the same fact on the same model (before the edit).")
        per_prompt = kl(before["neighbour_logprobs"], out["neighbour_logprobs"]).tolist()
        out["neighbour_kl"], out["neighbourhood_kl"] = per_prompt, _mean(per_prompt)
    return out


# ---- summaries ---------------------------------------------------------------------------------------
def harmonic_mean(values) -> float:
    """The harmonic mean of non-negative values; 0 if any is 0 (ROME's score S = H(ES, PS, NS))."""
    values = [float(v) for v in values]
    if not values or any(v < 0 or math.isnan(v) for v in values):
        raise InputError(f"harmonic_mean needs one or more non-negative numbers, got {values!r}.")
    if any(v == 0 for v in values):
        return 0.0
    return len(values) / sum(1 / v for v in values)


def aggregate(scores: list[dict]) -> dict:
    """Means over facts of :func:`fact_scores` results (a fact with no paraphrase or counted neighbour is left
    out of that mean), and ``score`` = S = harmonic mean of the mean ES, PS and NS (SCIENCE §8)."""
    if not scores:
        raise InputError("aggregate needs the scores of at least one fact.")
    keys = ["efficacy", "efficacy_magnitude", "paraphrase", "paraphrase_magnitude", "neighbourhood",
            "neighbourhood_magnitude", "neighbourhood_kl"]
    out = {k: _mean([s[k] for s in scores if s.get(k) is not None]) for k in keys}
    parts = [out[k] for k in ("efficacy", "paraphrase", "neighbourhood")]
    out["score"] = None if None in parts else harmonic_mean(parts)
    return out


# ---- helpers -----------------------------------------------------------------------------------------
def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _texts(texts, name: str, allow_empty_text: bool = False) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise InputError(f"{name} must be a list of strings, got {type(texts).__name__}.")
    if not texts:
        raise InputError(f"{name} is empty: give at least one.")
    for t in texts:
        if not isinstance(t, str) or (not allow_empty_text and not t.strip()):
            raise InputError(f"Every entry of {name} must be non-empty text, got {t!r}.")
    return list(texts)


def _pad(seqs: list[torch.Tensor], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ``[pos]`` id tensors to ``[batch, max_pos]`` (pad id 0, masked out) with the attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)], mask[i, :len(s)] = s, 1
    return ids.to(device), mask.to(device)
