"""Writes notebooks/05_many_edits.ipynb (the notebook's text lives here so it can be reviewed as code)."""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

md, code = new_markdown_cell, new_code_cell
cells = [
    md("""# Many edits: MEMIT, AlphaEdit, and what happens as edits pile up

Notebook 04 rewrote one fact with ROME. Real use means many facts, and a model edited again and again:

- **MEMIT** (Meng et al., ICLR 2023) writes a whole batch in one call. It computes, for each fact, the residual-stream vector the *last* layer of a range should produce at the subject, and spreads the needed change over the range's MLPs (layers 0–4 here), solving `ΔW = R Kᵀ (λC + K Kᵀ)⁻¹` per layer.
- **AlphaEdit** (Fang et al., ICLR 2025) projects that update onto the null space of the keys the layer already uses (and of earlier edits' keys), so what the model knew is spared.
- **Sequential ROME** applies one rank-one edit after another. Gupta et al. (2024) found it forgets gradually and then collapses: one *disabling edit* breaks the model.

This notebook writes a batch, compares the methods on the same facts, and runs the edit-stability experiment live. Run time, measured once: 16½ minutes on a 2-core CPU that four other long jobs kept busy (key statistics cached; the first run also computes them for layers 0–4). It has not been timed on an idle machine; most of it is the comparison and the stability run below."""),
    code("""BATCH = 5                                    # facts written at once: one of each of this many relations
METHODS = ["memit", "alphaedit", "r-rome"]   # the methods compared on them
STABILITY_STEPS = 8                          # edits of the live stability run
TOKENS = 100_000                             # tokens of key statistics C per edited layer (cached on disk)
QUICK = False                                # True: quicker, rougher edits (2–4 prefixes, at most 10 steps each)""",
         metadata={"tags": ["parameters"]}),
    code("""import ffn_widgets as fw

lm = fw.load_model()
loaded = lm.fingerprint                           # a hash of every weight's bytes
MEMIT_SETTINGS = fw.MemitSettings(steps=10, prefix_starts=("The", "I")) if QUICK else fw.MemitSettings()
ROME_SETTINGS = fw.lessons.quick_settings() if QUICK else fw.RomeSettings()
facts = fw.load_facts()
relations = list(dict.fromkeys(f["relation"] for f in facts))
batch = [next(f for f in facts if f["relation"] == r) for r in relations[:BATCH]]   # one fact of each relation
for f in batch:
    print(f"{f['prompt']} {f['target_true']}  →  {f['target_new']}")"""),
    md("""## One batch, one call: MEMIT

`fw.memit_edit(lm, requests)` takes dicts with `prompt`, `subject` and `target_new` (the dev facts have them), or a facts file. The whole batch is one entry of the edit log: undo, reset, save and load work as for ROME, bit for bit. `report()` measures every fact's prompt and paraphrases before (this edit left out) and after."""),
    code("""b = fw.memit_edit(lm, batch, tokens=TOKENS, settings=MEMIT_SETTINGS)
print(b)
print(lm.edits)
b.report().to_frame()[["kind", "prompt", "true", "new", "p_true before", "p_true after", "p_new before", "p_new after"]]"""),
    code("""b.undo()
print(lm.edits, "— the weights as loaded, bit for bit:", lm.fingerprint == loaded)"""),
    md("""## The editor with a list of facts

Given `facts=`, the editor lists them and offers MEMIT, AlphaEdit, r-ROME and ROME (the last two one fact after another). The layer is the last of MEMIT's five-layer range. Apply streams each fact's optimisation; Cancel leaves the weights untouched (a cancelled ROME sequence takes out the facts it had written); afterwards every fact's prompt and paraphrases are shown before → after, and the log holds the edit with its Undo."""),
    code("""fw.Editor(lm, facts=batch, method="memit")"""),
    md("""## Three methods on the same facts

`fw.compare_methods` writes the facts with each method from the unedited model (and takes them out again), then scores them with all of them in place: efficacy (P(new) > P(true) on each prompt), paraphrases, neighbours (other subjects keep their own object), the KL of 20 unrelated prompts' next-token distributions against the unedited model, and the growth of the edited matrices' norms."""),
    code("""cmp = fw.compare_methods(lm, batch, METHODS, tokens=TOKENS,
                         settings={"memit": MEMIT_SETTINGS, "alphaedit": MEMIT_SETTINGS, "r-rome": ROME_SETTINGS})
print(cmp)
cmp.figure()"""),
    md("""Measured on all 43 dev facts with the edits equal to the reference code (MEMIT and AlphaEdit: one batch of 43; r-ROME: 43 edits one after another, all kept; layers 0–4 and 4; fluency: 50 sampled tokens; `fw.compare_methods(lm, fw.load_facts(), [...], fluency_tokens=50)`, each method in its own process on one thread of a 2-core CPU shared with four other runs, so the times are slow and only compare with each other):

| method | efficacy | paraphrase | unrelated KL | fluency before → after | ‖W‖ growth | time |
|---|---|---|---|---|---|---|
| MEMIT | 100 | 88.4 | 0.010 | 536 → 528 | ×1.009 | 1,760 s |
| AlphaEdit | 100 | 87.2 | 0.010 | 536 → 554 | ×1.014 | 1,110 s |
| r-ROME, sequential | 97.7 (42 edits; one the model already said) | 84.9 | 0.037 | 536 → 543 | ×1.23 | 2,676 s |

Before the fix (ROME's KL reversed, MEMIT's keys a flat mean, r-ROME's numerator δ) the same run gave the same efficacy and paraphrase for MEMIT and AlphaEdit, ‖W‖ ×1.011 and ×1.015, and for sequential r-ROME efficacy 100, paraphrase 86.0 and ×1.25.

MEMIT on GPT-J with 10,000 edits (the paper): 98.9 / 88.6, neighbourhood 73.7. With all 43 dev facts edited at once every neighbour prompt is itself an edited fact, so the neighbourhood score says nothing there; the comparison above uses five facts whose neighbours are mostly not edited."""),
    md("""## Edit after edit: the stability experiment, live

`fw.StabilityMonitor` edits facts one step after another and measures after every step, against the **original** model: **retention** (of the edits made in earlier steps, the fraction still holding), paraphrase and neighbourhood scores over all edits so far, the KL of unrelated prompts, and the norm growth of the edited matrices. Its curves grow as edits land. It flags **collapse** — the unrelated prompts' mean KL above 1 nat, a matrix norm ×10, or retention under 50% — with a red marker. Cancel stops it within an edit. However the run ends, its edits are taken out again.

Eight r-ROME steps take about 1½ minutes here. The controls start another run: a different method, more steps, or several facts per step (MEMIT and AlphaEdit write each step's facts as one batch)."""),
    code("""monitor = fw.StabilityMonitor(lm, method="r-rome", steps=STABILITY_STEPS, tokens=TOKENS, settings=ROME_SETTINGS)
monitor"""),
    code("""run = monitor.wait()   # waits for the run above (the widget keeps drawing meanwhile)
print(run)
run.to_frame()[["edits", "retention", "efficacy", "paraphrase", "neighbourhood", "kl", "norm_ratio"]]"""),
    md("""The same experiment from code: `fw.edit_stability(lm, method=..., batch=..., steps=...)` returns the run, with `.figure()` and `.to_frame()`. `fw.stability_steps(...)` yields each row as it is measured. Beyond the 43 dev facts, later steps edit the same facts again, to other objects of their relation (deterministic for a seed: `fw.stability_facts`).

## The long runs

200 edits per method take about an hour each on a laptop CPU. This command makes them:

```
python experiments/stability_curves.py run --method r-rome --steps 200 --every 5 --out results/r-rome.jsonl
python experiments/stability_curves.py run --method memit --batch 10 --steps 20 --out results/memit.jsonl
python experiments/stability_curves.py plot results/*.jsonl --html results/stability.html
```

The runs measured on the default model ship with the package (`fw.measured_runs()`), with the edits equal to the reference code. The four ran side by side on a 2-core CPU, so their seconds per edit compare only with each other:"""),
    code("""runs = fw.measured_runs()
print(fw.runs_table(runs))
fw.runs_figure(runs)"""),
]
nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
Path(__file__).resolve().parents[1].joinpath("notebooks/05_many_edits.ipynb").write_text(nbformat.writes(nb))
