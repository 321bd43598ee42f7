"""Lesson 3: values, what a neuron writes."""
from make_lessons import code, exercise, md, solution

NAME = "03_values"
TITLE = "Values: what a neuron writes"
TIME = "18 s the first time, 9 s after"  # measured: one thread of a shared 2-core CPU, kernel start and model load included
SUMMARY = ("A neuron's value vector, read through the unembedding, promotes some tokens and suppresses others. "
           "Upper-layer values often predict what follows their triggers; a layer's output is a composition of "
           "many values.")

SETUP = code("""import torch

import ffn_widgets as fw

lm = fw.load_model()
PROMPT = "The Eiffel Tower is located in the city of"
corpus = fw.load_corpus()
index = fw.cached_triggers(lm, corpus)     # as in lesson 2: the full index if mined, else a slice (cached on disk)
if index is None:
    index = fw.mine_triggers(lm, fw.Corpus(corpus.sentences[::120], "wikipedia[::120]"), progress=False)
index""")

LESSON = [
    md(f"""# Lesson 3 · Values: what a neuron writes

*Part of the lesson series ([index](00_index.ipynb)). Run time on a laptop CPU: {TIME}.*

When neuron *i* fires with activation m_i, the MLP adds m_i·v_i to the residual stream, where v_i is the neuron's **value vector** (a row of the down projection). Geva et al. (EMNLP 2021) read a value the same way the logit lens reads the stream: through the output embedding, W_U·v_i. Its top tokens are what the memory **promotes**, its bottom tokens what it **suppresses** (a negative m_i swaps the two).

They reported two findings, both reproduced below:

1. **Agreement.** In the upper layers, a value's top token is often the token that actually *follows* the key's trigger examples in the corpus: the key recognises a context, the value predicts what comes next. Up to 3.5% of a layer's memories agree on the top trigger's next token, against about 0.0004% for a random token (1 / vocabulary).
2. **Composition.** The MLP's output is the sum of all its memories, and its top token differs from the top token of every single memory in at least 68% of examples: the layer's prediction is a *composition*, not the winner of a vote.

Geva et al. (EMNLP 2022) then wrote one neuron's push on a target token t at one position as m_i·(W_U v_i)[t] (its **contribution** to t's logit, up to the final norm's scale): the neurons that matter for a prediction are those with large contributions."""),
    SETUP,
    md("""## One value vector

A neuron in the top layers whose value agrees with its triggers: for each neuron of layers 26–29, count how many of its 25 triggers are followed by its value's top token, and take the best."""),
    code("""best = None
for layer in (26, 27, 28, 29):
    top1 = fw.value_top_tokens(lm, layer)[0][:, :1]            # [neuron, 1]: each value's top token
    hits = (index.next_token_ids(layer) == top1).sum(1)        # triggers followed by that token
    n = int(hits.argmax())
    if best is None or hits[n] > best[2]:
        best = (layer, n, int(hits[n]))
LAYER, NEURON, hits = best
print(f"L{LAYER}.N{NEURON}: its value's top token follows {hits} of its {index.k} triggers")
fw.value_tokens(lm, LAYER, NEURON, k=8).figure()"""),
    code("""import pandas as pd

pd.DataFrame([{"activation": round(t.activation, 2), "prefix": t.before[-50:], "last token": repr(t.token),
               "next token": repr(t.next_token)} for t in index.top(LAYER, NEURON, 10)])"""),
    md("""The neuron card shows both halves of the memory together: triggers on the left (the real next token after the arrow, green where the value promotes it), the value's promoted and suppressed tokens on the right."""),
    code("""fw.NeuronCard(lm, LAYER, NEURON, index=index, prompt=PROMPT)"""),
    md("""## Agreement and composition, measured

`fw.geva_stats` computes both statistics per layer. **Agreement**: the share of a layer's memories whose value's top token is the token after the key's top trigger (and after any of its 25 triggers), next to chance measured the honest way: the same test with the triggers of randomly permuted neurons (next tokens are far from uniform, so 1/vocabulary alone would flatter the model). **Composition**: at 120 corpus positions, how often the layer output's top token differs from every single memory's top token. Five layers here (each layer's values are projected on the 49,152-token vocabulary once, then cached)."""),
    code("""stats = fw.geva_stats(lm, index, layers=[0, 10, 20, 25, 29], examples=120)
stats.figure("agreement")"""),
    code("""stats.figure("composition")"""),
    code("""f = stats.to_frame()
upper = f[f.layer >= 20]
print(f"agreement, best upper layer: {upper.agreement.max():.2%} of memories "
      f"(permuted-neuron chance {upper.chance.max():.2%}, uniform chance {stats.uniform_chance:.4%})")
print(f"composition: the layer's top token differs from every memory's top token in "
      f"{f.composition.min():.0%}–{f.composition.max():.0%} of positions")
f.round(4)"""),
    md("""| | Geva et al. 2021 (16-layer LM) | here (SmolLM2-135M, printed above) |
|---|---|---|
| agreement with the top trigger's next token, upper layers | up to 3.5% of memories, against ≈0.0004% at random | a few tenths of a percent to about 1%, many times the permuted-neuron chance |
| layer output's top token ≠ every memory's top token | in ≥ 68% of examples | in a smaller share of positions (see below) |

Why less composition? With SwiGLU, every one of the 1,536 neurons has a non-zero coefficient, so "every single memory" offers 1,536 candidate top tokens per position, and the layer's top token is often *some* memory's. `top_memories=10` asks Geva's question about the ten memories that dominate the sum, and composition comes back. (The slice mined here is small and noisy; the full corpus index gives steadier numbers.)"""),
    code("""fw.geva_stats(lm, index, layers=[0, 10, 20, 25, 29], examples=120, top_memories=10).figure("composition")"""),
    md("""## Who pushes ' Paris'?

Contributions on the prompt: the neurons of layer 27 ranked by m_i·(W_U v_i)[' Paris'], each with the tokens its value promotes. The widget below lists them and lets you change layer, position and ranking."""),
    code("""fw.top_neurons(lm, PROMPT, layer=27, by="contribution", target=" Paris").to_frame()"""),
    code("""fw.NeuronList(lm, PROMPT, layer=27, by="contribution", target=" Paris")"""),
    md("""Look at the promoted tokens: the neurons that push ' Paris' hardest rarely have ' Paris' as their top token. They contribute because they fire strongly, and ' Paris' is one of thousands of tokens their value raises a little. The prediction is built from many such pushes (exercises 3.2 and 3.3 measure this).

## Exercises

Worked answers: [solutions/03_values.ipynb](solutions/03_values.ipynb)."""),
    *exercise("3.1", "Which neuron of layer 29 (the last) contributes the most to the logit of `' Paris'` at the last position "
                     "of `PROMPT`?", placeholder="answer = None  # a neuron number"),
    *exercise("3.2", "Where does `' Paris'` rank among the tokens that this neuron writes? Read its value vector "
                     "through the unembedding, times the sign of its activation on the prompt (0 = top token)."),
    *exercise("3.3", "At the last position of `PROMPT`, take layer 24's ten strongest memories (largest "
                     "|m_i|·‖v_i‖). For how many of them is the top token of m_i·v_i (read through the unembedding) "
                     "the same as the top token of layer 24's whole MLP output?"),
]

SOLUTION = [
    md("""# Solutions · Lesson 3: values

[Back to the lesson](../03_values.ipynb)."""),
    code("""import torch

import ffn_widgets as fw

lm = fw.load_model()
PROMPT = "The Eiffel Tower is located in the city of"
run = lm.run(PROMPT)
paris = lm.target_ids(" Paris")[0]"""),
    *solution("3.1", "Rank layer 29's neurons by contribution to `' Paris'`.", """ranking = fw.top_neurons(lm, run, layer=29, by="contribution", target=" Paris")
answer = ranking.neurons[0]
print(ranking.to_frame().head(3))"""),
    *solution("3.2", "Its value through the unembedding, signed by its activation; count the tokens above `' Paris'`.",
              """neuron = ranking.neurons[0]
sign = run.activations[29, -1, neuron].sign()
logits = lm.unembed(lm.values(29)[neuron] * sign)     # one vector: the final norm only rescales it
answer = int((logits > logits[paris]).sum())
print(f"' Paris' ranks {answer} of {len(logits):,}; the top tokens are", lm.token_strings(logits.topk(5).indices))"""),
    *solution("3.3", "The ten strongest memories, each read through the unembedding with its sign, against the "
                     "unembedding of the layer's output.", """m = run.activations[24, -1]
strongest = (m.abs() * lm.values(24).norm(dim=1)).topk(10).indices
layer_top = int(lm.unembed(run.mlp_out[24, -1]).argmax())
memory_tops = [int(lm.unembed(lm.values(24)[i] * m[i].sign()).argmax()) for i in strongest.tolist()]
print("layer 24 writes", lm.token_strings([layer_top]), "; its strongest memories:", lm.token_strings(memory_tops))
answer = sum(t == layer_top for t in memory_tops)"""),
]
