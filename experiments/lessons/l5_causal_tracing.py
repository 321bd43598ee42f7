"""Lesson 5: where facts live, causal tracing and activation patching."""
from make_lessons import code, exercise, md, solution

NAME = "05_causal_tracing"
TITLE = "Where facts live: causal tracing and activation patching"
TIME = "about 30 s"  # measured: one thread of a shared 2-core CPU, kernel start and model load included
SUMMARY = ("Corrupt the subject, then restore one hidden state at a time: the states that bring the answer back "
           "are where the fact is recalled. ROME found an early MLP site at the subject and a late attention site.")

PARAMETERS = code("""SAMPLES = 10   # noise samples of the live trace (ROME's 10)""", metadata={"tags": ["parameters"]})

SETUP = code("""import torch

import ffn_widgets as fw

lm = fw.load_model()
PROMPT, SUBJECT, TARGET = "The iPod was developed by", "The iPod", " Apple"
CORRUPTED = "The Kindle was developed by"     # another subject with as many tokens, for activation patching""")

LESSON = [
    md(f"""# Lesson 5 · Where facts live: causal tracing and activation patching

*Part of the lesson series ([index](00_index.ipynb)). Run time on a laptop CPU: {TIME}.*

Lessons 3 and 4 asked which neurons *write* an answer. Meng et al. (NeurIPS 2022, *Locating and Editing Factual Associations in GPT*, the ROME paper) asked a different question: **where, in layers and tokens, is the fact recalled?** Their method, *causal tracing*, uses three runs:

1. **Clean**: the prompt as it is; p(answer) is high.
2. **Corrupted**: Gaussian noise added to the subject's token embeddings (σ = 3 × the standard deviation of embedding entries, 10 seeded samples), so the model no longer knows what the subject is; p(answer) drops.
3. **Restored**: the corrupted run again, but with **one** hidden state put back to its clean value, at one layer and one token. If that one state brings p(answer) back, the information needed to recall the fact passes through it.

The **indirect effect** of a state is p(restored) − p(corrupted); the **total effect** is p(clean) − p(corrupted). Three kinds of state: a block's output (the residual stream, *hidden*), and the MLP or attention outputs of a **window of 10 layers** centred on a layer.

On GPT-2 XL, averaged over 1,000 facts, ROME found two sites: an **early site**, the MLP outputs at the **last subject token** in the early-middle layers, and a **late site**, attention at the **last token** in late layers. Their averages: total effect 18.6%; peak indirect effect 8.7% for the hidden state, 6.6% for a single MLP layer (23.6% with a window of 10), 19.4% for attention with a window."""),
    PARAMETERS,
    SETUP,
    md("""## One fact, live

`fw.CausalTrace` computes the three grids and draws them as rows finish (the last token first). Subject tokens are marked with `*`. Hover a cell for p(target) ± its spread over the noise samples and the indirect effect; click an MLP cell for that layer's neurons at that token. The trace runs in the background; the next cell waits for it."""),
    code("""tr = fw.CausalTrace(lm, PROMPT, SUBJECT, samples=SAMPLES)
tr"""),
    code("""res = tr.wait()
hidden = res["hidden"]
print(f"p(clean) = {hidden.p_clean:.3f}, p(corrupted) = {hidden.p_corrupted:.4f}, total effect = {hidden.total_effect:.3f}")
for kind, r in res.items():
    layer, token, p = r.peak()
    print(f"{kind:6s} strongest restoration: layer {layer:2d}, token {r.labels[token]!r}: "
          f"indirect effect {p - r.p_corrupted:.3f}")
res.figure()"""),
    md("""What to look for: in the **MLP** panel, the restorations that matter sit on the subject's last token (*' iPod'*) in the first layers: the early site. In the **attention** panel, only the last token (*' by'*) in late layers: the late site, where attention moves the recalled attribute to the position that predicts. The **hidden** panel joins them: the subject's last token early, then the last token in the late layers.

| | ROME, GPT-2 XL, average over 1,000 facts | here, this fact (above) | here, average over the 43 dev facts (measured once, notebook 03) |
|---|---|---|---|
| total effect | 18.6% | printed above | 36.2% |
| MLP, window of 10 | 23.6%, early layers, last subject token | printed above | 25.1%, layer 4 (layers 0–9), last subject token |
| attention, window of 10 | 19.4%, late layers, last token | printed above | 32.2%, layer 19, last token |
| hidden state | 8.7% | printed above | 37.9%, layer 23, last token |

The same two sites, shifted to this small model's depth: the early MLP site at the subject, the late attention site at the last token.

## Activation patching

Noise is one way to make the model forget the subject. Another is to **swap the subject**: run *"The Kindle was developed by"* (the model says *Amazon*) and restore states from the *iPod* run. Restoring a state that carries "iPod-ness" brings *Apple* back. Same engine, one run instead of 10 noise samples, no randomness. The two prompts need the same number of tokens."""),
    code("""patch = fw.patch_trace(lm, PROMPT, CORRUPTED, kind="all", progress=False)
patch.figure()"""),
    md("""In the hidden-state panel, follow the subject token's row and the last token's row up the layers: the fact sits at the subject until a certain layer, then at the last token. Exercises 5.2 and 5.3 pin down where the hand-over happens.

## Exercises

Worked answers: [solutions/05_causal_tracing.ipynb](solutions/05_causal_tracing.ipynb)."""),
    *exercise("5.1", "How large is the noise σ that causal tracing adds to the subject's embeddings on this model "
                     "(ROME's rule: 3 × the standard deviation of the entries of the token-embedding matrix)?"),
    *exercise("5.2", "In the patching run above (clean *iPod*, corrupted *Kindle*), what is the **last** layer at "
                     "which restoring the clean hidden state (block output) of the **subject token** alone brings "
                     "p(`' Apple'`) back to at least half of its clean value?"),
    *exercise("5.3", "And what is the **first** layer at which restoring the **last token's** hidden state alone "
                     "brings p(`' Apple'`) back to at least half of its clean value?"),
]

SOLUTION = [
    md("""# Solutions · Lesson 5: causal tracing

[Back to the lesson](../05_causal_tracing.ipynb)."""),
    SETUP,
    *solution("5.1", "The embedding matrix's entries, their standard deviation, times three.",
              """E = lm.model.get_input_embeddings().weight
answer = 3 * float(E.std())
print(f"σ = {answer:.4f} (the largest embedding entry is {float(E.abs().max()):.3f})")"""),
    *solution("5.2", "`patch_trace`'s hidden grid: the subject token's column; the last layer at or above half of "
                     "p(clean).", """hidden = fw.patch_trace(lm, PROMPT, CORRUPTED, kind="hidden", progress=False)
subject_token = hidden.subject[1] - 1                   # the token where the prompts differ
column = hidden.scores[:, subject_token]
answer = max(layer for layer in range(lm.n_layers) if column[layer] >= hidden.p_clean / 2)
print(hidden.tokens[subject_token], [round(float(p), 2) for p in column])"""),
    *solution("5.3", "The same grid, the last token's column: the first layer at or above half.",
              """column = hidden.scores[:, -1]
answer = min(layer for layer in range(lm.n_layers) if column[layer] >= hidden.p_clean / 2)
print(hidden.tokens[-1], [round(float(p), 2) for p in column])"""),
]
