"""Lesson 7: many facts, MEMIT, AlphaEdit and the stability curves."""
from make_lessons import code, exercise, md, solution

NAME = "07_many_edits"
TITLE = "Many facts: MEMIT, AlphaEdit and stability"
TIME = "about 70 s"  # measured: one thread of a shared 2-core CPU, kernel start and model load included
SUMMARY = ("Write many facts at once, spread over several layers (MEMIT), or only into directions the model does "
           "not use (AlphaEdit); then watch what edit after edit does to a model.")

PARAMETERS = code("""BATCH = 3             # facts written at once: one of each of this many relations
STABILITY_STEPS = 3   # edits of the live stability run""", metadata={"tags": ["parameters"]})

SETUP = code("""import torch

import ffn_widgets as fw

lm = fw.load_model()
facts = fw.load_facts()
relations = list(dict.fromkeys(f["relation"] for f in facts))
batch = [next(f for f in facts if f["relation"] == r) for r in relations[:BATCH]]   # one fact of each relation
TOKENS = fw.lessons.TOKENS
QUICK = fw.MemitSettings(steps=10, prefix_starts=("The", "I"))   # 2 prefixes and at most 10 steps per target
for f in batch:
    print(f"{f['prompt']} {f['target_true']}  →  {f['target_new']}")""")

LESSON = [
    md(f"""# Lesson 7 · Many facts: MEMIT, AlphaEdit and the stability curves

*Part of the lesson series ([index](00_index.ipynb)). Run time on a laptop CPU: {TIME}.*

ROME (lesson 6) writes one fact into one layer. Real use means many facts, and a model edited again and again.

- **MEMIT** (Meng et al., ICLR 2023, *Mass-Editing Memory in a Transformer*) writes a whole batch in one call. For each fact it computes the residual-stream vector z that the **last** layer of a range should produce at the subject, then spreads the needed change over the range's MLPs (layers 0–4 here), solving per layer ΔW = R Kᵀ (λC + KKᵀ)⁻¹, where K holds the facts' keys and R what is still missing, divided among the layers left. On GPT-J with **10,000** CounterFact edits at once it kept efficacy 98.9%, paraphrase 88.6% and neighbourhood 73.7%, where ROME applied 10,000 times in a row fell apart.
- **AlphaEdit** (Fang et al., ICLR 2025) projects the update onto the **null space** of the keys the layer already uses: the eigenvectors of C = E[kkᵀ] whose eigenvalues are tiny (below 0.02). Text the model has seen almost never produces keys there, so writing there should spare what the model knew, and it also spares the keys of earlier edits.
- **Sequential editing**: Gupta et al. (2024, *Model Editing at Scale leads to Gradual and Catastrophic Forgetting*) edited GPT-2 XL and GPT-J with ROME and MEMIT one fact after another and saw two phases: gradual forgetting of earlier edits and damage to unrelated text, then a collapse, where a single edit breaks the model."""),
    PARAMETERS,
    SETUP,
    md("""The key statistics C of layers 0–4, in one pass (cached on disk after the first time):"""),
    code("""LAYERS = list(range(fw.default_layer(lm) - 4, fw.default_layer(lm) + 1))     # MEMIT's range: layers 0–4
fw.key_statistics(lm, LAYERS, tokens=TOKENS, progress=False);"""),
    md("""## One batch, one call: MEMIT

The whole batch is one entry of the edit log: undo, reset, save and load work as for ROME. The report measures each fact's prompt and paraphrases before and after. To keep the lesson quick, each fact's target z is optimised with 2 context prefixes and at most 10 steps (`QUICK`) instead of MEMIT's 5 and 25 (drop `settings=QUICK` for those)."""),
    code("""b = fw.memit_edit(lm, batch, tokens=TOKENS, settings=QUICK)
print(b)
print(lm.edits)
b.report().to_frame()[["kind", "prompt", "true", "new", "p_true before", "p_true after", "p_new before", "p_new after"]]"""),
    *exercise("7.3", "With the batch in place: which layer of the range did MEMIT change the most (the largest "
                     "‖ΔW‖ of its down projection)? Compare the weights now with those inside "
                     "`with lm.edits.original():`."),
    code("""b.undo()
print(lm.edits)"""),
    md("""## AlphaEdit's null space

The eigenvalues of C at the range's last layer, largest first, on a log scale. Keys of real text spread over the large ones; AlphaEdit writes only along the eigenvectors below its threshold (the red line)."""),
    code("""import plotly.graph_objects as go

eig = torch.linalg.eigvalsh(fw.key_statistics(lm, LAYERS[-1], tokens=TOKENS, progress=False)).flip(0)
fig = go.Figure(go.Scatter(y=eig.numpy(), mode="lines", name="eigenvalues of C"))
fig.add_hline(y=2e-2, line_color="red", annotation_text="AlphaEdit's threshold 0.02")
fig.update_layout(yaxis_type="log", xaxis_title="eigenvector (largest first)", yaxis_title="eigenvalue",
                  height=300, template="plotly_white", margin=dict(l=60, r=20, t=30, b=45))
fig"""),
    *exercise("7.1", "How many of layer 4's 1,536 directions are in AlphaEdit's null space, i.e. how many "
                     "eigenvalues of C (with `TOKENS` tokens of statistics) are below 0.02?"),
    md("""## Two methods on the same facts

`fw.compare_methods` writes the facts with each method from the unedited model (taking them out again afterwards) and scores them with all of them in place: efficacy, paraphrase, neighbourhood, the KL divergence of 20 unrelated prompts' next-token distributions against the unedited model, and the growth of the edited matrices' norms."""),
    code("""cmp = fw.compare_methods(lm, batch, ["memit", "alphaedit"], tokens=TOKENS, settings=QUICK)
print(cmp)
cmp.figure()"""),
    md("""| | MEMIT on GPT-J, 10,000 facts at once (paper) | here, 3 facts (above) | here, 43 facts at once (measured once, notebook 05) |
|---|---|---|---|
| efficacy | 98.9% | printed above | MEMIT 100, AlphaEdit 100 |
| paraphrase | 88.6% | printed above | MEMIT 88.4, AlphaEdit 87.2 |
| neighbourhood | 73.7% | printed above | (every neighbour is itself edited there) |

## Edit after edit, live

`fw.StabilityMonitor` edits facts one step after another and measures after every step, against the **original** model: **retention** (the fraction of earlier steps' edits still holding), paraphrase and neighbourhood over all edits so far, the KL on unrelated prompts and the norm growth of the edited matrices. It flags **collapse** (mean KL above 1 nat, a matrix norm ×10, or retention under 50%). Three quick r-ROME steps here; its controls start longer runs. Its edits are taken out afterwards."""),
    code("""monitor = fw.StabilityMonitor(lm, batch, method="r-rome", steps=STABILITY_STEPS, tokens=TOKENS,
                              settings=fw.lessons.quick_settings())
monitor"""),
    code("""run = monitor.wait()
run.to_frame()[["edits", "retention", "efficacy", "paraphrase", "neighbourhood", "kl", "norm_ratio"]]"""),
    md("""## The long runs

Three steps show nothing breaking. The package ships runs of **200** edits per method on this model (under an hour each on one core of a laptop; `experiments/stability_curves.py` makes them):"""),
    code("""runs = fw.measured_runs()
print(fw.runs_table(runs))
fw.runs_figure(runs)"""),
    md("""None collapsed within 200 edits here. The original ROME did the most damage to unrelated text (its mean KL reached 0.73 nat, one prompt almost 7) while its edited matrix grew steadily: Gupta et al.'s gradual phase. r-ROME moved unrelated prompts about seven times less, and the batch methods, which spread their change over five layers, least of all.

Worked answers: [solutions/07_many_edits.ipynb](solutions/07_many_edits.ipynb)."""),
    *exercise("7.2", "In the long r-ROME run, after how many edits did **retention** (the share of earlier edits "
                     "still holding) first fall below 95%? Each run's `to_frame()` has one row per measurement."),
]

SOLUTION = [
    md("""# Solutions · Lesson 7: many edits

[Back to the lesson](../07_many_edits.ipynb)."""),
    PARAMETERS,
    SETUP,
    *solution("7.3", "Each layer of the range: its down projection now minus as loaded.",
              """b = fw.memit_edit(lm, batch, tokens=TOKENS, settings=QUICK)   # the lesson's batch
norms = {}
for layer in b.layers:
    now = lm.values(layer).detach().clone()
    with lm.edits.original():
        norms[layer] = float((now - lm.values(layer)).norm())
print({layer: round(n, 3) for layer, n in norms.items()})
answer = max(norms, key=norms.get)"""),
    code("""b.undo()"""),
    *solution("7.1", "The eigenvalues of layer 4's key statistics below the threshold.",
              """eig = torch.linalg.eigvalsh(fw.key_statistics(lm, 4, tokens=TOKENS, progress=False))
answer = int((eig < 2e-2).sum())
print(f"{answer} of {len(eig)} directions")"""),
    *solution("7.2", "The r-ROME run's rows, the first with retention under 0.95.",
              """run = next(r for r in fw.measured_runs() if r.settings["method"] == "r-rome")
frame = run.to_frame()[["edits", "retention"]]
answer = int(frame[frame.retention < 0.95].edits.iloc[0])
print(frame.head(15).T)"""),
]
