"""The index notebook: what the series is, how to use it, and a link to every lesson and its solutions."""
from make_lessons import code, md


def cells(lessons) -> list:
    rows = "\n".join(f"| {i} | [{lesson.TITLE}]({lesson.NAME}.ipynb) | {lesson.SUMMARY} | {lesson.TIME} | "
                     f"[solutions](solutions/{lesson.NAME}.ipynb) |" for i, lesson in enumerate(lessons, 1))
    return [
        md(f"""# How a transformer's MLP layers store facts: a lesson series

Seven lessons, each a notebook that runs top to bottom on a laptop CPU in 10 seconds to just over a minute, offline, on a real language model (SmolLM2-135M-Instruct, 30 layers). Each one states an idea from a paper, reproduces the paper's measurement on this model live next to the published number, gives you the interactive views to explore it, and ends with two or three exercises that check themselves.

| # | lesson | what it is about | run time | |
|---|---|---|---|---|
{rows}

**How to work through a lesson.** Run the cells in order (Shift-Enter). Hover, click and drag in the views: they compute in the kernel as you go. At each exercise, replace `None` with your answer and run the cell: `fw.lessons.check("3.1", answer)` recomputes the right answer from the model in front of you, says whether yours is right, and gives a hint if it is not (never the answer). `fw.lessons.hint("3.1")` prints the hint on its own. Worked answers are in `solutions/`, one notebook per lesson: try first.

Run times were measured with one thread of a 2-core CPU shared with other jobs, starting the kernel and loading the model included; "the first time" adds work cached on disk afterwards (a mined corpus slice, value projections, key statistics).

**Before the first lesson.** The cell below loads the model (the first time it converts the weights once, up to a minute) and lists the exercises. If your computer is busy with other programs, `torch.set_num_threads(1)` at the top of a lesson can make it much faster (PyTorch's threads otherwise wait on each other).

**The papers.** Geva et al., *Transformer Feed-Forward Layers Are Key-Value Memories* (EMNLP 2021) and *… Build Predictions by Promoting Concepts in the Vocabulary Space* (EMNLP 2022); nostalgebraist, *interpreting GPT: the logit lens* (2020); Dai et al., *Knowledge Neurons in Pretrained Transformers* (ACL 2022); Meng et al., *Locating and Editing Factual Associations in GPT* (ROME, NeurIPS 2022) and *Mass-Editing Memory in a Transformer* (MEMIT, ICLR 2023); Fang et al., *AlphaEdit: Null-Space Constrained Knowledge Editing for Language Models* (ICLR 2025); Gupta et al., *Model Editing at Scale leads to Gradual and Catastrophic Forgetting* (2024); Hase et al., *Does Localization Inform Editing?* (NeurIPS 2023)."""),
        code("""import ffn_widgets as fw

lm = fw.load_model()
print(lm)
for ex in fw.lessons.EXERCISES.values():
    print(f"{ex.id}  {ex.question}")"""),
        md("""The other notebooks of the package go further on each topic: `../00_tour.ipynb` (the explorer), `../01_key_value_memories.ipynb`, `../02_knowledge_neurons.ipynb`, `../03_causal_tracing.ipynb`, `../04_editing.ipynb`, `../05_many_edits.ipynb`."""),
    ]
