"""Exercises of lessons 1–3 (the logit lens, keys, values). Each registers its question, its hint and a checker
that computes the right answer from the model in the kernel; a wrong answer is told what was found for it,
never the right answer."""
from __future__ import annotations

import torch

from ..model import InputError
from . import PROMPT, TARGET, exercise
from .common import _close, _gain, _int, _layer, _lens_tops, _tid, _top_text, _units, _value_logits


# ---- lesson 1: the residual stream and the logit lens ------------------------------------------------------
@exercise("1.1", "At which layer (counting from 0) does ' Paris' first become the logit lens's top-1 token at the "
          "last position of 'The Eiffel Tower is located in the city of' (the lens after each block)?",
          "lens = fw.logit_lens(lm, prompt, target=' Paris'); lens.ranks[:, -1] is the target's rank after each "
          "block at the last position (0 = top-1). Layers count from 0.")
def _first_top(lm, answer):
    tops, _ = _lens_tops(lm, PROMPT)
    tid, layer = _tid(lm, TARGET), lm.check_layer(_int(answer, "a layer number"))
    right = next((i for i, t in enumerate(tops) if t == tid), None)
    if layer == right:
        return True, f"' Paris' is the lens's top-1 token from layer {layer} on: the prediction forms late."
    if tops[layer] == tid:
        return False, f"' Paris' is top-1 after layer {layer}, but that is not the first layer where it is."
    return False, f"After layer {layer} the lens's top-1 token is {_top_text(lm, tops[layer])!r}."


@exercise("1.2", "Which layer's MLP raises p(' Paris') the most at the last position of the Eiffel Tower prompt "
          "(the lens after the block minus the lens before its MLP)?",
          "lens.probs[:, -1] - lens.mid.probs[:, -1]: 'mid' is the residual stream before the layer's MLP.")
def _mlp_gain(lm, answer):
    run, tid = lm.run(PROMPT, capture=("mlp_out", "resid_post")), _tid(lm, TARGET)
    post, mlp = run.resid_post[:, -1], run.mlp_out[:, -1]
    gain = torch.softmax(lm.unembed(post), -1)[:, tid] - torch.softmax(lm.unembed(post - mlp), -1)[:, tid]
    layer = lm.check_layer(_int(answer, "a layer number"))
    right = float(gain[layer]) >= float(gain.max()) - 1e-3
    found = f"The MLP of layer {layer} changes p(' Paris') by {float(gain[layer]):+.3f}"
    return right, found + (": more than any other layer's MLP." if right else "; another layer's MLP adds more.")


@exercise("1.3", "Write a prompt whose next-token prediction (a word or number) is already the lens's top-1 token "
          "after each of the last six layers.",
          "Most facts settle only in the last two or three layers. Very predictable continuations settle "
          "earlier: lists, counting, fixed phrases. Look with fw.logit_lens(lm, prompt).figure().")
def _settled(lm, answer):
    if not isinstance(answer, str):
        raise ValueError(f"expected a prompt (a string), got {type(answer).__name__}")
    tops, final = _lens_tops(lm, answer)
    text = _top_text(lm, final)
    if not any(ch.isalnum() for ch in text):
        return False, f"The model's prediction is {text!r}: pick a prompt whose next token is a word or number."
    late = [layer for layer in range(max(0, lm.n_layers - 6), lm.n_layers) if tops[layer] != final]
    if late:
        return False, (f"The prediction is {text!r}, but after layer {late[-1]} the lens's top-1 is still "
                       f"{_top_text(lm, tops[late[-1]])!r}.")
    settled = min(layer for layer in range(lm.n_layers) if all(t == final for t in tops[layer:]))
    return True, f"{text!r} is the lens's top-1 from layer {settled} on."


# ---- lesson 2: keys -----------------------------------------------------------------------------------------
@exercise("2.1", "At the last token of the Eiffel Tower prompt, which neuron of layer 20 has the largest "
          "activation, and what is that activation, computed by hand from the weights? Answer (neuron, value).",
          "run.activations[20, -1].argmax() finds the neuron. By hand: x = block.post_attention_layernorm(resid_mid) "
          "with resid_mid = run.resid_pre[20, -1] + run.attn_out[20, -1]; then m = silu(x·g)·(x·u) with g and u "
          "row i of block.mlp.gate_proj.weight and block.mlp.up_proj.weight.")
def _key_by_hand(lm, answer, layer: int = 20):
    layer = _layer(lm, layer)
    neuron, value = answer
    acts = lm.run(PROMPT, capture=("neurons",)).activations[layer, -1]
    right, neuron = int(acts.argmax()), lm.check_neuron(_int(neuron, "a neuron"))
    if neuron != right:
        return False, f"Neuron {neuron} reaches {float(acts[neuron]):.3f} there; another neuron goes higher."
    if not _close(value, float(acts[right]), rel=1e-3, abs_=1e-3):
        return False, f"Neuron {neuron} is the one, but {float(value):.4g} is not its activation."
    return True, f"Neuron {neuron} fires at {float(acts[right]):.3f}: its key matches this residual stream best."


def _neuron_of(lm, neuron) -> tuple[int, int]:
    if neuron is None:
        raise InputError("name the neuron: check(..., neuron=(layer, neuron))")
    return lm.check_unit(_units(neuron)[0])


@exercise("2.2", "Write a sentence of your own (not from the corpus) on which the lesson's neuron fires at least as "
          "strongly as on its 10th-best trigger example. Check it with neuron=(layer, neuron), index=index.",
          "Read its triggers (index.top(layer, neuron)): what do their last tokens share, and what comes just "
          "before them? Write a sentence with the same pattern, then look at lm.run(sentence).activations.")
def _own_trigger(lm, answer, neuron=None, index=None):
    layer, n = _neuron_of(lm, neuron)
    if index is None:
        raise InputError("pass the trigger index: check('2.2', sentence, neuron=(layer, n), index=index)")
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError("expected a sentence (a string)")
    if any(answer.strip() in s for s in index.sentences):
        return False, "That text is in the corpus: write a sentence of your own."
    threshold = index.top(layer, n, 10)[-1].activation
    run = lm.run(answer, capture=("neurons",))
    acts = run.activations[layer, :, n]
    best = int(acts.argmax())
    return float(acts[best]) >= threshold, (f"L{layer}.N{n} fires {float(acts[best]):.3f} at {run.tokens[best]!r}; "
                                            f"its 10th-best trigger in the corpus reaches {threshold:.3f}.")


def kurtosis_texts() -> list[str]:
    """Exercise 2.3's texts: the first 30 sentences of the default corpus."""
    from ..memories.corpus import load_corpus

    return load_corpus().sentences[:30]


@exercise("2.3", "Over every token of the first 30 sentences of fw.load_corpus() (one lm.run per sentence), what "
          "is the excess kurtosis of the lesson's neuron's activations? Check it with neuron=(layer, neuron).",
          "Excess kurtosis = mean((x − μ)⁴) / mean((x − μ)²)² − 3 over all the activations together "
          "(scipy.stats.kurtosis(x) computes the same); a Gaussian gives 0.")
def _kurtosis(lm, answer, neuron=None):
    layer, n = _neuron_of(lm, neuron)
    acts = lm.memo(("lessons: activations over the kurtosis texts", layer, n), lambda: torch.cat(
        [lm.run(s, capture=("neurons",)).activations[layer, :, n] for s in kurtosis_texts()]).double())
    x = acts - acts.mean()
    k = float((x ** 4).mean() / (x ** 2).mean() ** 2 - 3)
    if not _close(answer, k, rel=0.02, abs_=0.05):
        return False, f"{float(answer):.4g} is not the excess kurtosis of L{layer}.N{n} over those {len(acts)} tokens."
    shape = "far above a Gaussian's 0: silent on most tokens, firing hard on a few" if k > 3 else "a Gaussian has 0"
    return True, f"Excess kurtosis {k:.1f} ({shape})."


# ---- lesson 3: values ---------------------------------------------------------------------------------------
def _contributions(lm, layer: int) -> torch.Tensor:
    """``[d_mlp]``: m_i · (W_U (g ⊙ v_i))[Paris] at the last position (the final norm's 1/σ left out: one
    positive factor for every neuron)."""
    acts = lm.run(PROMPT, capture=("neurons",)).activations[layer, -1]
    direction = lm.W_U[_tid(lm, TARGET)].detach().float().cpu() * _gain(lm)
    return acts * (lm.values(layer).detach().float().cpu() @ direction)


@exercise("3.1", "Which neuron of layer 29 contributes the most to the logit of ' Paris' at the last position of the "
          "Eiffel Tower prompt (its activation times its value vector read through the unembedding)?",
          "fw.top_neurons(lm, prompt, layer=29, by='contribution', target=' Paris'), or by hand: "
          "m = run.activations[29, -1]; m * (lm.values(29) @ (lm.W_U[paris_id] * final_norm_gain)).")
def _top_contributor(lm, answer, layer: int = 29):
    layer = _layer(lm, layer)
    c = _contributions(lm, layer)
    neuron = lm.check_neuron(_int(answer, "a neuron"))
    right = float(c[neuron]) >= float(c.max()) - 1e-6 * abs(float(c.max()))
    found = f"L{layer}.N{neuron} adds {float(c[neuron]):+.3f} to the logit of ' Paris' (before the final norm's 1/σ)"
    return right, found + (": no neuron of that layer adds more." if right else "; another neuron adds more.")


@exercise("3.2", "Where does ' Paris' rank among the tokens that neuron (exercise 3.1's answer) writes? Read its "
          "value vector through the unembedding, times the sign of its activation; 0 is the top token.",
          "v = lm.values(29)[neuron] * sign(m); logits = lm.unembed(v) (the final norm only rescales a single "
          "vector, so the ranking is the same); rank = (logits > logits[paris_id]).sum().")
def _paris_rank(lm, answer, layer: int = 29):
    layer, tid = _layer(lm, layer), _tid(lm, TARGET)
    c = _contributions(lm, layer)
    neuron = int(c.argmax())
    sign = lm.run(PROMPT, capture=("neurons",)).activations[layer, -1, neuron].sign()
    logits = _value_logits(lm, layer, [neuron], sign[None])[0]
    rank = int((logits > logits[tid]).sum())
    if abs(_int(answer, "a rank") - rank) <= 2:
        return True, (f"' Paris' is number {rank} of {len(logits):,} in what L{layer}.N{neuron} writes: it adds to "
                      "' Paris' because it fires hard, not because its value is about Paris.")
    return False, f"{answer} is not the rank of ' Paris' in L{layer}.N{neuron}'s signed value projection."


@exercise("3.3", "At the last position of the Eiffel Tower prompt, take layer 24's ten strongest memories (largest "
          "|m_i|·‖v_i‖). For how many is the top token of m_i·v_i (through the unembedding) the same as the top token "
          "of the whole MLP output of layer 24?",
          "strength = m.abs() * lm.values(24).norm(dim=1); for each of the top 10, read sign(m_i)·v_i through the "
          "unembedding; compare with the unembedding of run.mlp_out[24, -1] (fw.value_tokens(...).top and "
          ".bottom help: a negative m_i turns the bottom tokens into the top).")
def _composition(lm, answer, layer: int = 24):
    layer = _layer(lm, layer)
    run = lm.run(PROMPT, capture=("neurons", "mlp_out"))
    m = run.activations[layer, -1]
    strongest = (m.abs() * lm.values(layer).detach().float().cpu().norm(dim=1)).topk(10).indices
    mem_tops = _value_logits(lm, layer, strongest, m[strongest].sign()).argmax(-1)
    out_top = int(((run.mlp_out[layer, -1] * _gain(lm)) @ lm.W_U.detach().float().cpu().T).argmax())
    count = int((mem_tops == out_top).sum())
    if _int(answer, "a count") != count:
        return False, f"Not {answer} of the ten: count again (the layer output's top token is {_top_text(lm, out_top)!r})."
    return True, (f"{count} of the ten strongest memories share the layer's top token {_top_text(lm, out_top)!r}: the "
                  "output is a composition of many memories.")
