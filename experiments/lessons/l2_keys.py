"""Lesson 2: keys, what makes a neuron fire."""
from make_lessons import code, exercise, md, solution

NAME = "02_keys"
TITLE = "Keys: what makes a neuron fire"
TIME = "30 s the first time (mining a corpus slice), 18 s after"  # measured: one thread of a shared 2-core CPU, kernel start and model load included
SUMMARY = ("An MLP neuron is a key that matches patterns in the residual stream. Its trigger examples from a corpus "
           "and the histogram of its activations show what it detects.")

SETUP = code("""from collections import Counter

import numpy as np
import torch

import ffn_widgets as fw

lm = fw.load_model()
PROMPT = "The Eiffel Tower is located in the city of"
corpus = fw.load_corpus()                  # 107 Wikipedia articles (CC BY-SA) shipped with gensim, split into sentences
index = fw.cached_triggers(lm, corpus)     # the full trigger index, if `python -m ffn_widgets mine` made one
if index is None:                          # otherwise every 120th sentence: mined once (seconds), then cached on disk
    index = fw.mine_triggers(lm, fw.Corpus(corpus.sentences[::120], "wikipedia[::120]"), progress=False)
index""")

FIND = code("""def same_last_token(layer):
    \"\"\"Per neuron: the most common last token of its top triggers, and the share of triggers ending in it.\"\"\"
    sid, pos = np.asarray(index.sentence_ids[layer]), np.asarray(index.positions[layer])
    last = np.asarray(index.token_ids)[np.asarray(index.offsets)[sid] + pos]      # [neuron, trigger]
    return [(token, count / last.shape[1]) for token, count in (Counter(row.tolist()).most_common(1)[0] for row in last)]

LAYER = 1
common = same_last_token(LAYER)
words = [n for n, (token, _) in enumerate(common) if lm.token_strings([token])[0].strip().isalpha()]
NEURON = max(words, key=lambda n: common[n][1])       # the most regular word detector (lowest number on ties)
print(f"layer {LAYER}, neuron {NEURON}: {common[NEURON][1]:.0%} of its top triggers end in "
      f"{lm.token_strings([common[NEURON][0]])[0]!r}")""")

LESSON = [
    md(f"""# Lesson 2 · Keys: what makes a neuron fire

*Part of the lesson series ([index](00_index.ipynb)). Run time on a laptop CPU: {TIME}.*

Geva et al. (EMNLP 2021, *Transformer Feed-Forward Layers Are Key-Value Memories*) read an MLP layer as a memory. Written as FF(x) = f(x·K)·V, each neuron *i* has

- a **key**: the input weights that decide how strongly it fires on the residual stream x. Its activation m_i (the *memory coefficient*) is large when x matches the key;
- a **value** v_i: what it writes into the stream, m_i·v_i (lesson 3).

This model's MLPs are gated (SwiGLU): m_i = silu(x·g_i) · (x·u_i), so the key is the pair (g_i, u_i). The idea is the same.

What does a key detect? Geva et al. ran a corpus through the model and, for each key, kept the 25 prefixes ("I", "I love", "I love you", …) on which it fired most: its **trigger examples**. In their 16-layer model, the triggers of lower-layer keys shared *shallow* patterns (the same last word, a short n-gram), and those of upper-layer keys *semantic* ones (a topic, a kind of context). You will reproduce both on this model, and see that a neuron is silent almost everywhere: its activations are extremely *leptokurtic*."""),
    SETUP,
    md("""The index holds, for every neuron of every layer, its top 25 prefixes in the corpus and a histogram of all its activations. One forward pass scores every prefix of a sentence at once (the activation at a token *is* the activation for the prefix ending there), so mining costs one pass per sentence.

## Activations of one prompt

`run.activations[layer, token, neuron]` is m_i at every layer and token. The heatmap shows each layer × token cell's largest |activation|; click a cell for its neurons."""),
    code("""run = lm.run(PROMPT)
print(tuple(run.activations.shape), "= [layer, token, neuron]")
fw.ActivationHeatmap(lm, PROMPT)"""),
    md("""## A shallow key in a low layer

In layer 1, take the neuron whose top triggers most often end in the *same word*. Its triggers are a surface pattern: the last token is what it detects, whatever comes before."""),
    FIND,
    code("""import pandas as pd

pd.DataFrame([{"activation": round(t.activation, 2), "prefix": t.before[-50:], "trigger token": repr(t.token),
               "next token": repr(t.next_token)} for t in index.top(LAYER, NEURON, 12)])"""),
    md("""The neuron card puts everything about a neuron together: its triggers (last token highlighted), the histogram of all its activations over the corpus, the tokens its value promotes (lesson 3), and what it does on a prompt of your own."""),
    code("""fw.NeuronCard(lm, LAYER, NEURON, index=index, prompt=PROMPT)"""),
    md("""## Silent almost everywhere

The histogram is on a log scale. Nearly all of the neuron's activations sit in the bins around zero; the triggers are the far tail. A key is a detector that stays quiet until its pattern appears."""),
    code("""index.figure(LAYER, NEURON)"""),
    md("""## Shallow low, contextual high?

Geva et al. asked how much a key depends on the *last token* of its triggers. The same test here: put each trigger's last token after a neutral context ("In this text, the next word is") and divide the neuron's activation there by its activation in the original sentence. A ratio near 1: the token alone fires the key (shallow). Near 0: the key needs the sentence around the token (contextual). The median over 20 random neurons of each layer, 3 triggers each:"""),
    code("""dep = fw.token_dependence(lm, index, layers=[0, 1, 2, 4, 8, 14, 20, 26, 29], neurons=20, triggers=3)
dep.figure()"""),
    code("""dep.to_frame().round(2)"""),
    md("""| | Geva et al. 2021 (16-layer LM, WikiText-103, experts reading triggers) | here (SmolLM2-135M, measured above) |
|---|---|---|
| lowest layers | triggers share shallow patterns: the same last word or n-gram | layer 0: the trigger token alone gives back about all of the activation |
| higher layers | triggers share semantic patterns: a topic, a context | from layer 1 on, the token alone gives back only a small fraction |

The shift from shallow to contextual happens here too, but sharply and early: in this model only layer 0 reads the token by itself. Even the layer-1 detector above is rarely a pure word detector: look at the words just before its trigger token in the table. Exercise 2.2 builds on that.

The slice mined here is small (about 4,700 tokens); `python -m ffn_widgets mine` mines the whole corpus (about 537,000 tokens, 20 minutes or so on a laptop) and this notebook then uses it.

## Exercises

Worked answers: [solutions/02_keys.ipynb](solutions/02_keys.ipynb)."""),
    *exercise("2.1", "At the last token of `PROMPT`, which neuron of layer 20 has the largest activation, and what "
                     "is its activation, **computed by hand from the weights**? For this model: x = "
                     "`block.post_attention_layernorm(resid_mid)` with `block = lm.model.model.layers[20]` and "
                     "`resid_mid = run.resid_pre[20, -1] + run.attn_out[20, -1]`; then m = silu(x·g)·(x·u) with g and "
                     "u row *i* of `block.mlp.gate_proj.weight` and `block.mlp.up_proj.weight`. Answer "
                     "`(neuron, value)`.", placeholder="answer = None  # (neuron, activation)"),
    md("""**Exercise 2.2.** Write a sentence of your own (not copied from the corpus) on which the shallow neuron `(LAYER, NEURON)` fires at least as strongly as on its 10th-best trigger example."""),
    code("""answer = None  # a sentence
fw.lessons.check("2.2", answer, neuron=(LAYER, NEURON), index=index)"""),
    md("""**Exercise 2.3.** How leptokurtic is it? Over every token of the first 30 sentences of `corpus` (one `lm.run` per sentence), compute the **excess kurtosis** of the neuron's activations: mean((x − μ)⁴) / mean((x − μ)²)² − 3. A Gaussian gives 0."""),
    code("""answer = None  # a number
fw.lessons.check("2.3", answer, neuron=(LAYER, NEURON))"""),
]

SOLUTION = [
    md("""# Solutions · Lesson 2: keys

[Back to the lesson](../02_keys.ipynb)."""),
    SETUP,
    FIND,
    *solution("2.1", "Find the neuron with `argmax`, then rebuild its activation from the block's own modules.",
              """run = lm.run(PROMPT)
neuron = int(run.activations[20, -1].argmax())
block = lm.model.model.layers[20]
with torch.no_grad():
    x = block.post_attention_layernorm(run.resid_pre[20, -1] + run.attn_out[20, -1])
    m = torch.nn.functional.silu(x @ block.mlp.gate_proj.weight[neuron]) * (x @ block.mlp.up_proj.weight[neuron])
print(f"neuron {neuron}: by hand {float(m):.4f}, hooked {float(run.activations[20, -1, neuron]):.4f}")
answer = (neuron, float(m))"""),
    *solution("2.2", "The triggers share their last word, and what comes before it matters too (with the slice mined here: *produced as*, *trained as*, a verb before *as*). Write a few new sentences like that and keep the strongest.",
              """shared = lm.token_strings([common[NEURON][0]])[0]
print("the triggers mostly end in", repr(shared), "; the 10th-best reaches", round(index.top(LAYER, NEURON, 10)[-1].activation, 2))
candidates = [f"The metal is produced{shared} a fine grey powder.", f"She trained{shared} a pilot in the navy.",
              f"The plan was proposed{shared} a compromise.", f"He is known{shared} a patient teacher."]
candidates += [f"Yesterday I read that {' '.join(t.text.split()[-4:])} nothing else."   # the triggers' own endings
               for t in index.top(LAYER, NEURON, 5)]
peak = {s: float(lm.run(s, capture=("neurons",)).activations[LAYER, :, NEURON].max()) for s in candidates}
answer = max(peak, key=peak.get)
for sentence in sorted(peak, key=peak.get, reverse=True)[:4]:
    print(f"{peak[sentence]:6.2f}  {sentence}")""",
              check='assert fw.lessons.check("2.2", answer, neuron=(LAYER, NEURON), index=index)'),
    *solution("2.3", "Collect the neuron's activation at every token of each sentence, then the fourth moment.",
              """acts = torch.cat([lm.run(s, capture=("neurons",)).activations[LAYER, :, NEURON] for s in corpus.sentences[:30]])
x = acts.double() - acts.double().mean()
answer = float((x ** 4).mean() / (x ** 2).mean() ** 2 - 3)
print(f"{len(acts)} activations, excess kurtosis {answer:.1f}")""",
              check='assert fw.lessons.check("2.3", answer, neuron=(LAYER, NEURON))'),
]
