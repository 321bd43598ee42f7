"""The lesson series: every lesson and its solutions run top to bottom (the solutions assert that the checkers
accept their answers), and each checker agrees with an independent computation on right and wrong answers."""
import copy
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import ffn_widgets as fw
from ffn_widgets import lessons
from notebook_runs import errors, run_notebook

REPO = Path(__file__).resolve().parents[1]
LESSONS = REPO / "notebooks" / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("*.ipynb")) + sorted((LESSONS / "solutions").glob("*.ipynb"))
P, PARIS = lessons.PROMPT, " Paris"


@pytest.mark.real_model
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[f"{p.parent.name}/{p.stem}" for p in NOTEBOOKS])
def test_lesson_runs(path, monkeypatch, tmp_path):
    nb = run_notebook(path, monkeypatch, tmp_path)
    assert not errors(nb), errors(nb)[0].get("evalue")


# ---- the notebooks as written --------------------------------------------------------------------------------
def test_notebooks_are_generated_from_their_sources(tmp_path):
    spec = importlib.util.spec_from_file_location("make_lessons", REPO / "experiments" / "make_lessons.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    make.main(tmp_path)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.ipynb"))
    assert written == sorted(p.relative_to(LESSONS) for p in LESSONS.rglob("*.ipynb"))
    for rel in written:
        assert (tmp_path / rel).read_text() == (LESSONS / rel).read_text(), f"{rel}: run experiments/make_lessons.py"


def test_every_exercise_is_asked_and_solved():
    import nbformat

    def checked(path):
        text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        return {ex for ex in lessons.EXERCISES if f'check("{ex}"' in text}

    asked = set().union(*(checked(p) for p in LESSONS.glob("0[1-9]_*.ipynb")))
    solved = set().union(*(checked(p) for p in (LESSONS / "solutions").glob("*.ipynb")))
    assert asked == solved == set(lessons.EXERCISES)


def test_lessons_is_a_lazy_submodule():
    code = "import sys, ffn_widgets as fw; assert 'ffn_widgets.lessons' not in sys.modules; " \
           "assert 'lessons' in dir(fw) and fw.lessons.check is not None"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_placeholders_wrong_shapes_and_unknown_exercises(capsys, tiny_lm):
    assert lessons.check("1.1", None, lm=tiny_lm) is False
    assert "not answered yet" in capsys.readouterr().out
    assert lessons.check("2.1", 7, lm=tiny_lm) is False  # not (neuron, value)
    assert "could not be read" in capsys.readouterr().out
    assert lessons.check("2.2", "a sentence", lm=tiny_lm) is False  # no neuron named
    assert "cannot be checked yet" in capsys.readouterr().out
    with pytest.raises(fw.InputError, match="no exercise"):
        lessons.check("9.9", 1)


# ---- checkers against independent computations on the default model ----------------------------------------
def p_of(lm, prompt, target=PARIS, units=None, positions=None):
    with lm.intervene({u: 0.0 for u in units or []}, positions=positions):
        return float(torch.softmax(lm.logits(prompt)[-1], -1)[lm.target_ids(target)[0]])


@pytest.mark.real_model
def test_lesson_1_checkers(default_lm):
    lm = default_lm
    lens = fw.logit_lens(lm, P, target=PARIS)
    first = int((lens.ranks[:, -1] == 0).nonzero()[0])
    assert lessons.check("1.1", first, lm=lm) and not lessons.check("1.1", first + 1, lm=lm)
    gain = lens.probs[:, -1] - lens.mid.probs[:, -1]
    assert lessons.check("1.2", int(gain.argmax()), lm=lm) and not lessons.check("1.2", int(gain.argmin()), lm=lm)
    for prompt in ("Monday, Tuesday, Wednesday,", "The capital of France is", "Happy birthday to"):
        lens = fw.logit_lens(lm, prompt)
        settled = bool((lens.post.top_ids[-6:, -1, 0] == lens.post.top_ids[-1, -1, 0]).all())
        assert lessons.check("1.3", prompt, lm=lm) == settled


@pytest.mark.real_model
def test_lesson_2_checkers(default_lm):
    lm = default_lm
    run = lm.run(P)
    neuron = int(run.activations[20, -1].argmax())
    value = float(run.activations[20, -1, neuron])
    assert lessons.check("2.1", (neuron, value), lm=lm)
    assert not lessons.check("2.1", (neuron, value * 1.01 + 0.01), lm=lm)
    assert not lessons.check("2.1", ((neuron + 1) % lm.d_mlp, value), lm=lm)
    # 2.2 with a stand-in index: its 10th trigger sets the bar, its sentences are the corpus
    unit, sentence = (1, 1), "The plan was proposed as a compromise."
    peak = float(lm.run(sentence).activations[1, :, 1].max())
    index = SimpleNamespace(sentences=["The metal is produced as a powder."],
                            top=lambda layer, n, k: [SimpleNamespace(activation=a) for a in (9.0,) * (k - 1) + (peak,)])
    assert lessons.check("2.2", sentence, neuron=unit, index=index, lm=lm)
    index.top = lambda layer, n, k: [SimpleNamespace(activation=peak + 0.01)] * k
    assert not lessons.check("2.2", sentence, neuron=unit, index=index, lm=lm)
    assert not lessons.check("2.2", "produced as", neuron=unit, index=index, lm=lm)  # from the corpus
    # 2.3: scipy's excess kurtosis of the same activations
    from scipy.stats import kurtosis

    from ffn_widgets.lessons.exercises_1_3 import kurtosis_texts

    acts = torch.cat([lm.run(s).activations[1, :, 1] for s in kurtosis_texts()]).numpy()
    k = float(kurtosis(acts))
    assert lessons.check("2.3", k, neuron=unit, lm=lm) and not lessons.check("2.3", k * 0.9, neuron=unit, lm=lm)


@pytest.mark.real_model
def test_lesson_3_checkers(default_lm):
    lm = default_lm
    ranking = fw.top_neurons(lm, P, layer=29, by="contribution", target=PARIS, k=2)
    assert lessons.check("3.1", ranking.neurons[0], lm=lm) and not lessons.check("3.1", ranking.neurons[1], lm=lm)
    neuron, run, paris = ranking.neurons[0], lm.run(P), lm.target_ids(PARIS)[0]
    logits = lm.unembed(lm.values(29)[neuron] * run.activations[29, -1, neuron].sign())
    rank = int((logits > logits[paris]).sum())
    assert lessons.check("3.2", rank, lm=lm) and not lessons.check("3.2", rank + 10, lm=lm)
    m = run.activations[24, -1]
    strongest = (m.abs() * lm.values(24).norm(dim=1)).topk(10).indices.tolist()
    top = int(lm.unembed(run.mlp_out[24, -1]).argmax())          # the final norm rescales, the ranking stays
    count = 0
    for i in strongest:
        v = fw.value_tokens(lm, 24, i, k=1)
        count += (v.top_ids if m[i] > 0 else v.bottom_ids)[0] == top
    assert lessons.check("3.3", count, lm=lm) and not lessons.check("3.3", count + 1, lm=lm)


@pytest.mark.real_model
def test_lesson_4_checkers(default_lm):
    lm = default_lm
    units = [(22, 916), (27, 1392), (22, 25)]
    p = p_of(lm, P, units=units)
    assert lessons.check("4.1", (units, p), lm=lm) and lessons.check("4.1", {"neurons": units, "p": p}, lm=lm)
    assert not lessons.check("4.1", (units, p + 0.01), lm=lm)
    assert not lessons.check("4.1", (units, p_of(lm, P, units=units, positions=[-1])), lm=lm)  # last position only
    p0 = p_of(lm, P)
    for candidate in (units, units[:1], units + [(25, 1120)], [(0, 767)]):
        halves = len(candidate) <= 3 and all(layer for layer, _ in candidate) and p_of(lm, P, units=candidate) <= p0 / 2
        assert lessons.check("4.2", candidate, lm=lm) == halves
    drop = p0 - p_of(lm, P, units=[(28, i) for i in range(lm.d_mlp)], positions=[-1])
    assert lessons.check("4.3", drop, lm=lm) and not lessons.check("4.3", drop + 0.01, lm=lm)


@pytest.mark.real_model
def test_lesson_5_checkers(default_lm):
    lm = default_lm
    sigma = 3 * float(lm.model.get_input_embeddings().weight.detach().std())
    assert lessons.check("5.1", sigma, lm=lm) and not lessons.check("5.1", sigma / 3, lm=lm)
    clean, corrupted, _ = lessons.PATCH
    grid = fw.patch_trace(lm, clean, corrupted, kind="hidden", progress=False)
    half = grid.p_clean / 2
    subject = max(layer for layer in range(lm.n_layers) if grid.scores[layer, grid.subject[1] - 1] >= half)
    last = min(layer for layer in range(lm.n_layers) if grid.scores[layer, -1] >= half)
    assert lessons.check("5.2", subject, lm=lm) and not lessons.check("5.2", subject - 1, lm=lm)
    assert lessons.check("5.3", last, lm=lm) and not lessons.check("5.3", last + 1, lm=lm)


def test_lesson_7_2_reads_the_measured_runs(tiny_lm):
    run = next(r for r in fw.measured_runs() if r.settings["method"] == "r-rome")
    frame = run.to_frame()
    first = int(frame[frame.retention < 0.95].edits.iloc[0])
    assert lessons.check("7.2", first, lm=tiny_lm)
    assert not lessons.check("7.2", int(frame.edits.iloc[-1]), lm=tiny_lm)


# ---- the editing exercises, on a tiny model (milliseconds per edit) -----------------------------------------
@pytest.fixture
def lm(tiny_lm_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))  # key statistics of this copy stay in the test
    base = tiny_lm_factory("llama")
    return fw.load_model(model=copy.deepcopy(base.model), tokenizer=base.tokenizer)


def down(lm, layer):
    return lm.values(layer).detach().clone()


def test_lesson_6_1_on_a_tiny_model(lm):
    edit = lessons.EDIT
    with pytest.raises(fw.InputError):
        lessons.exercises_4_7._update_norm(lm, 1.0)  # no edit yet: cannot be checked
    before = down(lm, 1)
    e = fw.rome_edit(lm, edit["prompt"], edit["subject"], " Rome", 1, tokens=lessons.TOKENS,
                     settings=lessons.quick_settings(), progress=False)
    norm = float((down(lm, 1) - before).norm())
    assert lessons.check("6.1", norm, lm=lm) and not lessons.check("6.1", norm * 1.01, lm=lm)
    e.undo()
    assert torch.equal(down(lm, 1), before)


@pytest.mark.real_model
def test_lesson_6_checkers(default_lm):
    """Short edits of the real model (4 prefixes): the checkers' verdicts equal ROME's own scores."""
    from ffn_widgets.editing.metrics import fact_scores

    lm, edit, quick = default_lm, lessons.EDIT, lessons.quick_settings()
    lm.edits.reset()
    rome = lm.target_ids(" Rome")[0]
    with fw.rome_edit(lm, edit["prompt"], edit["subject"], " Rome", 4, tokens=lessons.TOKENS, progress=False,
                      settings=fw.RomeSettings(steps=20, prefix_lengths=((5, 4),))):
        verdicts = []
        for prompt in ("The CN Tower is located in the city of", "The Louvre is located in the city of",
                       "The Eiffel Tower is in"):
            after = int(lm.logits(prompt)[-1].argmax())
            with lm.edits.original():
                was = int(lm.logits(prompt)[-1].argmax())
            verdicts.append("Eiffel" not in prompt and after == rome and was != rome)
            assert lessons.check("6.2", prompt, lm=lm) == verdicts[-1]
        assert verdicts == [True, False, False]  # the edit spills onto another tower, not onto the Louvre
    for layer in (4, 28):
        with lm.edits.temporary():
            fw.rome_edit(lm, edit["prompt"], edit["subject"], " Rome", layer, tokens=lessons.TOKENS, settings=quick,
                         progress=False)
            fails = fact_scores(lm, edit)["efficacy"] == 0
        assert lessons.check("6.3", layer, lm=lm) == fails
        assert fails == (layer == 28)
    assert len(lm.edits) == 0


def test_lesson_7_checkers(lm):
    C = fw.key_statistics(lm, 1, tokens=lessons.TOKENS, progress=False)
    count = int((torch.linalg.eigvalsh(C) < lessons.NULL_THRESHOLD).sum())
    assert lessons.check("7.1", count, lm=lm, layer=1) and not lessons.check("7.1", count + 5, lm=lm, layer=1)
    with pytest.raises(fw.InputError):
        lessons.exercises_4_7._memit_layer(lm, 0)  # no batch in the log yet
    facts = [{"prompt": "The Eiffel Tower is located in the city of", "subject": "The Eiffel Tower",
              "target_new": "Rome"}, {"prompt": "The capital of Japan is", "subject": "Japan", "target_new": "Moscow"}]
    b = fw.memit_edit(lm, facts, layers=[0, 1], tokens=lessons.TOKENS, settings=fw.MemitSettings(steps=3))
    norms = {layer: d.norm for layer, d in zip(b.layers, b.entry.deltas)}
    best = max(norms, key=norms.get)
    assert lessons.check("7.3", best, lm=lm) and not lessons.check("7.3", 1 - best, lm=lm)
    b.undo()
