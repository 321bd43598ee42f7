"""Exercises of lessons 4–7 (knowledge neurons, causal tracing, ROME, many edits). Each registers its question,
its hint and a checker that computes the right answer from the model in the kernel as it is now (the edits in
its log included); a wrong answer is told what was found for it, never the right answer."""
from __future__ import annotations

import torch

from ..model import InputError
from . import EDIT, NULL_THRESHOLD, PATCH, PROMPT, TARGET, TOKENS, exercise, quick_settings
from .common import (
    _by_layer,
    _close,
    _delta_norms,
    _int,
    _last_probs,
    _layer,
    _log_entry,
    _p_suppressed,
    _patched,
    _tid,
    _top_text,
    _units,
)


# ---- lesson 4: knowledge neurons ----------------------------------------------------------------------------
@exercise("4.1", "Suppress neurons of your choice (×0 at every position) on the Eiffel Tower prompt: what is "
          "p(' Paris') then? Answer (neurons, p), neurons as (layer, neuron) pairs.",
          "with lm.intervene({(layer, neuron): 0.0, ...}): p = torch.softmax(lm.logits(prompt)[-1], -1)[paris_id]; "
          "or the sliders' result.target_prob after set_scale(layer, neuron, 0).")
def _suppressed(lm, answer):
    units, p = (answer["neurons"], answer["p"]) if isinstance(answer, dict) else answer
    units = _units(units)
    right = _p_suppressed(lm, PROMPT, _by_layer(lm, units), _tid(lm, TARGET))
    if _close(p, right, rel=2e-3, abs_=2e-4):
        return True, f"p(' Paris') = {right:.3f} with {len(units)} neuron(s) at 0 (unedited: " \
                     f"{float(_last_probs(lm, PROMPT)[_tid(lm, TARGET)]):.3f})."
    return False, f"With those {len(units)} neuron(s) at 0, p(' Paris') is not {float(p):.4g}. At every position?"


@exercise("4.2", "Find at most three neurons, none of them in layer 0, whose suppression (×0 at every position) "
          "at least halves p(' Paris') on the Eiffel Tower prompt. Answer a list of (layer, neuron) pairs.",
          "Rank neurons of layers 20–29 by their contribution to ' Paris' (fw.top_neurons(..., by='contribution')), "
          "then add them one at a time, keeping the one that lowers p(' Paris') the most (a greedy search).")
def _halving(lm, answer):
    units = _units(answer)
    if not units or len(units) > 3:
        return False, f"That is {len(units)} neurons: give one to three."
    if any(layer == 0 for layer, _ in units):
        return False, "Layer-0 neurons are not allowed: they break every prediction, not this fact."
    tid = _tid(lm, TARGET)
    before, after = float(_last_probs(lm, PROMPT)[tid]), _p_suppressed(lm, PROMPT, _by_layer(lm, units), tid)
    found = f"p(' Paris') goes from {before:.3f} to {after:.3f} ({after / before:.0%} of it)"
    return after <= before / 2, found + ("." if after <= before / 2 else ": not yet half.")


@exercise("4.3", "Integrated gradients' completeness: what is p(' Paris') minus p(' Paris') with every neuron of "
          "layer 28 set to 0 at the last position only?",
          "with lm.intervene({(28, i): 0.0 for i in range(lm.d_mlp)}, positions=[-1]): ... then subtract from "
          "the unedited probability. Compare with kn.scores[0, 28].sum().")
def _completeness(lm, answer, layer: int = 28):
    layer, tid = _layer(lm, layer), _tid(lm, TARGET)
    right = float(_last_probs(lm, PROMPT)[tid]) - _p_suppressed(lm, PROMPT, {layer: slice(None)}, tid, position=-1)
    if _close(answer, right, rel=2e-3, abs_=5e-4):
        return True, f"Zeroing layer {layer} at the last position costs p(' Paris') {right:.3f}."
    return False, f"{float(answer):.4g} is not what zeroing layer {layer} at the last position costs. Only there?"


# ---- lesson 5: causal tracing -------------------------------------------------------------------------------
@exercise("5.1", "How large is the noise σ that causal tracing adds to the subject's embeddings on this model "
          "(ROME's rule: 3 × the standard deviation of the embedding entries)?",
          "E = lm.model.get_input_embeddings().weight; 3 * E.std().")
def _sigma(lm, answer):
    emb = lm.model.get_input_embeddings().weight.detach().float()
    sigma = 3 * float(emb.std())
    if _close(answer, sigma, rel=1e-3):
        return True, f"σ = {sigma:.4f}: each subject token's embedding is moved far from any real token."
    return False, f"{float(answer):.4g} is not 3 × the standard deviation of this model's embedding entries."


def _patch_curve(lm, which: str) -> tuple[list[float], float, int]:
    """p(target) with the clean block output restored at the subject token (or the last token), per layer
    (remembered until the weights change)."""
    return lm.memo(("lessons: patch curve", which), lambda: _compute_patch_curve(lm, which))


def _compute_patch_curve(lm, which: str) -> tuple[list[float], float, int]:
    clean, corrupted, target = PATCH
    a, b = lm.encode(clean), lm.encode(corrupted)
    position = int((a != b).nonzero()[-1]) if which == "subject" else len(a) - 1
    tid = _tid(lm, target)
    states = lm.run(clean, capture=("resid_post",)).resid_post
    curve = [_patched(lm, states, corrupted, layer, position, tid) for layer in range(lm.n_layers)]
    return curve, float(_last_probs(lm, clean)[tid]), position


@exercise("5.2", "Patching 'The iPod was developed by' into 'The Kindle was developed by': what is the LAST layer at "
          "which restoring the clean hidden state (block output) of the subject token alone brings p(' Apple') back "
          "to at least half of its clean value?",
          "fw.patch_trace(lm, clean, corrupted, kind='hidden').scores[:, 1] is p(' Apple') with the subject "
          "token's state restored after each layer; compare with half of .p_clean.")
def _subject_until(lm, answer):
    curve, p_clean, _ = _patch_curve(lm, "subject")
    layer = lm.check_layer(_int(answer, "a layer number"))
    right = max((i for i, p in enumerate(curve) if p >= p_clean / 2), default=None)
    found = f"Restoring ' iPod' after layer {layer} gives p(' Apple') = {curve[layer]:.3f} (clean {p_clean:.3f})"
    return layer == right, found + ("; after the next layer it no longer does." if layer == right else ".")


@exercise("5.3", "In the same patching, what is the FIRST layer at which restoring the last token's hidden state "
          "alone brings p(' Apple') back to at least half of its clean value?",
          "fw.patch_trace(...).scores[:, -1]: the last token's row. Between 5.2's layer and this one, the fact "
          "moves from the subject to the last token.")
def _last_from(lm, answer):
    curve, p_clean, _ = _patch_curve(lm, "last")
    layer = lm.check_layer(_int(answer, "a layer number"))
    right = min((i for i, p in enumerate(curve) if p >= p_clean / 2), default=None)
    found = f"Restoring ' by' after layer {layer} gives p(' Apple') = {curve[layer]:.3f} (clean {p_clean:.3f})"
    return layer == right, found + ("; no earlier layer does." if layer == right else ".")


# ---- lesson 6: ROME -----------------------------------------------------------------------------------------
@exercise("6.1", "With your ROME edit in place, how large is the change of the edited down projection, ‖ΔW‖ "
          "(Frobenius norm of the weights now minus the weights as loaded)?",
          "W_now = lm.values(layer).detach().clone(); with lm.edits.original(): W_then = lm.values(layer)."
          "detach().clone(); then (W_now - W_then).norm().")
def _update_norm(lm, answer):
    entry = _log_entry(lm, ("ROME", "r-ROME"))
    (layer, norm), = _delta_norms(lm, entry).items()
    if _close(answer, norm, rel=1e-3):
        return True, f"‖ΔW‖ = {norm:.2f} at layer {layer}: one rank-one matrix, ‖δ‖·‖C⁻¹k*‖ / (k*·C⁻¹k*)."
    return False, f"{float(answer):.4g} is not ‖ΔW‖ of the last ROME edit (layer {layer})."


@exercise("6.2", "Find a prompt that does not mention the edited subject by name, whose next token the edit "
          "changed to the new object (before the edit it was something else).",
          "ROME reads its key at the subject's LAST token (' Tower'). Other subjects that end the same way may "
          "share much of that key. Compare lm.logits(prompt) with and without `with lm.edits.original():`.")
def _bleed(lm, answer):
    if not isinstance(answer, str):
        raise ValueError(f"expected a prompt (a string), got {type(answer).__name__}")
    entry = _log_entry(lm, ("ROME", "r-ROME"))
    fact = entry.facts[0]
    words = [w for w in fact["subject"].split() if w.lower() not in {"the", "a", "an", "of"}]
    named = words[:-1] if len(words) > 1 else words
    if any(w.lower() in answer.lower() for w in named):
        return False, f"That prompt names the subject ({' '.join(named)}): find one about something else."
    new = _tid(lm, fact["target"])
    after = int(_last_probs(lm, answer).argmax())
    with lm.edits.without(entry):
        before = int(_last_probs(lm, answer).argmax())
    found = f"Before the edit: {_top_text(lm, before)!r}; after: {_top_text(lm, after)!r}"
    if after == new and before != new:
        return True, found + ": the edit reached a subject it was not meant for."
    return False, found + "."


@exercise("6.3", "Name a layer where a quick ROME edit of 'The Eiffel Tower → Rome' (fw.lessons.quick_settings(), "
          "fw.lessons.TOKENS) fails: afterwards the model still prefers ' Paris' to ' Rome' on the prompt.",
          "The localisation screen's edit rows (screen.result.to_frame()['edit_efficacy']): 0 means the edit at "
          "that layer did not make ' Rome' beat ' Paris'. Edits high in the network tend to fail.")
def _failing_layer(lm, answer):
    from ..editing.rome import rome_edit
    from ..data.facts import target

    layer = lm.check_layer(_int(answer, "a layer number"))
    new, true = _tid(lm, target(EDIT["target_new"])), _tid(lm, target(EDIT["target_true"]))
    with lm.edits.temporary():
        rome_edit(lm, EDIT["prompt"], EDIT["subject"], target(EDIT["target_new"]), layer, tokens=TOKENS,
                  settings=quick_settings(), progress=False)
        p = _last_probs(lm, EDIT["prompt"])
    found = f"Edited at layer {layer}: p(' Rome') = {float(p[new]):.3f}, p(' Paris') = {float(p[true]):.3f}"
    return bool(p[new] <= p[true]), found + ("." if p[new] <= p[true] else ": that edit worked.")


# ---- lesson 7: many edits -----------------------------------------------------------------------------------
@exercise("7.1", "AlphaEdit writes only into the null space of the key statistics C = E[kkᵀ] (eigenvalues below "
          "0.02). At layer 4, with fw.lessons.TOKENS tokens of statistics, how many of the layer's directions is that?",
          "C = fw.key_statistics(lm, 4, tokens=fw.lessons.TOKENS); torch.linalg.eigvalsh(C) gives the eigenvalues.")
def _null_space(lm, answer, layer: int | None = None):
    from ..editing.rome import default_layer
    from ..editing.stats import key_statistics

    layer = default_layer(lm) if layer is None else lm.check_layer(layer)
    eig = torch.linalg.eigvalsh(key_statistics(lm, layer, tokens=TOKENS, progress=False))
    count = int((eig < NULL_THRESHOLD).sum())
    if abs(_int(answer, "a count") - count) <= 2:
        return True, f"{count} of {lm.d_mlp} directions: keys of real text almost never point there."
    return False, f"{answer} is not the number of C's eigenvalues below {NULL_THRESHOLD} at layer {layer}."


@exercise("7.2", "In the long r-ROME run measured on this model (fw.measured_runs()), after how many edits did "
          "retention (the share of earlier edits still holding) first fall below 95%?",
          "run = next(r for r in fw.measured_runs() if r.settings['method'] == 'r-rome'); run.to_frame() has one row "
          "per measurement with its 'edits' and 'retention'.")
def _retention_drop(lm, answer, method: str = "r-rome"):
    from ..editing.compare import measured_runs

    run = next((r for r in measured_runs() if r.settings.get("method") == method), None)
    if run is None:
        raise InputError(f"no measured {method} run ships with this installation")
    first = next((r["edits"] for r in run.rows if r["retention"] is not None and r["retention"] < 0.95), None)
    edits = _int(answer, "a number of edits")
    row = next((r for r in run.rows if r["edits"] == edits), None)
    if edits == first:
        return True, (f"After {edits} edits {row['retention']:.0%} of the earlier edits still held: the forgetting is "
                      "gradual, and it comes and goes as later edits overwrite or restore earlier ones.")
    if row is None:
        return False, f"The {method} run was measured every few edits; {edits} is not one of its measurements."
    retention = "–" if row["retention"] is None else f"{row['retention']:.0%}"
    return False, f"After {edits} edits retention was {retention}" + (
        "; it had already fallen below 95% earlier." if row["retention"] is not None and row["retention"] < 0.95
        else ".")


@exercise("7.3", "With your MEMIT (or AlphaEdit) batch in place, which layer of its range did it change the most "
          "(the largest ‖ΔW‖)?",
          "For each layer of the batch (b.layers): the weights now minus the weights inside "
          "`with lm.edits.original():`, or sum the norms of b.entry.deltas per layer.")
def _memit_layer(lm, answer):
    entry = _log_entry(lm, ("MEMIT", "AlphaEdit"))
    norms = _delta_norms(lm, entry)
    layer = _int(answer, "a layer number")
    if layer not in norms:
        return False, f"Layer {layer} is not in the batch's range ({', '.join(map(str, norms))})."
    right = norms[layer] >= max(norms.values()) * (1 - 1e-6)
    found = f"‖ΔW‖ at layer {layer}: {norms[layer]:.2f}"
    return right, found + (", the largest of the range." if right else "; another layer of the range changed more.")
