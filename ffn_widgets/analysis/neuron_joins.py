"""What else is known about one neuron, joined onto its card: its knowledge-neuron score, its share of a causal
trace's MLP effect, what the edits in ``lm.edits`` did to its value vector, and the prediction with it scaled.

- ``knowledge_score``: the neuron's integrated-gradients score for a fact's prompt (``kn.scores[0]``), its rank
  among every neuron there, and whether :func:`~ffn_widgets.knowledge_neurons` kept it.
- ``trace_share``: in the trace's own corrupted runs (the same noise draws, or the same corrupted prompt),
  restore at token t (default: the last subject token) either the whole MLP output of the neuron's layer or
  only this neuron's activation (its clean value), and read p(target)::

      share = (p(neuron restored) − p(corrupted)) / (p(MLP restored) − p(corrupted))     (means over samples)

  One batched forward holds the corrupted, MLP-restored and neuron-restored rows; its corrupted rows must give
  the trace's p(corrupted) again, or the trace was of other weights or noise and is refused. The shares of a
  layer's neurons need not sum to 1: the network after the layer is not linear.
- ``edit_effect``: the log entries that changed the layer's down projection (value vector i is its column i)
  and the value's top tokens as loaded (``lm.edits.originals``, what ``lm.edits.original()`` restores) and now.
- ``scaled_prediction``: the next-token prediction with the neuron ×scale at every position (the slider engine).
"""
from __future__ import annotations

import torch

from ..model import LM, InputError, Intervention, hooked
from ..tracing.engine import noise_edits
from .values import vector_logits


def knowledge_score(lm: LM, layer: int, neuron: int, kn) -> dict:
    """The neuron in a :class:`~ffn_widgets.KnowledgeNeurons` result (its main prompt's attribution)."""
    if tuple(kn.scores.shape[1:]) != (lm.n_layers, lm.d_mlp):
        raise InputError(f"The knowledge-neuron scores are [layer, neuron] {tuple(kn.scores.shape[1:])}; this model "
                         f"has {(lm.n_layers, lm.d_mlp)}.")
    s = kn.scores[0]
    score, top = float(s[layer, neuron]), float(s.max())
    kept = {(l, i) for l, i, _ in kn.neurons}
    return {"prompt": kn.prompt, "target": kn.target, "score": score, "max": top, "rank": int((s > score).sum()) + 1,
            "of": int(s.numel()), "mean_score": float(kn.scores[:, layer, neuron].mean()), "prompts": len(kn.prompts),
            "threshold": kn.threshold, "candidate": score > kn.threshold * max(top, 0.0),
            "knowledge_neuron": (layer, neuron) in kept, "n_knowledge_neurons": len(kept)}


def one_trace(trace):
    """A :class:`TraceResult` from a result or a :class:`TraceSet` (its MLP part when it has one)."""
    if isinstance(trace, dict):
        if not trace:
            raise InputError("The trace set is empty.")
        return trace.get("mlp") or next(iter(trace.values()))
    if not hasattr(trace, "p_corrupted_samples"):
        raise InputError(f"trace must be a causal trace (fw.causal_trace, fw.patch_trace), got {type(trace).__name__}.")
    return trace


def trace_share(lm: LM, layer: int, neuron: int, trace, token: int | None = None) -> dict:
    """The neuron's share of the MLP's indirect effect at ``token`` in ``trace``'s corruption (see the module doc)."""
    lm.check_unit((layer, neuron))
    tr = one_trace(trace)
    ids = lm.encode(tr.prompt)
    if len(ids) != len(tr.tokens):
        raise InputError("The trace's prompt reads as other tokens on this model: trace it on this model.")
    t = tr.subject[1] - 1 if token is None else int(token)
    if not 0 <= t < len(ids):
        raise InputError(f"token must be in 0..{len(ids) - 1}, got {token}.")
    S = len(tr.p_corrupted_samples)
    if tr.corrupted_prompt is not None:
        corrupt, noise, noised = lm.encode(tr.corrupted_prompt)[None], None, []
    else:
        start, stop = tr.subject
        gen = torch.Generator().manual_seed(0 if tr.seed is None else int(tr.seed))
        noise = (torch.randn(S, stop - start, lm.d_model, generator=gen) * tr.sigma).to(lm.device, lm.dtype)
        corrupt, noised = ids[None].repeat(S, 1), list(range(start, stop))
    batch = torch.cat([ids[None], corrupt, corrupt, corrupt]).to(lm.device)
    mlp_rows, neuron_rows = list(range(S + 1, 2 * S + 1)), list(range(2 * S + 1, 3 * S + 1))
    edits = noise_edits(None if noise is None else noise.repeat(3, 1, 1), noised, list(range(1, 3 * S + 1))) + [
        Intervention("mlp_out", layer, "fn", _restore(mlp_rows, t)),
        Intervention("neurons", layer, "fn", _restore(neuron_rows, t, neuron))]
    with torch.no_grad(), hooked(lm, (), edits):
        p = torch.softmax(lm.forward(batch, last_only=True)[:, -1], -1)[:, tr.target_id].double().cpu()
    p_corrupted, p_mlp, p_neuron = p[1:S + 1], p[S + 1:2 * S + 1], p[2 * S + 1:]
    rtol, atol = (1e-4, 1e-9) if lm.dtype == torch.float32 else (3e-2, 1e-5)  # batch shapes round differently
    if not torch.allclose(p_corrupted, tr.p_corrupted_samples.double(), rtol=rtol, atol=atol):
        raise InputError("This trace's corrupted runs do not come out again on the model as it is now (it was traced "
                         "on other weights, or with another noise seed): trace again to join it.")
    base = float(p_corrupted.mean())
    mlp, own = float(p_mlp.mean()) - base, float(p_neuron.mean()) - base
    cell = float(tr.indirect[layer, t]) if tr.kind == "mlp" else None
    return {"prompt": tr.prompt, "target": tr.target, "token": t, "token_text": tr.tokens[t], "samples": S,
            "p_clean": float(tr.p_clean), "p_corrupted": base, "p_mlp": float(p_mlp.mean()),
            "p_neuron": float(p_neuron.mean()), "mlp_effect": mlp, "neuron_effect": own,
            "share": own / mlp if abs(mlp) > 1e-9 else float("nan"),
            "trace_kind": tr.kind, "trace_window": tr.window, "trace_cell": cell}


def _restore(rows: list[int], token: int, neuron: int | None = None):
    """Copy the clean row's (row 0) state at ``token`` (one neuron of it, or all) into ``rows``."""
    def restore(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        r = torch.tensor(rows, device=x.device)
        if neuron is None:
            x[r, token] = x[0, token]
        else:
            x[r, token, neuron] = x[0, token, neuron]
        return x
    return restore


def edit_effect(lm: LM, layer: int, neuron: int, k: int = 10) -> dict:
    """Which edits touched the layer, and the neuron's value tokens as loaded and now (``value``, None when no
    edit changed its down projection)."""
    lm.check_unit((layer, neuron))
    log = lm.edits
    path = f"{lm.arch.layers}.{layer}.{lm.arch.down}"
    entries = []
    for i, e in enumerate(log.entries):
        writes = any(d.path == path for d in e.deltas)
        if writes or layer in e.layers:
            entries.append({"index": i, "method": e.method, "facts": e.row()["facts"], "layers": list(e.layers),
                            "writes_values": writes})
    out = {"touched": bool(entries), "entries": entries, "value": None}
    if any(e["writes_values"] for e in entries) and path in log.originals:
        now = lm.values(layer)[neuron].detach()
        before = log.originals[path][:, neuron].detach().to(now.device, now.dtype)
        logits = vector_logits(lm, torch.stack([before, now]))
        top = logits.topk(k, dim=-1)
        ids_before, ids_now = top.indices.tolist()
        names = [lm.token_strings(ids) for ids in (ids_before, ids_now)]
        diff = (now.double() - before.double()).norm() / before.double().norm().clamp_min(1e-30)
        cosine = torch.nn.functional.cosine_similarity(now.double(), before.double(), dim=0)
        out["value"] = {"k": k, "before": [[t, float(v)] for t, v in zip(names[0], top.values[0].tolist())],
                        "after": [[t, float(v)] for t, v in zip(names[1], top.values[1].tolist())],
                        "kept": len(set(ids_before) & set(ids_now)),
                        "lost": [t for i, t in zip(ids_before, names[0]) if i not in ids_now],
                        "gained": [t for i, t in zip(ids_now, names[1]) if i not in ids_before],
                        "relative_change": float(diff), "cosine": float(cosine)}
    return out


def scaled_prediction(engine, layer: int, neuron: int, scale: float, k: int = 5) -> dict:
    """The prediction before and with the neuron ×``scale`` (a :class:`~ffn_widgets.SliderEngine` of the prompt)."""
    after = engine.predict({(layer, neuron): scale})

    def summary(p) -> dict:
        return {"p": p.target_prob, "rank": p.target_rank,
                "top": [[t, float(q)] for t, q in zip(p.top_tokens[:k], p.top_probs[:k])]}

    return {"scale": float(scale), "target": engine.target, "before": summary(engine.original), "after": summary(after)}
