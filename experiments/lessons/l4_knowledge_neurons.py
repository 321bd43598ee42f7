"""Lesson 4: neurons that matter, knowledge neurons and the suppression sliders."""
from make_lessons import code, exercise, md, solution

NAME = "04_knowledge_neurons"
TITLE = "Neurons that matter: knowledge neurons"
TIME = "about 30 s"  # measured: one thread of a shared 2-core CPU, kernel start and model load included
SUMMARY = ("Integrated gradients find the few neurons that express a fact; turning them down and up with sliders "
           "tests whether they really carry it.")

PARAMETERS = code("""EXPERIMENT_FACTS = [10, 26]   # the dev facts of the experiment below: Japan → Tokyo, Emmanuel Macron → French""",
                  metadata={"tags": ["parameters"]})

SETUP = code("""import torch

import ffn_widgets as fw

lm = fw.load_model()
facts = fw.load_facts()
fact = facts[0]
PROMPT, TARGET = fact["prompt"], fw.fact_target(fact)      # "The Eiffel Tower is located in the city of", " Paris"
paris = lm.target_ids(TARGET)[0]
print(PROMPT, "→", repr(TARGET), "| paraphrases:", fact["paraphrases"])""")

LESSON = [
    md(f"""# Lesson 4 · Neurons that matter: knowledge neurons

*Part of the lesson series ([index](00_index.ipynb)). Run time on a laptop CPU: {TIME}.*

Lessons 2 and 3 looked at neurons one at a time. Which of the 46,080 neurons of this model actually **carry** a given fact? Dai et al. (ACL 2022, *Knowledge Neurons in Pretrained Transformers*) answered with **integrated gradients**: for a prompt whose answer is y, scale one layer's activations at the last position from 0 up to their real values m̂ in 20 steps, and add up how much p(y) responds to each neuron along the way:

score_i = m̂_i · mean over α of ∂p(y)/∂m_i, evaluated at m = α·m̂

Neurons scoring above 0.2 × the prompt's best score are candidates; those found again for paraphrases of the fact are its **knowledge neurons**. The test that matters is causal: **suppress** them (×0) and **amplify** them (×2), and compare with as many random neurons from the same layers. On BERT, Dai et al. found about 4.13 knowledge neurons per fact; suppressing them lowered p(correct) by 29.03% on average, amplifying raised it by 31.17%, while random neurons barely mattered."""),
    PARAMETERS,
    SETUP,
    md("""## Attribution for one fact

All 30 layers × 20 steps are computed together (each scaled copy is a one-token step on the prompt's cached keys and values), for the prompt and its two paraphrases: a few seconds."""),
    code("""kn = fw.knowledge_neurons(lm, PROMPT, TARGET, paraphrases=fact["paraphrases"])
for layer, neuron, score in kn:
    print(f"L{layer}.N{neuron}  mean score {score:.4f}   writes:", [t for t, _ in fw.value_tokens(lm, layer, neuron, k=5).top])
kn.figure()"""),
    md("""## Drag them

One slider per knowledge neuron (×−1 … ×3 at every position; 0 suppresses, 2 doubles). The bars show the next-token distribution (the target highlighted; thin marks: the original probabilities) and a greedy continuation follows when you pause. *Reset* gives back the original logits bit for bit. Try each neuron alone."""),
    code("""sliders = fw.NeuronSliders.from_knowledge(lm, kn)
sliders"""),
    md("""The same from code (the widget above follows):"""),
    code("""for layer, neuron, _ in kn:
    sliders.set_scale(layer, neuron, 0.0)
suppressed = sliders.result.target_prob
for layer, neuron, _ in kn:
    sliders.set_scale(layer, neuron, 2.0)
amplified = sliders.result.target_prob
sliders.reset()
print(f"p({TARGET!r}): original {sliders.result.target_prob:.3f}, knowledge neurons ×0 {suppressed:.3f}, ×2 {amplified:.3f}")"""),
    md("""## The experiment, next to the paper

`fw.knowledge_experiment` repeats Dai et al.'s measurement: for each fact, its knowledge neurons, then p(correct) on each of its prompts with them ×0 and ×2 **at the last position** (where they were attributed), next to as many random neurons of the same layers. Two facts here, to stay quick (each costs three attributions); pass `fw.load_facts()` for all 43 (a few minutes)."""),
    code("""experiment = fw.knowledge_experiment(lm, [facts[i] for i in EXPERIMENT_FACTS])
s = experiment.summary()
print(f"{s['mean_neurons']:.1f} knowledge neurons per fact; suppress {s['suppress']:+.1%} "
      f"(random {s['random_suppress']:+.1%}), amplify {s['amplify']:+.1%} (random {s['random_amplify']:+.1%})")
experiment.figure()"""),
    md("""| | Dai et al. 2022 (BERT) | here, 2 facts (above) | here, all 43 dev facts (measured once, notebook 02) |
|---|---|---|---|
| knowledge neurons per fact | 4.13 | printed above | 15.7 |
| suppress ×0: change of p(correct) | −29.03% | printed above | −98.1% (random: −1.3%) |
| amplify ×2 | +31.17% | printed above | +554% (random: +1.2%) |

The effects are much larger here, for a reason worth knowing. Most facts keep a **layer-0 neuron** among their knowledge neurons (L0.N767 and L0.N1297 appear again and again): neurons with huge activations at every position, without which nothing works. Integrated gradients asks "what if this layer were zero?", and for them the answer is "no prediction at all", so they score high for every fact. They carry no particular fact (drag one in the sliders: every continuation breaks). `fw.knowledge_experiment(..., drop_shared=0.2)` leaves out neurons shared by more than a fifth of the facts to measure what is specific to each. The other knowledge neurons sit mostly in the last layers, whose values write the answer almost directly.

A property of integrated gradients you can check yourself (exercise 4.3): the scores of one layer add up to about the change of p(y) when that layer's activations at the last position go from m̂ to 0 (*completeness*; exact for an exact integral, close with 20 steps).

## Exercises

Worked answers: [solutions/04_knowledge_neurons.ipynb](solutions/04_knowledge_neurons.ipynb)."""),
    *exercise("4.1", "Suppress neurons of your choice (×0 at **every** position) and report p(`' Paris'`) on "
                     "`PROMPT`. Answer `(neurons, p)` with neurons a list of `(layer, neuron)` pairs. Use "
                     "`lm.intervene` or the sliders (`sliders.set_scale`, then `sliders.result.target_prob`).",
              placeholder="answer = None  # ([(layer, neuron), ...], p)"),
    *exercise("4.2", "Find **at most three** neurons, none in layer 0, whose suppression (×0 at every position) at "
                     "least **halves** p(`' Paris'`) on `PROMPT`. Answer a list of `(layer, neuron)` pairs.",
              placeholder="answer = None  # [(layer, neuron), ...]"),
    *exercise("4.3", "Completeness: what is p(`' Paris'`) minus p(`' Paris'`) with **every** neuron of layer 28 set "
                     "to 0 at the **last position only**? Compare your number with `kn.scores[0, 28].sum()`."),
]

SOLUTION = [
    md("""# Solutions · Lesson 4: knowledge neurons

[Back to the lesson](../04_knowledge_neurons.ipynb)."""),
    SETUP,
    code("""def p_target(prompt=PROMPT):
    return float(torch.softmax(lm.logits(prompt)[-1], -1)[paris])

p_clean = p_target()
print(f"p(' Paris') = {p_clean:.3f}")"""),
    *solution("4.1", "Any neurons will do; here two late-layer neurons, with `lm.intervene`.",
              """neurons = [(28, 1095), (29, 1512)]
with lm.intervene({unit: 0.0 for unit in neurons}):
    p = p_target()
answer = (neurons, p)
print(answer)"""),
    *solution("4.2", "A greedy search: candidates are the top contributors of layers 20–29; add the one that lowers "
                     "p(`' Paris'`) the most, three times.", """run = lm.run(PROMPT)
candidates = [(layer, n) for layer in range(20, 30)
              for n in fw.top_neurons(lm, run, layer=layer, by="contribution", target=TARGET, k=4).neurons]

def suppressed(units):
    with lm.intervene({u: 0.0 for u in units}):
        return p_target()

answer = []
for _ in range(3):
    answer.append(min((c for c in candidates if c not in answer), key=lambda c: suppressed(answer + [c])))
    print(answer, f"p = {suppressed(answer):.3f}")"""),
    *solution("4.3", "Zero the whole layer at the last position with `positions=[-1]`.",
              """with lm.intervene({(28, i): 0.0 for i in range(lm.d_mlp)}, positions=[-1]):
    answer = p_clean - p_target()
kn = fw.knowledge_neurons(lm, PROMPT, TARGET)
print(f"p drop {answer:.4f}; sum of layer 28's integrated-gradients scores {float(kn.scores[0, 28].sum()):.4f}")"""),
]
