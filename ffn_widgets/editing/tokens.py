"""Token plumbing shared by the editing methods: padded batches and the model-written context prefixes."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model import LM, kv


@dataclass
class Batch:
    ids: torch.Tensor  # [rows, pos], right-padded
    mask: torch.Tensor  # [rows, pos], 1 on real tokens


def pad_batch(lm: LM, rows: list[list[int]]) -> Batch:
    """Right padding (causal models read each row's real tokens exactly as unpadded)."""
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.as_tensor(r)
        mask[i, :len(r)] = 1
    return Batch(ids.to(lm.device), mask.to(lm.device))


def start_token(lm: LM) -> int:
    """Where model-written prefixes begin: the document separator when the vocabulary has GPT-2's
    ``<|endoftext|>`` (as the reference starts), else the BOS, else the EOS token."""
    tok = lm.tokenizer
    sep = tok.convert_tokens_to_ids("<|endoftext|>")
    if isinstance(sep, int) and sep != tok.unk_token_id and sep is not None:
        return sep
    for candidate in (tok.bos_token_id, tok.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def generate_prefixes(lm: LM, lengths=((5, 10), (10, 10)), seed: int = 0, top_k: int = 5,
                      starts: tuple[str, ...] = ()) -> list[str]:
    """Short texts the model writes itself, each followed by ". ": ``(tokens, how many)`` per group, top-k
    sampling from a generator seeded with ``seed`` (the global RNG is untouched). With ``starts`` (MEMIT:
    "The", "Therefore", …) the texts of a group begin with those words in turn, else at the document start.
    Special tokens are never sampled; braces are dropped and blank lines joined, as the reference does."""
    gen = torch.Generator().manual_seed(int(seed))
    banned = torch.as_tensor(sorted(lm.stop_ids | set(lm.tokenizer.all_special_ids)), device=lm.device)
    out = []
    for length, count in lengths:
        if starts:  # rows of different start lengths run one at a time: no padding to get wrong
            heads = [lm.tokenizer(starts[i % len(starts)], add_special_tokens=False)["input_ids"] for i in range(count)]
            rows = [head + _sample(lm, [head], length, gen, banned, top_k)[0] for head in heads]
        else:
            rows = _sample(lm, [[start_token(lm)]] * count, length, gen, banned, top_k)
        for row in rows:
            text = lm.tokenizer.decode(row, skip_special_tokens=True)
            out.append(text.replace("\n\n", " ").replace("{", "").replace("}", "") + ". ")
    return out


def _sample(lm: LM, heads: list[list[int]], length: int, gen, banned, top_k) -> list[list[int]]:
    """``length`` top-k sampled tokens after each head (heads of one length), with a key/value cache."""
    new, cache, generated = torch.as_tensor(heads, device=lm.device), None, []
    with torch.no_grad():
        for _ in range(length):
            output = kv.forward(lm.model, new, cache, last_only=True)
            cache = kv.cache_of(output)
            logits = output.logits[:, -1].float()
            logits[:, banned[banned < logits.shape[-1]].to(logits.device)] = float("-inf")
            top = logits.topk(top_k, -1)
            pick = torch.multinomial(torch.softmax(top.values, -1).cpu(), 1, generator=gen)
            new = top.indices.gather(1, pick.to(top.indices.device)).to(lm.device)
            generated.append(new)
    return torch.cat(generated, 1).tolist()
