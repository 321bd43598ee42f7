"""Lesson 6: rewriting a fact with ROME, and where to edit."""
from make_lessons import code, exercise, md, solution

NAME = "06_rome"
TITLE = "Rewriting a fact: ROME"
TIME = "75 s the first time (key statistics), 57 s after"  # measured: one thread of a shared 2-core CPU, kernel start and model load included
SUMMARY = ("Treat one MLP's down projection as a key-value memory and write a new value for the subject's key: "
           "a rank-one edit. Where to edit: every localisation method side by side, and where edits actually work.")

SETUP = code("""import torch

import ffn_widgets as fw

lm = fw.load_model()
fact = {**fw.load_facts()[0], "target_new": "Rome"}     # ROME's own example: the Eiffel Tower, moved to Rome
PROMPT, SUBJECT, NEW = fact["prompt"], fact["subject"], " Rome"
TOKENS = fw.lessons.TOKENS        # tokens of key statistics C (8,192 here; ROME's reference uses 100,000 texts)
LAYER = fw.default_layer(lm)      # layer 4: where edits of this model work best (notebook 04)
print(PROMPT, "→", NEW, "| edit layer", LAYER)""")

LESSON = [
    md(f"""# Lesson 6 · Rewriting a fact: ROME

*Part of the lesson series ([index](00_index.ipynb)). Run time on a laptop CPU: {TIME}.*

Lesson 5 found the fact being recalled through the early MLPs at the subject's last token. ROME (Meng et al., NeurIPS 2022) turns that into an edit. Read one MLP's down projection W as a linear **key → value memory**: the neuron activations at the subject's last token form a key k, and W·k is the value written into the stream. To make the model believe *"The Eiffel Tower is located in the city of Rome"*:

1. **Key** k*: the down projection's input at the subject's last token (*' Tower'*), averaged over the prompt and 20 short texts the model writes itself as prefixes (so the key is the subject's, not this sentence's).
2. **Value** v* = W·k* + δ: δ is optimised (Adam, at most 20 steps) so that with δ added at the subject, the model says *Rome*, while a KL term keeps *"The Eiffel Tower is a"* as it was.
3. **Update**: W ← W + δ (C⁻¹k*)ᵀ / (k*·C⁻¹k*), where C = E[kkᵀ] is the second moment of the layer's keys over Wikipedia text. This is the smallest change (in the metric C) that maps k* to v*: directions that ordinary keys rarely take absorb it.

The change is a **rank-one** matrix. On GPT-2 XL (edit layer 17 of 48) ROME reached efficacy 100%, paraphrase 96.4% and neighbourhood 75.4% on CounterFact (efficacy: the new object beats the old on the prompt; paraphrase: on rewordings; neighbourhood: other subjects keep their own object).

But **where** to edit? ROME picked the layer from causal tracing. Hase et al. (NeurIPS 2023, *Does Localization Inform Editing?*) checked on GPT-J and found that where tracing localises a fact barely predicts where editing it works best: the layer matters, the trace of the fact hardly at all. This lesson starts there."""),
    SETUP,
    md("""The key statistics C of the layers used below, in one pass over the corpus (cached on disk after the first time):"""),
    code("""EDIT_LAYERS = [0, 4, 12, 20, 28]   # the layers where the screen below tries an edit
SAMPLES = 3                        # noise samples of its traces
SETTINGS = fw.RomeSettings()       # the edit after it: ROME's 20 prefixes, up to 20 steps""",
         metadata={"tags": ["parameters"]}),
    code("""fw.key_statistics(lm, sorted({*EDIT_LAYERS, LAYER}), tokens=TOKENS, progress=False);"""),
    md("""## Where to edit: every localisation method side by side

`fw.Localize` measures, per layer: causal tracing's MLP indirect effect at the last subject token (one layer restored, and a window of 10), the layer's share of the knowledge-neuron attribution (lesson 4), the logit lens's gain for the target across the MLP (lesson 1), the MLP's direct push on the target's logit and how many of the layer's strongest neurons write it (lesson 3), and, at the edit layers, the success of a **ROME edit made at that layer** (undone at once). Quick settings keep the edits fast: 3 noise samples, 4 prefixes and at most 10 optimisation steps per edit. Click a layer for its top neurons."""),
    code("""screen = fw.Localize(lm, fact, edit_layers=EDIT_LAYERS, samples=SAMPLES, tokens=TOKENS,
                     edit_kwargs={"settings": fw.lessons.quick_settings()})
screen"""),
    code("""loc = screen.wait()
loc.to_frame().loc[EDIT_LAYERS, ["trace_mlp", "trace_mlp_window", "kn_mass", "edit_efficacy", "edit_paraphrase",
                                 "edit_neighbourhood", "edit_rewrite"]].round(3)"""),
    md("""Read the table column by column. For this fact the MLP trace at *' Tower'* is faint everywhere (notebook 04 shows the model recognising the Eiffel Tower already at *'iffel'*), yet the edit succeeds at several early and middle layers and fails near the top. That is Hase et al.'s observation in one fact: tracing did not tell us where editing works. `fw.localize_many(lm, facts, edit_layers=...)` repeats it over many facts and fits what the layer alone explains against what the layer plus the trace explains.

## The edit, with ROME's full settings

Now the real thing at layer 4: 20 prefixes, up to 20 steps. The loss curve shows the optimisation of δ; the report compares before and after on the prompt, its paraphrases and neighbouring facts (other landmarks), and the model's own continuation."""),
    code("""e = fw.rome_edit(lm, PROMPT, SUBJECT, NEW, layer=LAYER, tokens=TOKENS, settings=SETTINGS, progress=False)
print(e)
e.figure()"""),
    code("""report = e.report(fact)
print(report)"""),
    md("""| | ROME, GPT-2 XL (CounterFact) | here, this edit (above) | here, 43 dev facts each edited alone (measured once, README) |
|---|---|---|---|
| efficacy: new object beats the old on the prompt | 100% | see the prompt row | 97.7% |
| paraphrase | 96.4% | see the paraphrase rows | 83.7% |
| neighbourhood: other subjects keep their object | 75.4% | see the neighbour rows | 99.4% |

(The 43-fact run used 100,000 tokens of key statistics and r-ROME, the default here: the same as ROME except that numerator and denominator use the prefix-averaged key k*, so the edited layer maps k* exactly to v*, which avoids ROME's occasional explosion; Gupta et al. 2024.)

## The editor

The same edit as a view: type a new object, pick a layer (the strip under the chooser shows the trace's MLP effect per layer), press **Apply**; each edit lands in the model's **edit log** with its own **Undo**. The edit made above is already in the log."""),
    code("""fw.Editor(lm, PROMPT, subject=SUBJECT, target=NEW, layer=LAYER, fact=fact, tokens=TOKENS,
          layer_hint=loc.measures["trace_mlp_window"].tolist(), hint_label="MLP trace (window 10)")"""),
    md("""## Exercises, with the edit in place

Worked answers: [solutions/06_rome.ipynb](solutions/06_rome.ipynb)."""),
    *exercise("6.1", "How large is the change the edit made to layer 4's down projection, ‖ΔW‖ (the Frobenius norm "
                     "of the weights now minus the weights as loaded)? `with lm.edits.original():` gives you the "
                     "weights as loaded inside the block."),
    *exercise("6.2", "Find a prompt that does **not** mention the Eiffel Tower, whose next token the edit changed to "
                     "`' Rome'` (before the edit the model said something else). ROME reads its key at the "
                     "subject's **last** token, *' Tower'*…", placeholder='answer = None  # a prompt, e.g. "..."'),
    md("""## Undo, to the bit

The log keeps the original of every matrix it touched, so undo restores the weights exactly (it never subtracts in floating point), checked with the fingerprint of every weight's bytes:"""),
    code("""e.undo()
print(lm.edits)
print("the weights as loaded, bit for bit:", lm.fingerprint == lm.edits.base_fingerprint)"""),
    *exercise("6.3", "Name a layer where a quick ROME edit of the Eiffel Tower to Rome (`fw.lessons.quick_settings()`, "
                     "`TOKENS` tokens of statistics, as in the localisation screen) **fails**: afterwards the model "
                     "still prefers `' Paris'` to `' Rome'` on the prompt."),
]

SOLUTION = [
    md("""# Solutions · Lesson 6: ROME

[Back to the lesson](../06_rome.ipynb)."""),
    SETUP,
    code("""SETTINGS = fw.RomeSettings()   # ROME's 20 prefixes, up to 20 steps""", metadata={"tags": ["parameters"]}),
    code("""e = fw.rome_edit(lm, PROMPT, SUBJECT, NEW, layer=LAYER, tokens=TOKENS, settings=SETTINGS, progress=False)
print(e)"""),
    *solution("6.1", "The down projection now and as loaded (`lm.values` is that matrix, transposed: same norm).",
              """W_now = lm.values(LAYER).detach().clone()
with lm.edits.original():
    W_then = lm.values(LAYER).detach().clone()
answer = float((W_now - W_then).norm())
print(f"‖ΔW‖ = {answer:.3f}; rank {int(torch.linalg.matrix_rank(W_now - W_then))}")"""),
    *solution("6.2", "Other subjects ending in *Tower*: the edit spills onto some of them.",
              """def top(prompt):
    return lm.token_strings([int(lm.logits(prompt)[-1].argmax())])[0]

towers = [f"The {name} Tower is located in the city of" for name in ("CN", "Tokyo", "Blackpool", "Sears", "Willis")]
with lm.edits.original():
    before = {p: top(p) for p in towers}
after = {p: top(p) for p in towers}
for p in towers:
    print(f"{p!r}: {before[p]!r} → {after[p]!r}")
answer = next(p for p in towers if after[p] == NEW and before[p] != NEW)"""),
    code("""e.undo()"""),
    *solution("6.3", "Edit high in the network: the last layers' MLPs no longer hold the subject's key, and the edit "
                     "cannot win against what the layers below already wrote.",
              """settings = fw.lessons.quick_settings()
paris, rome = lm.target_ids(" Paris")[0], lm.target_ids(NEW)[0]
for layer in (28, 24):
    with fw.rome_edit(lm, PROMPT, SUBJECT, NEW, layer=layer, tokens=TOKENS, settings=settings, progress=False):
        p = torch.softmax(lm.logits(PROMPT)[-1], -1)
    print(f"layer {layer}: p(' Rome') {float(p[rome]):.3f}, p(' Paris') {float(p[paris]):.3f}")
    if p[rome] <= p[paris]:
        answer = layer
        break"""),
]
