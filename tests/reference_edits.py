"""ROME, r-ROME, MEMIT and AlphaEdit written out plainly, the way the research code computes them.

The project's edits are tested against these, and ``benchmarks/bench_editing.py`` times one against the
other. Everything here is deliberately straightforward and shares nothing with ``ffn_widgets.editing``: one
unpadded forward per prompt and per step (every block, every position), δ added by a hook of its own, the KL
term through ``F.kl_div(init, current, log_target=True)`` as the reference calls it, keys averaged as the
reference's ``compute_u`` / ``compute_ks`` do, the updates in the reference's own orientation. Inputs the
reference draws at random (the context prefixes) and the key statistics C are given, so both sides see the
same ones.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _hook_output(module, edit):
    """A forward hook that passes ``module``'s output (a tensor or a tuple's first) through ``edit``."""
    def hook(m, args, output):
        out = output[0] if isinstance(output, tuple) else output
        new = edit(out.reshape(-1, out.shape[-1])).reshape(out.shape)  # one row: [T, d] whatever the layout
        return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new
    return module.register_forward_hook(hook)


def plain_keys(lm, layer, texts, subject, after):
    """``[n, d_mlp]`` float64: the down projection's input at the subject's last token, one forward per text."""
    down = lm.site_module("neurons", layer)
    keys = []
    for text, a in zip(texts, after):
        ids = lm.encode(text)
        spot = lm.find_subject(text, subject, a)[1] - 1
        got = {}
        h = down.register_forward_pre_hook(lambda m, args: got.setdefault("k", args[0].reshape(-1, lm.d_mlp)))
        try:
            with torch.no_grad():
                lm.model(input_ids=ids[None])
        finally:
            h.remove()
        keys.append(got["k"][spot].double().cpu())
    return torch.stack(keys)


def plain_output(lm, module, text, subject):
    """``module``'s output at the subject's last token of ``text`` (float64)."""
    got = {}
    spot = lm.find_subject(text, subject)[1] - 1
    h = _hook_output(module, lambda x: got.setdefault("out", x))
    try:
        with torch.no_grad():
            lm.model(input_ids=lm.encode(text)[None])
    finally:
        h.remove()
    return got["out"][spot].double().cpu()


def reference_value(lm, module, contexts, after, subject, target_ids, settings):
    """ROME's ``compute_v`` loop (MEMIT's ``compute_z`` with the block as ``module``): returns (δ, v_init,
    losses). Loss = mean NLL of the target + kl_factor · KL(edited ‖ original) on "{subject} is a" +
    weight_decay · ‖δ‖ / ‖v_init‖²; Adam; stop under ``stop_loss``; clamp ‖δ‖ ≤ clamp · ‖v_init‖."""
    kl_text = settings.kl_prompt.format(subject)
    prompts = [(torch.cat([lm.encode(c), torch.as_tensor(target_ids[:-1], dtype=torch.long, device=lm.encode(c).device)]),
                lm.find_subject(c, subject, a)[1] - 1, len(lm.encode(c))) for c, a in zip(contexts, after)]
    kl_ids, kl_spot = lm.encode(kl_text), lm.find_subject(kl_text, subject)[1] - 1
    delta = torch.zeros(lm.d_model, device=next(module.parameters()).device, requires_grad=True)
    state = {}

    def run(ids, spot):
        def add(x):
            state.setdefault("v_init", x[spot].detach().clone())  # the bare prompt's, first of all
            return torch.cat([x[:spot], x[spot:spot + 1] + delta, x[spot + 1:]])
        h = _hook_output(module, add)
        try:
            return torch.log_softmax(lm.model(input_ids=ids[None]).logits[0].float(), -1)
        finally:
            h.remove()

    opt, losses = torch.optim.Adam([delta], lr=settings.lr), []
    frozen = [p for p in lm.model.parameters() if p.requires_grad]
    for p in frozen:  # as the reference does (set_requires_grad(False, model)): gradients for δ only
        p.requires_grad_(False)
    try:
        return _optimise(lm, run, prompts, kl_ids, kl_spot, target_ids, delta, state, opt, settings, losses)
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _optimise(lm, run, prompts, kl_ids, kl_spot, target_ids, delta, state, opt, settings, losses):
    kl_init = None
    for it in range(settings.steps):
        nlls = []
        for ids, spot, n in prompts:  # one forward per prompt; the target's tokens read from it
            logp = run(ids, spot)
            nlls.append(-torch.stack([logp[n - 1 + j, t] for j, t in enumerate(target_ids)]).mean())
        nll = torch.stack(nlls).mean()
        kl_now = run(kl_ids, kl_spot)[kl_spot][None]
        if kl_init is None:
            kl_init = kl_now.detach().clone()
        kl = settings.kl_factor * F.kl_div(kl_init, kl_now, log_target=True, reduction="batchmean")
        decay = settings.weight_decay * (delta.norm() / state["v_init"].norm() ** 2)
        loss = nll + kl + decay
        losses.append({k: float(v.detach()) for k, v in (("loss", loss), ("nll", nll), ("kl", kl), ("decay", decay))})
        if losses[-1]["loss"] < settings.stop_loss or it == settings.steps - 1:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            limit = settings.clamp * state["v_init"].norm()
            if delta.norm() > limit:
                delta.mul_(limit / delta.norm())
    return delta.detach().double().cpu(), state["v_init"].double().cpu(), losses


def _oriented(lm, layer):
    """The down projection's weight as ``[out, in]`` float64, and its bias (zeros where it has none)."""
    module = lm.site_module("neurons", layer)
    w = module.weight.detach().double().cpu()
    w = w.T if type(module).__name__ == "Conv1D" else w
    b = module.bias.detach().double().cpu() if getattr(module, "bias", None) is not None else torch.zeros(w.shape[0])
    return w, b


def reference_rome(lm, prompt, subject, target, layer, prefixes, C, settings, method="r-rome"):
    """ΔW ``[out, in]`` of one edit, unapplied. ROME: Λ = (v* − (W k + b)) / ((C⁻¹k*)ᵀ k) with k the bare
    prompt's key; r-ROME: k̄* (the prefix average) in the numerator and the denominator."""
    texts = [""] + list(prefixes)
    contexts, after = [p + prompt for p in texts], [len(p) for p in texts]
    keys = plain_keys(lm, layer, contexts, subject, after)
    k_star, k_prompt = keys.mean(0), keys[0]  # compute_u: a flat mean over the bare prompt and every prefix
    delta, v_init, losses = reference_value(lm, lm.site_module("neurons", layer), contexts, after, subject,
                                            lm.target_ids(target), settings)
    u = torch.linalg.solve(C.double(), k_star)
    w, b = _oriented(lm, layer)
    k = k_prompt if method == "rome" else k_star
    right = (v_init + delta - (w @ k + b)) / (u @ k)
    return torch.outer(right, u), delta, losses


def reference_batch(lm, requests, layers, prefixes, Cs, settings, method="memit", preserved=None):
    """MEMIT's ``execute_memit`` (AlphaEdit's, with ``method="alphaedit"``) on ``lm`` itself: each layer's
    update is written before the next layer's keys are read. Returns the ΔW per layer and the targets Z."""
    texts = [""] + list(prefixes)
    groups = [[""]] + [list(prefixes[sum(c for _, c in settings.prefix_lengths[:g]):][:n])
                       for g, (_, n) in enumerate(settings.prefix_lengths)]
    zs = []
    for r in requests:
        delta, z_init, _ = reference_value(lm, lm.blocks[layers[-1]], [p + r["prompt"] for p in texts],
                                           [len(p) for p in texts], r["subject"], lm.target_ids(r["target_new"]),
                                           settings)
        zs.append(z_init + delta)
    Z = torch.stack(zs, 1)  # [d_model, n]
    out = []
    for i, layer in enumerate(layers):
        ks = []
        for r in requests:  # compute_ks: the mean of each context type's mean
            means = [plain_keys(lm, layer, [p + r["prompt"] for p in g], r["subject"], [len(p) for p in g]).mean(0)
                     for g in groups]
            ks.append(torch.stack(means).mean(0))
        K = torch.stack(ks, 1)  # [d_mlp, n]
        cur = torch.stack([plain_output(lm, lm.blocks[layers[-1]], r["prompt"], r["subject"]) for r in requests], 1)
        resid = (Z - cur) / (len(layers) - i)
        C = Cs[layer].double()
        if method == "memit":
            upd = resid @ torch.linalg.solve(settings.mom2_weight * C + K @ K.T, K).T
        else:
            U, S, _ = torch.linalg.svd(C, full_matrices=False)
            small = U[:, S < settings.nullspace_threshold]
            P = small @ small.T
            cache = preserved[layer] if preserved else torch.zeros_like(C)
            upd = torch.linalg.solve(P @ (K @ K.T + cache) + settings.l2 * torch.eye(len(C), dtype=C.dtype),
                                     P @ K @ resid.T).T
        module = lm.site_module("neurons", layer)
        with torch.no_grad():
            w = module.weight
            w.add_((upd.T if type(module).__name__ == "Conv1D" else upd).to(w.device, w.dtype))
        out.append(upd)
    return out, Z.T
