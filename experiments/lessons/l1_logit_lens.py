"""Lesson 1: the residual stream and the logit lens."""
from make_lessons import code, exercise, md, solution

NAME = "01_residual_stream_and_logit_lens"
TITLE = "The residual stream and the logit lens"
TIME = "about 12 s"  # measured: one thread of a shared 2-core CPU, kernel start and model load included
SUMMARY = ("Every layer reads one shared vector and adds to it. Reading that vector through the unembedding at "
           "each layer (the logit lens) shows the prediction forming.")

SETUP = code("""import torch

import ffn_widgets as fw

lm = fw.load_model()   # SmolLM2-135M-Instruct: 30 layers, 576 dimensions, 1536 MLP neurons per layer
PROMPT = "The Eiffel Tower is located in the city of"
lm""")

LESSON = [
    md(f"""# Lesson 1 · The residual stream and the logit lens

*Part of the lesson series ([index](00_index.ipynb)). Run time on a laptop CPU: {TIME}.*

A transformer language model does not pass a message from layer to layer the way a pipeline does. It keeps one vector per token, the **residual stream**, and every layer *adds* to it:

```
x = embedding(token)
for each layer:   x = x + attention(x)
                  x = x + MLP(x)
logits = W_U · norm(x)
```

So the final stream is the embedding plus the sum of everything every attention block and every MLP wrote. Nothing is overwritten; a later layer can only add a correction.

That makes a simple experiment possible. The last layer's stream is turned into a prediction by the final norm and the unembedding W_U. Apply the same two steps to the stream **after any earlier layer**, and you get that layer's "current guess". nostalgebraist (2020, *interpreting GPT: the logit lens*) did this on GPT-2 and watched the answer take shape gradually, layer after layer. Geva et al. (EMNLP 2022, *Transformer Feed-Forward Layers Build Predictions by Promoting Concepts in the Vocabulary Space*) went one step further and read what each MLP *adds* in the same way.

You will: check that the stream really is a sum, read the lens of one prompt, see where the answer appears and which MLPs push it, and measure the same over 43 facts the model knows."""),
    SETUP,
    md("""## The stream is a sum

`lm.run(prompt)` runs the model once with hooks and keeps, for every layer and token, the stream entering the block (`resid_pre`), what attention and the MLP wrote (`attn_out`, `mlp_out`) and the stream leaving the block (`resid_post`). Shapes are `[layer, token, dimension]`."""),
    code("""run = lm.run(PROMPT)
print(run.tokens)
print("resid_post:", tuple(run.resid_post.shape), " mlp_out:", tuple(run.mlp_out.shape))

# the stream after the last layer = the embeddings + every attention output + every MLP output
total = run.resid_pre[0] + run.attn_out.sum(0) + run.mlp_out.sum(0)
print(f"largest difference {float((total - run.resid_post[-1]).abs().max()):.4f} "
      f"in a stream whose entries reach {float(run.resid_post[-1].abs().max()):.0f}")

# the model's own logits are the final norm and the unembedding of that stream
print("logits equal lm.unembed(final stream):", torch.allclose(lm.unembed(run.resid_post[-1]), run.logits, atol=1e-4))"""),
    md("""The difference is rounding error (float32 sums added in a different order): the final stream *is* the sum of the parts.

## The logit lens

`fw.logit_lens` unembeds the stream after every layer at every position. The figure shows the top token of each cell; the colour is the probability of the target, `' Paris'`. Read the last column (the position that predicts the next word) from the bottom up."""),
    code("""lens = fw.logit_lens(lm, PROMPT, target=" Paris")
lens.figure()"""),
    md("""Two stages per layer: `post` (after the block, as above) and `mid` (the stream before the layer's MLP, i.e. after its attention). `post − mid` is what that MLP added. The widget below shows both (switch the stage), colours by probability or rank, and reruns when you type a new prompt."""),
    code("""fw.LogitLens(lm, PROMPT, target=" Paris")"""),
    code("""print("rank of ' Paris' at the last position after each layer (0 = top-1):")
print(lens.ranks[:, -1].tolist())"""),
    md("""## What the MLPs add (Geva et al. 2022)

An MLP's output is a vector in the same space as the stream, so it can be read through the unembedding too. Geva et al. found that these updates *promote concepts*: their top tokens are often recognisably about something. Here are the top tokens of each late layer's MLP output at the last position:"""),
    code("""for layer in range(20, lm.n_layers):
    top = lm.unembed(run.mlp_out[layer, -1]).topk(4).indices
    print(f"layer {layer:2d} MLP writes:", lm.token_strings(top))"""),
    md("""Some read like noise; some are clearly about the question (cities, capitals). A single MLP's update is not the answer: the answer appears when the updates add up.

## Over many facts

nostalgebraist's plots show, per layer, how close the lens already is to the final output. The same measurement over the 43 facts shipped with the package (`fw.load_facts()`): the first layer after which the correct answer is the lens's top-1 at the last position. One forward pass per fact, the lens of the last position only (a few seconds)."""),
    code("""facts = fw.load_facts()
first = []
for fact in facts:
    r = lm.run(fact["prompt"], capture=("resid_post",))
    tid = lm.target_ids(fw.fact_target(fact))[0]
    tops = lm.unembed(r.resid_post[:, -1]).argmax(-1)             # the lens's top token after each layer
    settled = [layer for layer in range(lm.n_layers) if (tops[layer:] == tid).all()]
    if settled:                                                   # (the model predicts every shipped fact)
        first.append(settled[0])
counts = torch.bincount(torch.tensor(first), minlength=lm.n_layers)
print(f"{len(first)} facts; the answer is the lens's top-1 from layer ... on:")
for layer in range(lm.n_layers):
    if counts[layer]:
        print(f"  layer {layer:2d}: {int(counts[layer])} facts")"""),
    md("""In this small model the answers arrive late: nearly every fact becomes the lens's top-1 only in the last layer or two, after sitting far down the ranking (thousands of tokens ahead of it) for most of the depth. The first 27 layers build something the unembedding cannot yet read as the answer. The lens is a view, not a mechanism: it assumes every layer already speaks the output's "language", which holds best near the end (later work, such as the tuned lens of Belrose et al. 2023, trains a small map per layer instead).

## Exercises

Answer in the cell under each question and run it: `fw.lessons.check` recomputes the answer from the model and tells you whether yours is right, with a hint if not. Worked answers: [solutions/01_residual_stream_and_logit_lens.ipynb](solutions/01_residual_stream_and_logit_lens.ipynb)."""),
    *exercise("1.1", "At which layer (counting from 0) does `' Paris'` first become the lens's top-1 token at the "
                     "last position of the prompt (the lens after each block)?"),
    *exercise("1.2", "Which layer's MLP raises p(`' Paris'`) the most at the last position? (The lens after the "
                     "block minus the lens before its MLP.)"),
    *exercise("1.3", "Write a prompt of your own whose next-token prediction (a word or a number) is already the "
                     "lens's top-1 token after each of the last six layers (24–29). Most facts do not manage this.",
              placeholder='answer = None  # a prompt, e.g. "..."'),
]

SOLUTION = [
    md("""# Solutions · Lesson 1: the residual stream and the logit lens

[Back to the lesson](../01_residual_stream_and_logit_lens.ipynb)."""),
    SETUP,
    code("""lens = fw.logit_lens(lm, PROMPT, target=" Paris")"""),
    *solution("1.1", "The first layer whose rank of `' Paris'` is 0.", """ranks = lens.ranks[:, -1]
answer = int((ranks == 0).nonzero()[0])
print("first top-1 after layer", answer, "; ranks from there:", ranks[answer:].tolist())"""),
    *solution("1.2", "The lens after each block minus the lens before its MLP, at the last position.",
              """gain = lens.probs[:, -1] - lens.mid.probs[:, -1]
answer = int(gain.argmax())
print(f"layer {answer}'s MLP adds {float(gain[answer]):+.3f} to p(' Paris')")"""),
    *solution("1.3", "Try a few predictable prompts and keep one whose final token is the lens's top-1 after "
                     "every one of the last six layers.", """def settled_from(prompt):
    r = lm.run(prompt, capture=("resid_post",))
    tops = lm.unembed(r.resid_post[:, -1]).argmax(-1)
    final = int(r.logits[-1].argmax())
    return next(l for l in range(lm.n_layers) if (tops[l:] == final).all()), lm.token_strings([final])[0]

for prompt in ["To be or not to", "Happy birthday to", "Monday, Tuesday, Wednesday,", "Once upon a"]:
    print(repr(prompt), "settles at layer %d on %r" % settled_from(prompt))
answer = "Monday, Tuesday, Wednesday,"  # lists settle early; so do some fixed phrases"""),
]
