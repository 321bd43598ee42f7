"""Sequential editing on a tiny model: the incremental, batched measurements equal a recount from scratch
(plain unpadded per-prompt forwards), the weights are left as found, rows stream, bad input is refused."""
import copy

import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.editing.metrics import kl
from ffn_widgets.editing.rome import RomeSettings
from ffn_widgets.editing.stability import UNRELATED_PROMPTS, Collapse, stability_facts
from ffn_widgets.model import InputError

QUICK = dict(settings=RomeSettings(steps=3, prefix_lengths=((3, 2),)), corpus="lee", tokens=512)
FACTS = [f for f in fw.load_facts() if f["relation"] in ("capital_of", "official_language")][:4]


@pytest.fixture
def lm(tiny_lm_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))
    base = tiny_lm_factory("llama")
    return fw.load_model(model=copy.deepcopy(base.model), tokenizer=base.tokenizer)


def state(lm):
    return {k: v.detach().clone() for k, v in lm.model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def plain_p(lm, prompt, obj):
    """P(obj | prompt) = exp(−mean NLL of the object's tokens), one unpadded forward."""
    ids = lm.encode(prompt)
    tids = torch.tensor(lm.target_ids(" " + obj.strip()), device=ids.device)
    with torch.no_grad():
        logp = lm.forward(torch.cat([ids, tids])[None])[0].log_softmax(-1)
    at = torch.arange(len(ids) - 1, len(ids) + len(tids) - 1)
    return float(torch.exp(logp[at, tids].mean()))


def recount(lm, edited: dict, step: int) -> dict:
    """Retention, efficacy, PS, NS of the facts edited so far (prompt -> (fact, step)), from scratch."""
    wins = lambda p, a, b: float(plain_p(lm, p, a) > plain_p(lm, p, b))  # noqa: E731
    earlier = [wins(f["prompt"], f["target_new"], f["target_true"]) for f, s in edited.values() if s < step]
    now = [wins(f["prompt"], f["target_new"], f["target_true"]) for f, s in edited.values() if s == step]
    para = [wins(p, f["target_new"], f["target_true"]) for f, _ in edited.values() for p in f["paraphrases"]]
    own = lambda n: edited[n["prompt"]][0]["target_new"] if n["prompt"] in edited else n["target"]  # noqa: E731
    neigh = [wins(n["prompt"], own(n), f["target_new"]) for f, _ in edited.values() for n in f["neighborhood"]
             if own(n) != f["target_new"]]
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return {"retention": mean(earlier), "efficacy": mean(now), "paraphrase": mean(para), "neighbourhood": mean(neigh)}


def test_incremental_measurements_equal_a_recount(lm):
    before = state(lm)
    unrelated = UNRELATED_PROMPTS[:5]
    with torch.no_grad():
        original = torch.stack([lm.forward(lm.encode(p)[None])[0, -1].log_softmax(-1) for p in unrelated]).cpu()
    plan = stability_facts(FACTS, 6)
    gen = fw.stability_steps(lm, FACTS, method="r-rome", steps=6, n_unrelated=5, **QUICK)
    edited, rows = {}, []
    for step, row in enumerate(gen):  # rows stream: each is measured with the step's edits in place
        rows.append(row)
        edited[plan[step]["prompt"]] = (plan[step], step)
        assert row["step"] == step and row["edits"] == step + 1 and len(lm.edits) == step + 1 - len(row["skipped"])
        if step in (0, 3, 5):
            for key, value in recount(lm, edited, step).items():
                assert row[key] == pytest.approx(value, abs=1e-9), (step, key)
            with torch.no_grad():
                now = torch.stack([lm.forward(lm.encode(p)[None])[0, -1].log_softmax(-1) for p in unrelated]).cpu()
            assert row["kl"] == pytest.approx(float(kl(original, now).mean()), rel=1e-3, abs=1e-6)
            (path, n0), = row["norm_ratios"].items()
            w = fw.editing.log.oriented_weight(lm.model.get_submodule(path))
            assert n0 == pytest.approx(float(w.detach().double().norm() / before[path + ".weight"].double().norm()))
    assert len(rows) == 6 and rows[0]["retention"] is None and rows[5]["earlier"] == 3  # 4 facts: 5th re-edits 1st
    assert same(before, state(lm)) and len(lm.edits) == 0  # left as found, bit for bit


def test_left_as_found_on_cancel_and_error_unless_kept(lm):
    fw.rome_edit(lm, FACTS[3]["prompt"], FACTS[3]["subject"], " Tokyo", progress=False, **QUICK)
    before, entries = state(lm), list(lm.edits.entries)
    gen = fw.stability_steps(lm, FACTS, steps=3, n_unrelated=3, **QUICK)
    next(gen)
    assert not same(before, state(lm))
    gen.close()  # cancelled between steps
    assert same(before, state(lm)) and lm.edits.entries == entries
    with pytest.raises(InputError):  # an error on the way (a subject not in its prompt) also undoes
        fw.edit_stability(lm, FACTS[:1] + [{**FACTS[1], "subject": "Atlantis"}], n_unrelated=3, progress=False,
                          **QUICK)
    assert same(before, state(lm)) and lm.edits.entries == entries
    run = fw.edit_stability(lm, FACTS[:2], n_unrelated=3, keep_edits=True, progress=False, **QUICK)
    assert len(lm.edits) == len(entries) + 2 and len(run.rows) == 2
    lm.edits.reset()


def test_run_object_and_collapse(lm, tmp_path):
    run = fw.edit_stability(lm, FACTS, steps=2, batch=2, n_unrelated=3, progress=False,
                            collapse=Collapse(kl=0.0), stop_on_collapse=True, **QUICK)
    assert run.collapsed_at == 0 and len(run.rows) == 1 and "KL" in run.collapse_reason  # any KL > 0 nat
    assert run.rows[0]["edits"] == 2 and run.summary["collapsed_at"] == 0
    assert list(run.to_frame()["edits"]) == [2]
    fig = run.figure()
    assert len(fig.data) == 7 and "collapse" in repr(run)
    path = tmp_path / "run.jsonl"
    run.save(path)
    again = fw.StabilityRun.load(path)
    assert again.rows == run.rows and again.collapsed_at == 0 and again.settings["collapse"]["kl"] == 0.0
    assert "| r-rome | 2 | 2 | 2 (unrelated KL" in fw.runs_table([again])
    assert len(fw.runs_figure([again, again]).data) == 8  # 4 panels per run
    # a run measured with earlier edit formulas is marked as such, in the table and in the figure's legend
    old = fw.StabilityRun(settings={**again.settings, "formulas": "earlier formulas: X"}, rows=again.rows)
    table, fig = fw.runs_table([again, old]), fw.runs_figure([again, old])
    assert "| r-rome | 2 |" in table and "| r-rome (earlier formulas) | 2 |" in table
    assert table.endswith("runs marked (earlier formulas) were measured with the earlier formulas: X")
    assert [d.name for d in fig.data if d.showlegend] == ["r-rome ×2 per step", "r-rome ×2 per step (earlier formulas)"]
    assert "runs marked (earlier formulas)" in fig.layout.title.text
    assert "earlier" not in fw.runs_table([again]) and "<sub>" not in fw.runs_figure([again]).layout.title.text
    path.write_text("")
    with pytest.raises(InputError, match="no stability run"):
        fw.StabilityRun.load(path)
    run = fw.edit_stability(lm, FACTS[:2], n_unrelated=3, progress=False, **QUICK)
    assert run.collapsed_at is None and len(run.rows) == 2


def test_generated_facts():
    facts = fw.load_facts()
    plan = stability_facts(facts, 3 * len(facts) + 1, seed=0)
    assert plan == stability_facts(facts, 3 * len(facts) + 1, seed=0)
    assert [f["target_new"] for f in plan[:len(facts)]] == [f["target_new"] for f in facts]
    for f in plan:
        assert f["target_new"] != f["target_true"]
        same_relation = {g["target_true"] for g in facts if g["relation"] == f["relation"]}
        same_relation |= {g["target_new"] for g in facts if g["relation"] == f["relation"]}
        assert f["target_new"] in same_relation
    big = [f for f in facts if f["relation"] == "capital_of"]
    rounds = [stability_facts(big, 3 * len(big))[r * len(big)]["target_new"] for r in range(3)]
    assert len(set(rounds)) == 3  # a relation with many objects: a new target every round
    assert plan[len(facts)]["round"] == 1


def test_bad_input(lm):
    for kw in (dict(facts=[]), dict(batch=0), dict(batch=1.5), dict(steps=0), dict(method="prune"),
               dict(n_unrelated=0)):
        with pytest.raises(InputError):
            fw.stability_steps(lm, **{"facts": FACTS, **kw})
        with pytest.raises(InputError):
            fw.edit_stability(lm, **{"facts": FACTS, "progress": False, **kw})
    assert len(lm.edits) == 0


@pytest.mark.parametrize("method", ["memit", "alphaedit"])
def test_batch_methods_one_entry_per_step(lm, method):
    memit = pytest.importorskip("ffn_widgets.editing.memit")
    settings = memit.MemitSettings(steps=3, prefix_lengths=((3, 1),), prefix_starts=("The",))
    before = state(lm)
    plan, edited = stability_facts(FACTS, 4), {}
    gen = fw.stability_steps(lm, FACTS, method=method, batch=2, steps=2, layer=[0, 1], n_unrelated=3,
                             settings=settings, corpus="lee", tokens=512)
    for step, row in enumerate(gen):
        for f in plan[2 * step:2 * step + 2]:
            edited[f["prompt"]] = (f, step)
        assert len(lm.edits) == step + 1 and row["edits"] == 2 * step + 2 and len(row["norm_ratios"]) == 2
        for key, value in recount(lm, edited, step).items():
            assert row[key] == pytest.approx(value, abs=1e-9), (step, key)
    assert same(before, state(lm)) and len(lm.edits) == 0


def test_every_k_measures_the_same_as_every_step_at_those_steps(lm):
    all_rows = list(fw.stability_steps(lm, FACTS, steps=5, n_unrelated=3, **QUICK))
    sparse = list(fw.stability_steps(lm, FACTS, steps=5, n_unrelated=3, every=2, **QUICK))
    assert [r["step"] for r in sparse] == [1, 3, 4]  # every 2nd step and the last
    for r in sparse:
        full = all_rows[r["step"]]
        for key in ("paraphrase", "neighbourhood", "kl", "norm_ratio", "efficacy_all"):
            assert r[key] == pytest.approx(full[key], abs=1e-9), key
    # "earlier" counts the edits made up to the previous measurement; efficacy the ones since
    # (4 facts: step 4 edits the first fact again, which then counts as this measurement's)
    assert (sparse[0]["earlier"], sparse[1]["earlier"], sparse[2]["earlier"]) == (0, 2, 3)
    with pytest.raises(InputError, match="every"):
        fw.stability_steps(lm, FACTS, every=0)


# ---- the live widget -------------------------------------------------------------------------------
def test_monitor_rows_equal_the_run_and_weights_are_left_as_found(lm):
    before = state(lm)
    mon = fw.StabilityMonitor(lm, FACTS, steps=3, n_unrelated=3, start=False, **QUICK)
    assert mon.status == "idle" and mon.rows == []
    run = mon.start()  # no event loop here: runs in place
    assert mon.status == "done" and mon.progress == {} and len(mon.rows) == 3 and run is mon.run
    reference = fw.edit_stability(lm, FACTS, steps=3, n_unrelated=3, progress=False, **QUICK)
    for sent, ours, ref in zip(mon.rows, run.rows, reference.rows):
        for key in ("retention", "efficacy", "paraphrase", "neighbourhood", "kl", "norm_ratio"):
            assert ours[key] == pytest.approx(ref[key], abs=1e-9), key
            assert sent[key] == pytest.approx(ref[key], abs=1e-6) if ref[key] is not None else sent[key] is None
        assert sent["edits"] == ref["edits"] and sent["facts"] == ref["facts"]
    assert same(before, state(lm)) and len(lm.edits) == 0
    assert mon.figure().data and list(mon.to_frame()["edits"]) == [1, 2, 3]
    shown = fw.StabilityMonitor(lm, run=run)  # a finished run, to explore: nothing runs
    assert shown.status == "done" and shown.rows == mon.rows and shown.steps == 3 and len(lm.edits) == 0


def test_monitor_cancel_within_an_edit_on_the_event_loop(lm):
    import asyncio

    before = state(lm)

    async def main():
        mon = fw.StabilityMonitor(lm, FACTS, steps=4, n_unrelated=3, **QUICK)  # starts at once: a kernel
        assert mon.status == "running" and mon._runner.task is not None
        while not mon.rows:  # the first step's row streams in
            await asyncio.sleep(0)
        while "Step 2 of 4" not in mon.progress.get("message", ""):  # inside the second edit
            await asyncio.sleep(0)
        assert len(lm.edits) == 1
        assert mon.dispatch({"type": "cancel"})
        await mon._runner.task
        return mon

    mon = asyncio.run(main())
    assert mon.status == "cancelled" and len(mon.rows) == 1 and mon.progress == {}
    assert same(before, state(lm)) and len(lm.edits) == 0


def test_monitor_bad_input(lm):
    with pytest.raises(InputError, match="method"):
        fw.StabilityMonitor(lm, FACTS, method="fine-tune", start=False)
    mon = fw.StabilityMonitor(lm, FACTS, steps=2, start=False, **QUICK)
    assert not mon.dispatch({"type": "start", "steps": 0}) and "steps must be a positive" in mon.error
    assert not mon.dispatch({"type": "start", "batch": "two"}) and "whole number" in mon.error
    assert mon.status == "idle" and len(lm.edits) == 0
    with pytest.raises(InputError, match="No measurements"):
        mon.figure()


def test_a_run_cut_short_goes_on_from_its_checkpoint_to_the_same_rows_and_weights(lm, tmp_path):
    ckpt, kw = tmp_path / "run.safetensors", dict(steps=6, every=2, n_unrelated=3, keep_edits=True, **QUICK)
    whole = list(fw.stability_steps(lm, FACTS, **kw))
    weights = state(lm)
    lm.edits.reset()
    cut = fw.stability_steps(lm, FACTS, checkpoint=ckpt, **kw)
    first = [next(cut), next(cut)]  # asking for the second row wrote the checkpoint of the first (step 1)
    cut.close()  # "killed" after step 3: its edits are lost, the checkpoint holds steps 0-1
    lm.edits.reset()
    rest = list(fw.stability_steps(lm, FACTS, checkpoint=ckpt, **kw))
    assert [r["step"] for r in first] == [1, 3] and [r["step"] for r in rest] == [3, 5]
    timing = ("seconds_edit", "seconds_eval")
    for a, b in zip(whole, first[:1] + rest):
        assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    assert same(state(lm), weights) and len(lm.edits) == 6
    lm.edits.reset()
    with pytest.raises(InputError, match="differs in .*seed"):
        next(fw.stability_steps(lm, FACTS, checkpoint=ckpt, **{**kw, "seed": 1}))
    lm.edits.reset()
    fw.rome_edit(lm, FACTS[0]["prompt"], FACTS[0]["subject"], FACTS[0]["target_new"], **QUICK)
    with pytest.raises(InputError, match="holds 1 edit"):
        next(fw.stability_steps(lm, FACTS, checkpoint=ckpt, **kw))
    assert len(lm.edits) == 1
