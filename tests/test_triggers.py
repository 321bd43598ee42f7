"""Trigger mining against brute force: every prefix's activation from plain per-sentence forward passes
(our own torch hooks on the down projection, not the project's hook core), sorted in full."""
import copy
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import hook_ids

import ffn_widgets as fw
from ffn_widgets.memories.corpus import load_corpus
from ffn_widgets.memories.index import N_BINS, N_MAG, TriggerIndex, bin_of, histogram_edges
from ffn_widgets.memories.mining import mine_triggers

K = 6


@pytest.fixture(scope="module")
def corpus():
    lee = load_corpus("lee").sentences[:24]
    # duplicates tie exactly: the earlier sentence must rank first; odd text must survive as text
    extra = ["The cat sat on the mat.", "The cat sat on the mat.", "Tags like <img src=x onerror=alert(1)> stay text."]
    return load_corpus(lee + extra)


def brute_force(model, tokenizer, sentences, max_tokens=128, dtype=torch.float32):
    """All activations ``[layer, corpus token, neuron]`` from one plain forward per sentence."""
    blocks = [m for name, m in model.named_modules() if name.endswith("mlp.down_proj")]
    got = {i: [] for i in range(len(blocks))}
    handles = [b.register_forward_pre_hook(lambda mod, args, i=i: got[i].append(args[0][0].float().clone()))
               for i, b in enumerate(blocks)]
    try:
        for s in sentences:
            ids = tokenizer(s, add_special_tokens=False)["input_ids"][:max_tokens]
            with torch.no_grad():
                model(input_ids=torch.tensor([ids]), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return np.stack([torch.cat(got[i]).numpy() for i in range(len(blocks))])


def brute_top(acts, k):
    order = np.argsort(-acts, axis=1, kind="stable")[:, :k, :]  # ties: earlier corpus token first
    return np.take_along_axis(acts, order, 1).transpose(0, 2, 1), order.transpose(0, 2, 1)


def brute_histogram(acts):
    grid = histogram_edges()[N_MAG + 1:-1]
    mag = np.minimum(np.searchsorted(grid, np.abs(acts), side="right"), N_MAG)
    bins = np.where(acts >= 0, N_MAG + mag, N_MAG - mag)
    out = np.zeros((acts.shape[0], acts.shape[2], N_BINS), np.int64)
    for layer in range(acts.shape[0]):
        np.add.at(out[layer], (np.broadcast_to(np.arange(acts.shape[2]), bins[layer].shape), bins[layer]), 1)
    return out


def corpus_position(index):
    return np.asarray(index.offsets)[np.asarray(index.sentence_ids)] + np.asarray(index.positions)


@pytest.fixture(scope="module")
def mined(tiny_lm, corpus, tmp_path_factory):
    return mine_triggers(tiny_lm, corpus, k=K, path=tmp_path_factory.mktemp("idx") / "index", batch_tokens=200,
                         progress=False)


def test_index_equals_brute_force(tiny_lm, corpus, mined):
    acts = brute_force(tiny_lm.model, tiny_lm.tokenizer, corpus.sentences)
    values, where = brute_top(acts, K)
    np.testing.assert_allclose(mined.values, values, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(corpus_position(mined), where)
    np.testing.assert_array_equal(mined.counts, brute_histogram(acts))
    assert mined.complete and mined.tokens_mined == acts.shape[1] and mined.dtype == "float32"


def test_trigger_text_and_next_token(tiny_lm, corpus, mined):
    tok = tiny_lm.tokenizer
    dup = corpus.sentences.index("The cat sat on the mat.")
    for layer in range(tiny_lm.n_layers):
        for neuron in (0, 7, 100):
            top = mined.top(layer, neuron)
            for t in top:
                ids = tok(t.sentence_text, add_special_tokens=False)["input_ids"]
                assert t.text == tok.decode(ids[:t.position + 1])
                assert t.token == tok.decode(ids[t.position:t.position + 1])
                assert t.text.endswith(t.token) and t.before + t.token == t.text
                if t.position + 1 < len(ids):
                    assert (t.next_token_id, t.next_token) == (ids[t.position + 1], tok.decode([ids[t.position + 1]]))
                else:
                    assert t.next_token is None
                if t.sentence == dup + 1:  # an exact tie with the earlier copy, which must rank just before
                    before = top[t.rank - 1]
                    assert (before.sentence, before.position, before.activation) == (dup, t.position, t.activation)
    assert np.all(np.diff(mined.values, axis=2) <= 0)


def test_resumed_and_interrupted_equal_uninterrupted(tiny_lm, corpus, mined, tmp_path):
    path = tmp_path / "resumed"
    part = mine_triggers(tiny_lm, corpus, k=K, path=path, batch_tokens=200, progress=False, max_batches=3)
    assert not part.complete and part.manifest["progress"]["batches_done"] == 3
    calls = {"n": 0}

    def interrupt(module, args, output):  # a real Ctrl-C, arriving in the middle of the fourth batch
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signal.SIGINT)

    before = hook_ids(tiny_lm)
    handle = tiny_lm.blocks[1].register_forward_hook(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            mine_triggers(tiny_lm, corpus, k=K, path=path, batch_tokens=200, progress=False)
    finally:
        handle.remove()
    saved = TriggerIndex.load(path.with_name("resumed.partial"))
    assert saved.manifest["progress"]["batches_done"] == 7  # the interrupted batch was finished first
    assert hook_ids(tiny_lm) == before, "hook left behind"
    done = mine_triggers(tiny_lm, corpus, k=K, path=path, batch_tokens=200, progress=False)
    assert done.complete and not path.with_name("resumed.partial").exists()
    for name in ("values", "sentence_ids", "positions", "counts"):
        np.testing.assert_array_equal(getattr(done, name), getattr(mined, name))


def test_cached_by_key_and_safe_format(tiny_lm, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))
    first = mine_triggers(tiny_lm, corpus.head(6), k=3, progress=False)
    written = first.manifest["written"]
    again = mine_triggers(tiny_lm, corpus.head(6), k=3, progress=False)
    assert again.path == first.path and again.manifest["written"] == written
    other = mine_triggers(tiny_lm, corpus.head(5), k=3, progress=False)
    assert other.path != first.path
    for f in first.path.glob("*.npy"):
        np.load(f, allow_pickle=False)
    manifest = json.loads((first.path / "manifest.json").read_text())
    assert manifest["corpus"]["digest"] == corpus.head(6).digest and manifest["k"] == 3
    assert not list(tmp_path.rglob(".tmp-*")), "temporary files left behind"


def test_cached_triggers_opens_only_finished_indexes(tiny_lm, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("FFN_WIDGETS_CACHE", str(tmp_path))
    assert fw.cached_triggers(tiny_lm, corpus.head(6), k=3) is None
    partial = mine_triggers(tiny_lm, corpus.head(6), k=3, progress=False, max_batches=1)
    assert not partial.complete
    assert fw.cached_triggers(tiny_lm, corpus.head(6), k=3) is None
    done = mine_triggers(tiny_lm, corpus.head(6), k=3, progress=False)
    assert fw.cached_triggers(tiny_lm, corpus.head(6), k=3).path == done.path
    assert fw.cached_triggers(tiny_lm, corpus.head(5), k=3) is None
    bf16 = mine_triggers(tiny_lm, corpus.head(5), k=3, dtype="bfloat16", progress=False)
    assert fw.cached_triggers(tiny_lm, corpus.head(5), k=3).path == bf16.path
    # an index of an older format in the cache is not offered, and mining replaces it with an equal fresh one
    before, manifest = np.array(done.values), Path(done.path) / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"ffn_widgets.triggers"', '"an.older.format"'))
    assert fw.cached_triggers(tiny_lm, corpus.head(6), k=3) is None
    again = mine_triggers(tiny_lm, corpus.head(6), k=3, progress=False)
    np.testing.assert_array_equal(again.values, before)
    assert fw.cached_triggers(tiny_lm, corpus.head(6), k=3).path == again.path


def test_bfloat16_mining_records_dtype_and_leaves_model(tiny_lm, corpus, tmp_path):
    index = mine_triggers(tiny_lm, corpus, k=K, dtype="bfloat16", path=tmp_path / "bf16", progress=False)
    assert index.dtype == "bfloat16" and tiny_lm.dtype == torch.float32
    acts = brute_force(copy.deepcopy(tiny_lm.model).to(torch.bfloat16), tiny_lm.tokenizer, corpus.sentences)
    values, where = brute_top(acts, K)
    # bfloat16 is coarse: many exact ties, all broken towards the earlier corpus position
    np.testing.assert_array_equal(index.values, values)
    np.testing.assert_array_equal(corpus_position(index), where)


def test_bad_input(tiny_lm, corpus, tmp_path):
    with pytest.raises(fw.InputError, match="k must be"):
        mine_triggers(tiny_lm, corpus, k=0, path=tmp_path / "x", progress=False)
    with pytest.raises(fw.InputError, match="dtype"):
        mine_triggers(tiny_lm, corpus, dtype="int8", path=tmp_path / "x", progress=False)
    with pytest.raises(fw.InputError, match="empty"):
        mine_triggers(tiny_lm, ["  ", ""], path=tmp_path / "x", progress=False)
    with pytest.raises(fw.InputError, match="not a trigger index"):
        TriggerIndex.load(tmp_path)
    assert not (tmp_path / "x").exists()


def test_histogram_bins():
    edges = histogram_edges()
    assert len(edges) == N_BINS + 1 and np.all(np.diff(edges) > 0)
    for value in (0.0, 1e-4, -1e-4, 0.3, -0.3, 1.0, -2.5, 500.0, -500.0):
        b = bin_of(value)
        lo, hi = edges[b], edges[b + 1]
        assert lo <= value <= hi, (value, b, lo, hi)


@pytest.mark.real_model
def test_cli_mines_the_real_model(default_lm, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "cli_index"
    cmd = [sys.executable, "-m", "ffn_widgets", "mine", "--corpus", "lee", "--max-sentences", "6", "--k", "3",
           "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    index = fw.load_triggers(out)
    assert index.complete and index.manifest["model"] == fw.DEFAULT_MODEL and index.n_layers == 30
    sentences = load_corpus("lee", max_sentences=6).sentences
    acts = torch.cat([default_lm.run(s, capture=("neurons",)).activations for s in sentences], dim=1)  # [L, T, d]
    best = acts.max(dim=1).values.numpy()
    np.testing.assert_allclose(index.values[:, :, 0], best, rtol=1e-4, atol=1e-5)
    bad = subprocess.run(cmd[:4] + ["--corpus", "no_such_file.txt"], capture_output=True, text=True)
    assert bad.returncode == 2 and "neither a file nor one of" in bad.stderr, bad.stderr
