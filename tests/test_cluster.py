"""The sharded jobs on a real local Ray cluster of two model actors equal the same calls in this process: trigger
mining (indexes equal), key statistics (to float64 rounding), trace_many, evaluate_edits and edit_layer_sweep
(metrics equal), also for a model with two ROME edits in its log; a worker killed with SIGKILL mid-job changes
nothing; bad input (unreachable address, Ray missing, a worker without the model, weights changed outside the log,
GPUs that are not there) fails at once with a clear error and leaves nothing running."""
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
import torch

import ffn_widgets as fw
from ffn_widgets.editing.rome import RomeSettings
from ffn_widgets.sharded import ClusterError, WorkerMismatch

ray = pytest.importorskip("ray")

FACTS = [
    {"prompt": "The Eiffel Tower is located in the city of", "subject": "The Eiffel Tower", "target_true": " Paris",
     "target_new": " Rome",
     "paraphrases": ["Where is the Eiffel Tower? It is in"], "neighborhood": ["The Louvre is located in the city of"]},
    {"prompt": "The mother tongue of Danielle Darrieux is", "subject": "Danielle Darrieux", "target_true": " French",
     "target_new": " English",
     "paraphrases": ["Danielle Darrieux spoke the language"], "neighborhood": ["The mother tongue of Léon Blum is"]},
    {"prompt": "Toko Yasuda plays the instrument", "subject": "Toko Yasuda", "target_true": " guitar",
     "target_new": " piano",
     "paraphrases": ["Toko Yasuda is known for playing the"], "neighborhood": ["Jimmy Page plays the instrument"]},
]
QUICK = dict(tokens=512, settings=RomeSettings(steps=3, prefix_lengths=((3, 1),)), fluency_tokens=5)


@pytest.fixture(scope="module")
def lm(tiny_lm_factory):
    import transformers as T

    torch.manual_seed(3)
    model = T.AutoModelForCausalLM.from_config(T.LlamaConfig(
        num_hidden_layers=3, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=256, vocab_size=49152))
    return fw.load_model(model=model, tokenizer=tiny_lm_factory("llama").tokenizer)


@pytest.fixture(scope="module")
def corpus():
    return fw.load_corpus("lee")


@pytest.fixture(scope="module")
def cluster():
    torch.set_num_threads(1)  # as each worker: float results then agree bit for bit
    with fw.cluster(workers=2, threads_per_worker=1) as c:
        yield c


def rows_without_time(report):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in report.rows]


def test_key_statistics_add_up_to_the_in_process_moments(lm, corpus, cluster):
    with _outside(cluster):
        here = fw.key_statistics(lm, [0, 2], corpus, tokens=8192, progress=False, force=True)
    there = fw.key_statistics(lm, [0, 2], corpus, tokens=8192, progress=False, force=True)
    for layer in (0, 2):
        torch.testing.assert_close(there[layer], here[layer], rtol=1e-12, atol=0)
    direct = _plain_moment(lm, corpus, 8192, 2)
    torch.testing.assert_close(there[2], direct, rtol=1e-5, atol=1e-6 * float(direct.abs().max()))  # float32 products


def test_mined_index_equals_the_in_process_one(lm, corpus, cluster, tmp_path):
    with _outside(cluster):
        here = fw.mine_triggers(lm, corpus, k=5, path=tmp_path / "here", progress=False)
    there = fw.mine_triggers(lm, corpus, k=5, path=tmp_path / "there", progress=False)
    for name in ("values", "positions", "sentence_ids", "counts"):
        assert np.array_equal(getattr(here, name), getattr(there, name)), name
    assert there.manifest["progress"]["complete"]


def test_trace_many_equals_in_process_and_carries_the_callers_version(lm, cluster):
    facts = [{"prompt": f["prompt"], "subject": f["subject"]} for f in FACTS]
    with _outside(cluster):
        here = fw.trace_many(lm, facts, kind="mlp", samples=3, progress=False)
    there = fw.trace_many(lm, facts, kind="mlp", samples=3, progress=False)
    torch.testing.assert_close(there.scores["mlp"], here.scores["mlp"], rtol=0, atol=0)
    assert there.weights_version == lm.state_version


def test_the_averaged_trace_view_fills_in_fact_by_fact_from_the_workers(lm, cluster):
    facts = [{"prompt": f["prompt"], "subject": f["subject"]} for f in FACTS]
    with _outside(cluster):
        here = fw.trace_many(lm, facts, kind="mlp", samples=3, progress=False)
    view = fw.AveragedTrace(lm, facts, kind="mlp", samples=3, cluster=cluster, start=False)
    counts, messages = [], []
    view.observe(lambda ch: counts.append(ch["new"]["n_facts"]), "grid")
    view.observe(lambda ch: messages.append((ch["new"] or {}).get("message", "")), "progress")
    there = view.start()  # outside a kernel: runs here, polling the workers
    assert view.status == "done" and there.weights_version == lm.state_version
    torch.testing.assert_close(there.indirect["mlp"], here.indirect["mlp"], rtol=0, atol=0)
    assert counts == sorted(counts) and counts[-1] == 3 and 1 in counts  # averaged in as facts arrive
    assert view.grid["workers"] == 2 and any("on 2 workers" in m for m in messages)


def test_evaluate_edits_and_the_layer_sweep_equal_in_process(lm, corpus, cluster):
    with _outside(cluster):
        here = fw.evaluate_edits(lm, FACTS, layer=1, corpus=corpus, progress=False, **QUICK)
        sweep_here = fw.edit_layer_sweep(lm, FACTS[:2], layers=[0, 2], corpus=corpus, tokens=512,
                                         settings=QUICK["settings"], progress=False)
    there = fw.evaluate_edits(lm, FACTS, layer=1, corpus=corpus, progress=False, **QUICK)
    assert rows_without_time(there) == rows_without_time(here)
    sweep = fw.edit_layer_sweep(lm, FACTS[:2], layers=[0, 2], corpus=corpus, tokens=512,
                                settings=QUICK["settings"], progress=False)
    assert sweep.rows == sweep_here.rows


def test_knowledge_neurons_localisation_and_the_method_comparison_equal_in_process(lm, corpus, cluster):
    with _outside(cluster):
        kn_here = fw.knowledge_experiment(lm, FACTS[:2], steps=4)
        loc_here = fw.localize_many(lm, FACTS[:2], edit_layers=[1], samples=2, steps=4, corpus=corpus, tokens=512,
                                    edit_kwargs={"settings": QUICK["settings"]}, progress=False)
        cmp_here = fw.compare_methods(lm, FACTS, methods=("memit", "r-rome"), layer=2, n_unrelated=3, corpus=corpus,
                                      tokens=512)
    kn = fw.knowledge_experiment(lm, FACTS[:2], steps=4)
    assert kn.rows == kn_here.rows and kn.weights_version == lm.state_version
    loc = fw.localize_many(lm, FACTS[:2], edit_layers=[1], samples=2, steps=4, corpus=corpus, tokens=512,
                           edit_kwargs={"settings": QUICK["settings"]}, progress=False)
    for a, b in zip(loc.results, loc_here.results, strict=True):
        for name in a.measures:
            np.testing.assert_array_equal(a.measures[name], b.measures[name])
        assert a.weights_version == lm.state_version
    cmp = fw.compare_methods(lm, FACTS, methods=("memit", "r-rome"), layer=2, n_unrelated=3, corpus=corpus, tokens=512)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in cmp.rows] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in cmp_here.rows]


def test_the_localisation_screen_fills_in_from_the_workers_and_equals_in_process(lm, corpus, cluster):
    kwargs = dict(edit_layers=[0, 1, 2], samples=2, steps=4, corpus=corpus, tokens=512,
                  edit_kwargs={"settings": QUICK["settings"]})
    with _outside(cluster):
        here = fw.localize(lm, FACTS[0], **kwargs)
    screen = fw.Localize(lm, FACTS[0], cluster=cluster, start=False, **kwargs)
    filled, messages = [], []
    screen.observe(lambda ch: filled.append(int((~np.isnan(screen.result.measures["edit_efficacy"])).sum())
                                            if ch["new"] else 0), "measures")
    screen.observe(lambda ch: messages.append((ch["new"] or {}).get("message", "")), "progress")
    there = screen.start()  # outside a kernel: runs here
    assert screen.status == "done" and there.weights_version == lm.state_version
    for name in here.measures:
        np.testing.assert_array_equal(there.measures[name], here.measures[name])
    assert [n for n in filled if n] == [1, 2, 3]  # the edit rows arrive one layer at a time
    assert any("on 2 workers" in m for m in messages)

    kept = fw.cluster(workers=1)  # a kept cluster, closed: a view started on it says so, the weights untouched
    kept.close()
    before = lm.fingerprint
    with pytest.raises(ClusterError, match="closed"):
        fw.Localize(lm, FACTS[0], cluster=kept, **kwargs)
    assert lm.fingerprint == before


def test_cancelling_the_screen_on_the_cluster_stops_its_workers(lm, corpus, cluster):
    from ffn_widgets.editing.localization import localize_steps

    fingerprint = lm.fingerprint
    steps = localize_steps(lm, FACTS[0], edit_layers=[0, 1, 2], samples=2, steps=4, corpus=corpus, tokens=512,
                           edit_kwargs={"settings": QUICK["settings"]}, cluster=cluster)
    next(e for e in steps if "on 2 workers" in e["message"])  # the edits are out on the workers
    pids = ray.get([a.ready.remote() for a in cluster.pool(lm)])
    steps.close()  # what the view's Cancel does to its job
    assert cluster._pool is None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids) and lm.fingerprint == fingerprint


def test_an_edited_model_is_rebuilt_on_the_workers(lm, corpus, cluster):
    facts = [{"prompt": f["prompt"], "subject": f["subject"]} for f in FACTS]
    w0 = lm.values(1).clone()
    try:
        for fact in FACTS[:2]:
            fw.rome_edit(lm, fact["prompt"], fact["subject"], fact["target_new"], 1, corpus=corpus, tokens=512,
                         settings=QUICK["settings"], progress=False)
        with _outside(cluster):
            here = fw.trace_many(lm, facts, kind="mlp", samples=3, progress=False)
        there = fw.trace_many(lm, facts, kind="mlp", samples=3, progress=False)
        torch.testing.assert_close(there.scores["mlp"], here.scores["mlp"], rtol=0, atol=0)
    finally:
        lm.edits.reset()
    assert torch.equal(lm.values(1), w0)


def test_a_model_loaded_from_a_folder_is_loaded_there_and_a_change_outside_the_log_is_refused(lm, cluster, tmp_path):
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    saved = fw.load_model(str(tmp_path), device="cpu")
    facts = [{"prompt": f["prompt"], "subject": f["subject"]} for f in FACTS[:2]]
    with _outside(cluster):
        here = fw.trace_many(lm, facts, kind="mlp", samples=3, progress=False)
    there = fw.trace_many(saved, facts, kind="mlp", samples=3, progress=False)  # no weights sent: a recipe
    torch.testing.assert_close(there.scores["mlp"], here.scores["mlp"], rtol=0, atol=0)
    with torch.no_grad():  # a change outside the log: the workers cannot rebuild it, and say so
        saved.model.model.norm.weight[0] += 1.0
    with pytest.raises(WorkerMismatch, match="changed outside the edit log"):
        fw.trace_many(saved, facts, kind="mlp", samples=3, progress=False)
    assert cluster._pool is None  # nothing left running


def test_a_worker_killed_mid_job_changes_nothing(lm, corpus, cluster, tmp_path):
    with _outside(cluster):
        here = fw.mine_triggers(lm, corpus, k=5, path=tmp_path / "here", progress=False, batch_tokens=256)
    pids = ray.get([a.ready.remote() for a in cluster.pool(lm)])
    killed = []

    def kill():
        os.kill(pids[0], signal.SIGKILL)
        killed.append(time.monotonic())

    timer = threading.Timer(1.5, kill)
    timer.start()
    there = fw.mine_triggers(lm, corpus, k=5, path=tmp_path / "there", progress=False, batch_tokens=256)
    ended = time.monotonic()
    timer.join()
    assert killed and killed[0] < ended  # it died while the job ran
    for name in ("values", "positions", "counts"):
        assert np.array_equal(getattr(here, name), getattr(there, name)), name


def test_ctrl_c_stops_every_worker_and_leaves_weights_and_caches_as_they_were(lm, corpus, cluster, tmp_path):
    import _thread

    fingerprint = lm.fingerprint
    pids = ray.get([a.ready.remote() for a in cluster.pool(lm)])
    timer = threading.Timer(2.0, _thread.interrupt_main)  # Ctrl-C while the shards run
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        fw.mine_triggers(lm, corpus, k=5, path=tmp_path / "index", progress=False, batch_tokens=128)
    timer.join()
    assert cluster._pool is None  # the actors were killed, not left computing
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids)
    assert not (tmp_path / "index" / "manifest.json").exists()  # no index claims to be complete
    assert lm.fingerprint == fingerprint


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_worker_that_cannot_load_the_model_fails_the_job_with_its_error(lm, cluster):
    lm.recipe = {"name_or_path": "/nowhere/no-such-model", "dtype": "float32"}
    try:
        with pytest.raises(ClusterError, match="could not load.*no-such-model"):
            fw.trace_many(lm, [{"prompt": FACTS[0]["prompt"], "subject": FACTS[0]["subject"]}], kind="mlp",
                          samples=2, progress=False)
    finally:
        lm.recipe = None
    assert cluster._pool is None  # its actors were stopped


def test_bad_requests_fail_at_once(lm, cluster, monkeypatch):
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match="No Ray cluster answers"):
        with fw.cluster("127.0.0.1:1"):
            pass
    with pytest.raises(ClusterError, match="GPUs"):
        with fw.cluster(workers=2, gpus_per_worker=1):
            pass
    with pytest.raises(fw.InputError, match="workers must be"):
        with fw.cluster(workers=0):
            pass
    assert time.monotonic() - t0 < 30
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ClusterError, match=r"pip install 'ffn_widgets\[ray\]'"):
        with fw.cluster():
            pass


# ---- helpers ------------------------------------------------------------------------------------------
class _outside:
    """Run the block in this process although a cluster block is open (the reference computation)."""

    def __init__(self, cluster):
        from ffn_widgets.sharded import session

        self.session, self.cluster = session, cluster

    def __enter__(self):
        self.session._CURRENT.remove(self.cluster)

    def __exit__(self, *exc):
        self.session._CURRENT.append(self.cluster)


def _plain_moment(lm, corpus, tokens, layer):
    """E[k kᵀ] of the down projection's inputs, from a plain HF forward with hidden states and the MLP by hand."""
    from ffn_widgets.editing.stats import corpus_texts

    ids = corpus_texts(lm, corpus, tokens)
    total = torch.zeros(lm.d_mlp, lm.d_mlp, dtype=torch.float64)
    keys = []
    handle = lm.model.model.layers[layer].mlp.down_proj.register_forward_hook(
        lambda m, args, out: keys.append(args[0].reshape(-1, lm.d_mlp).double()))
    try:
        with torch.no_grad():
            for start in range(0, len(ids), 8):
                lm.model(input_ids=ids[start:start + 8], use_cache=False)
    finally:
        handle.remove()
    for k in keys:
        total += k.T @ k
    return total / ids.numel()


@pytest.mark.real_model
def test_the_default_model_on_two_workers_equals_in_process(default_lm, dev_facts, corpus, cluster):
    facts = [{"prompt": f["prompt"], "subject": f["subject"], "target": f["target_true"]} for f in dev_facts[:2]]
    with _outside(cluster):
        here = fw.trace_many(default_lm, facts, kind="mlp", samples=2, progress=False)
        moment_here = fw.key_statistics(default_lm, 4, corpus, tokens=2048, progress=False, force=True)
    there = fw.trace_many(default_lm, facts, kind="mlp", samples=2, progress=False)  # loaded by name there
    moment = fw.key_statistics(default_lm, 4, corpus, tokens=2048, progress=False, force=True)
    torch.testing.assert_close(there.scores["mlp"], here.scores["mlp"], rtol=0, atol=0)
    torch.testing.assert_close(moment, moment_here, rtol=1e-12, atol=0)
    assert there.n_facts == here.n_facts == 2
