"""Geva's trigger mining: every neuron's top-k corpus prefixes and a histogram of all its activations.

    index = fw.mine_triggers(lm, fw.load_corpus(), k=25)      # cached on disk, resumable
    index.top(20, 1234)[0].text, .activation, .next_token
    python -m ffn_widgets mine --dtype bfloat16                  # the same from a terminal

A prefix's score is the activation at its last token, so one forward pass scores every prefix of every
sentence in the batch. Bookkeeping streams: a hook on each layer's down projection turns the batch's
activations into histogram counts and merges only values that can still enter a neuron's top-k (those
at least its current k-th best), so memory never holds more than one layer of one batch. Sentences are
batched by equal token length (no padding). Ties rank the earlier corpus position first, so the result
does not depend on batching order. Ctrl-C takes effect after the running batch, whose state is then
checkpointed atomically; the next call resumes from the last checkpoint.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from ..model import InputError, Intervention
from ..model.hooks import hooked
from ..model.lm import LM
from ..model.loading import as_dtype
from ..model.long_runs import deferred_interrupt, progress_bar
from ..model.watch import same_model
from .bookkeeping import LOW, PAD, add_histogram, decode_keys, encode_keys, merge_topk
from .corpus import Corpus, load_corpus
from .index import FORMAT, MAX_EXP, MIN_EXP, N_BINS, SUB_BINS, VERSION, TriggerIndex, default_index_path

MIN_SHARD_BATCHES = 16  # on a cluster, where the first batches of a fresh top-k cost most
_STATIC = ("token_ids", "token_ends", "sentence_offsets")
_STATE = ("top_activation", "top_sentence", "top_position", "histogram")


def mine_triggers(lm: LM, corpus=None, k: int = 25, *, dtype=None, path=None, batch_tokens: int = 2048,
                  max_tokens: int = 128, resume: bool = True, force: bool = False, progress=True,
                  checkpoint_seconds: float = 60.0, max_batches: int | None = None) -> TriggerIndex:
    """Mine (or open the cached) trigger index of ``lm`` over ``corpus`` (anything :func:`load_corpus` takes).

    ``dtype`` runs the model in another precision for speed (e.g. ``"bfloat16"``; recorded in the index).
    ``path`` defaults to a folder in the user cache keyed by model, corpus and parameters. ``max_batches``
    mines only that many batches now and returns the partial index; calling again resumes.
    """
    corpus = corpus if isinstance(corpus, Corpus) else load_corpus(corpus)
    for name, value, low in (("k", k, 1), ("batch_tokens", batch_tokens, 1), ("max_tokens", max_tokens, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InputError(f"{name} must be a positive integer, got {value!r}.")
    run_dtype = lm.dtype if dtype is None else as_dtype(dtype)
    params = {"k": k, "dtype": str(run_dtype).replace("torch.", ""), "max_tokens": max_tokens,
              "batch_tokens": batch_tokens}
    final = Path(path) if path is not None else default_index_path(lm, corpus, **params)
    if force:
        _remove(final)
        _remove(_partial(final))
    elif (final / "manifest.json").exists():
        try:
            return TriggerIndex.load(final)
        except InputError:
            if path is not None:  # the user's own folder: say so, touch nothing
                raise
            _remove(final)  # an index of an older format in our own cache: mine it again
            _remove(_partial(final))
    miner = Miner(lm if run_dtype == lm.dtype else _converted(lm, run_dtype), corpus, params, final,
                   fingerprint=lm.fingerprint, source=lm)
    return miner.run(resume, progress, checkpoint_seconds, max_batches)


def _converted(lm: LM, dtype: torch.dtype) -> LM:
    if lm.is_split:
        raise InputError(f"This model is spread over devices by accelerate, so it cannot be copied into {dtype}; "
                         f"load it with load_model(..., dtype={str(dtype).replace('torch.', '')!r}) and mine that.")
    return LM(copy.deepcopy(lm.model).to(dtype), lm.tokenizer, lm.name)


# ---- the mining run -----------------------------------------------------------------------------
class _State:
    """Results after ``batches_done`` whole batches, updated in place; ``dirty`` while a batch is half done."""

    def __init__(self, keys: torch.Tensor, counts: torch.Tensor, batches_done: int, tokens_done: int):
        self.keys, self.counts, self.batches_done, self.tokens_done = keys, counts, batches_done, tokens_done
        self.dirty = False


class Miner:
    """One mining run over a corpus: streams batches through the model, checkpoints, writes the index."""
    def __init__(self, lm: LM, corpus: Corpus, params: dict, final: Path, fingerprint: str, source: LM | None = None):
        self.lm, self.corpus, self.params, self.final = lm, corpus, params, final
        self.fingerprint = fingerprint
        self.source = source or lm  # the model as the caller has it (lm may be a copy in another dtype)
        self.lead, self.ids, self.ends, offsets = _tokenize(lm.tokenizer, corpus.sentences, params["max_tokens"])
        self.offsets = torch.as_tensor(offsets)
        if self.offsets[-1] >= LOW:
            raise InputError(f"The corpus has {int(self.offsets[-1]):,} tokens; at most {LOW - 1:,} can be mined.")
        self.batches = _plan(np.diff(offsets), params["batch_tokens"], len(self.lead))
        self.device = lm.device  # where the bookkeeping lives; a split model's other layers copy in and out

    def fresh(self) -> _State:
        L, d = self.lm.n_layers, self.lm.d_mlp
        keys = torch.full((L, d, self.params["k"]), PAD, dtype=torch.int64, device=self.device)
        return _State(keys, torch.zeros(L, d * N_BINS, dtype=torch.int64, device=self.device), 0, 0)

    def run(self, resume, progress, checkpoint_seconds, max_batches) -> TriggerIndex:
        partial = _partial(self.final)
        state = self._resumed(partial) if resume else None
        if state is None:
            _remove(partial)
            state = self.fresh()
        bar = progress_bar(progress, int(self.offsets[-1]), f"mining {self.lm.name}", state.tokens_done, "tok")
        last_save, stop = time.monotonic(), len(self.batches)
        if max_batches is not None:
            stop = min(stop, state.batches_done + max_batches)
        from ..sharded.session import current

        def merged(state: _State, tokens: int) -> None:
            nonlocal last_save
            if bar is not None:
                bar.update(tokens)
            if time.monotonic() - last_save > checkpoint_seconds and state.batches_done < len(self.batches):
                self._checkpoint(partial, state)
                last_save = time.monotonic()

        version = self.lm.state_version
        try:
            if current() is not None:  # shards of the plan on the cluster's workers, merged here in order
                self._on_cluster(current(), state, stop, merged)
            for b in range(state.batches_done, stop):
                same_model(self.lm, version, "Mining")  # an index from two models would describe neither
                with deferred_interrupt():
                    self._step(state, self.batches[b])
                merged(state, len(self.batches[b]) * self._length(self.batches[b]))
        except BaseException:
            if state.batches_done and not state.dirty:
                self._checkpoint(partial, state)  # the last whole batch: resume continues from here
            raise
        finally:
            if bar is not None:
                bar.close()
        if state.batches_done < len(self.batches):
            self._checkpoint(partial, state)
            return TriggerIndex.load(partial)
        self._write_final(state)
        _remove(partial)
        return TriggerIndex.load(self.final)

    def _on_cluster(self, cluster, state: _State, stop: int, on_merged) -> None:
        """Batches ``state.batches_done .. stop`` on the cluster's workers, merged into ``state`` in batch order
        (so checkpoints stay whole batches); ``on_merged(state, tokens)`` after each merged shard."""
        import ray

        from ..sharded.dispatch import split, stream_shards
        from ..sharded.jobs import SHARDS_PER_WORKER, InOrder, started

        lm = self.source  # workers load the model as loaded and convert it to the mining dtype themselves
        todo = stop - state.batches_done  # shards of at least MIN_SHARD_BATCHES: each starts from an empty top-k
        pieces = split(todo, max(cluster.workers, min(cluster.workers * SHARDS_PER_WORKER, todo // MIN_SHARD_BATCHES)))
        ids = [list(range(state.batches_done + r.start, state.batches_done + r.stop)) for r in pieces]
        corpus = ray.put(self.corpus)
        sizes = [sum(len(self.batches[b]) * self._length(self.batches[b]) for b in batch_ids) for batch_ids in ids]
        version, order, k = started(cluster, lm), InOrder(), self.params["k"]
        for i, part in stream_shards(cluster, lm, mine_batches, [(corpus, self.params, b) for b in ids],
                                     desc=f"mining {lm.name}", progress=False, weights=sizes, unit="tok"):
            for j, (keys, counts) in order.add(i, part):
                same_model(lm, version, "Mining")  # an index from two models would describe neither
                with deferred_interrupt():  # a merge is whole or not at all: a checkpoint never holds half of one
                    state.keys = torch.cat([state.keys, keys.to(state.keys.device)], -1).topk(k, dim=-1).values
                    state.counts += counts.to(state.counts.device)
                    state.batches_done += len(ids[j])
                    state.tokens_done += sizes[j]
                on_merged(state, sizes[j])

    def _step(self, state: _State, sentences: np.ndarray) -> None:
        """One forward pass over sentences of equal length, updating ``state`` in place layer by layer."""
        lm, lead = self.lm, len(self.lead)
        starts = self.offsets[torch.as_tensor(sentences)]
        length = self._length(sentences)
        flat = (starts[:, None] + torch.arange(length)).reshape(-1)
        ids = torch.as_tensor(self.ids)[flat].reshape(len(sentences), length).long()
        if lead:
            ids = torch.cat([torch.as_tensor(self.lead).expand(len(sentences), lead), ids], 1)

        on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

        def record(layer):
            def fn(acts):
                x = acts[:, lead:].reshape(-1, acts.shape[-1]).float().contiguous()
                if x.device not in on_device:  # corpus positions and neuron offsets where this layer computes
                    on_device[x.device] = (flat.to(x.device),
                                           torch.arange(lm.d_mlp, dtype=torch.int32, device=x.device) * N_BINS)
                gidx, neuron_offset = on_device[x.device]
                counts = state.counts[layer].to(x.device)  # a view, unless a split model computes elsewhere
                add_histogram(counts, x, neuron_offset)
                keys = merge_topk(state.keys[layer].to(x.device), x, gidx)
                if counts.device != state.counts.device:
                    state.counts[layer] = counts.to(state.counts.device)
                state.keys[layer] = keys.to(state.keys.device)
                return acts
            return fn

        edits = [Intervention("neurons", layer, "fn", record(layer)) for layer in range(lm.n_layers)]
        state.dirty = True
        with torch.no_grad(), hooked(lm, (), edits):
            lm.forward(ids.to(lm.device), last_only=True)
        state.batches_done += 1
        state.tokens_done += len(flat)
        state.dirty = False

    def _length(self, sentences) -> int:
        first = int(sentences[0])
        return int(self.offsets[first + 1] - self.offsets[first])

    # ---- files -----------------------------------------------------------------------------
    def _manifest(self, state: _State) -> dict:
        return {"format": FORMAT, "version": VERSION, "model": self.lm.name, "model_fingerprint": self.fingerprint,
                "architecture": self.lm.config.model_type, "n_layers": self.lm.n_layers, "d_mlp": self.lm.d_mlp,
                "corpus": {"name": self.corpus.name, "digest": self.corpus.digest, "sentences": len(self.corpus),
                           "tokens": int(self.offsets[-1]), "meta": self.corpus.meta},
                **self.params, "lead_tokens": [int(i) for i in self.lead],
                "histogram": {"kind": "signed log2", "sub_bins": SUB_BINS, "min_exp": MIN_EXP, "max_exp": MAX_EXP,
                              "bins": N_BINS},
                "tie_break": "higher activation first, then earlier corpus position",
                "progress": {"batches_done": state.batches_done, "batches": len(self.batches),
                             "tokens_done": state.tokens_done, "complete": state.batches_done == len(self.batches)},
                "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    def _state_arrays(self, state: _State) -> dict[str, np.ndarray]:
        value, sentence, position = decode_keys(state.keys.cpu(), self.offsets)
        counts = state.counts.cpu().reshape(self.lm.n_layers, self.lm.d_mlp, N_BINS)
        if int(counts.max()) < 2 ** 31:
            counts = counts.to(torch.int32)
        return {"top_activation": value.numpy(), "top_sentence": sentence.numpy(), "top_position": position.numpy(),
                "histogram": counts.numpy()}

    def _static_arrays(self) -> dict[str, np.ndarray]:
        return {"token_ids": self.ids, "token_ends": self.ends, "sentence_offsets": self.offsets.numpy()}

    def _write_static(self, folder: Path) -> None:
        for name, array in self._static_arrays().items():
            _save_npy(folder / f"{name}.npy", array)
        _write_atomic(folder / "sentences.json", json.dumps(self.corpus.sentences, ensure_ascii=False))

    def _checkpoint(self, partial: Path, state: _State) -> None:
        partial.mkdir(parents=True, exist_ok=True)
        if not (partial / "sentences.json").exists():
            self._write_static(partial)
        name = f"ckpt-{state.batches_done:07d}"
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=partial))
        for key, array in self._state_arrays(state).items():
            np.save(tmp / f"{key}.npy", array, allow_pickle=False)
        (tmp / "manifest.json").write_text(json.dumps(self._manifest(state), indent=1), encoding="utf-8")
        _remove(partial / name)
        os.replace(tmp, partial / name)
        _write_atomic(partial / "CURRENT", name)
        for old in partial.glob("ckpt-*"):
            if old.name != name:
                _remove(old)

    def _resumed(self, partial: Path) -> _State | None:
        """The last checkpoint of an interrupted run with the same model, corpus and parameters."""
        try:
            index = TriggerIndex.load(partial)
        except (InputError, OSError, ValueError, json.JSONDecodeError):
            return None
        m = index.manifest
        same = (m["model_fingerprint"] == self.fingerprint and m["corpus"]["digest"] == self.corpus.digest
                and all(m[key] == value for key, value in self.params.items())
                and m["progress"]["batches"] == len(self.batches))
        if not same:
            return None
        keys = encode_keys(index.values, index.sentence_ids, index.positions, self.offsets)
        counts = torch.from_numpy(np.array(index.counts, dtype=np.int64)).reshape(self.lm.n_layers, -1)
        return _State(keys.to(self.device), counts.to(self.device), m["progress"]["batches_done"],
                      m["progress"]["tokens_done"])

    def _write_final(self, state: _State) -> None:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.tmp-", dir=self.final.parent))
        try:
            for key, array in {**self._state_arrays(state), **self._static_arrays()}.items():
                np.save(tmp / f"{key}.npy", array, allow_pickle=False)
            (tmp / "sentences.json").write_text(json.dumps(self.corpus.sentences, ensure_ascii=False), "utf-8")
            (tmp / "manifest.json").write_text(json.dumps(self._manifest(state), indent=1), encoding="utf-8")
            if self.final.exists():
                _remove(self.final)
            os.replace(tmp, self.final)
        except BaseException:
            _remove(tmp)
            raise


_WORKER_MINER: dict = {}  # in a cluster worker: the running job's miner (the corpus tokenised once, not per shard)


def mine_batches(lm: LM, corpus: Corpus, params: dict, batch_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A cluster worker's shard: top-k keys and histogram counts of these batches of the plan, from an empty state."""
    key = (corpus.digest, tuple(sorted(params.items())))
    if key not in _WORKER_MINER:
        _WORKER_MINER.clear()
        dtype = as_dtype(params["dtype"])
        _WORKER_MINER[key] = Miner(lm if dtype == lm.dtype else _converted(lm, dtype), corpus, params,
                                   Path("unused"), lm.fingerprint)
    miner = _WORKER_MINER[key]
    state = miner.fresh()
    for b in batch_ids:
        miner._step(state, miner.batches[b])
    return state.keys.cpu(), state.counts.cpu()


# ---- helpers ------------------------------------------------------------------------------------
def _tokenize(tokenizer, sentences: list[str], max_tokens: int):
    """Token ids and character ends of every sentence (no special tokens), plus the tokens the tokenizer
    puts in front of a text (a BOS), which every sequence gets but which are never mined."""
    lead = tokenizer("a")["input_ids"][:-len(tokenizer("a", add_special_tokens=False)["input_ids"])]
    lead = np.asarray(lead, dtype=np.int64)
    ids, ends, lengths = [], [], []
    fast = getattr(tokenizer, "is_fast", False)
    enc = tokenizer(sentences, add_special_tokens=False, return_offsets_mapping=fast)
    for i, text in enumerate(sentences):
        tok = enc["input_ids"][i][:max_tokens]
        if fast:
            end = [e for _, e in enc["offset_mapping"][i][:max_tokens]]
        else:
            end = [len(tokenizer.decode(tok[:j + 1])) for j in range(len(tok))]
        end = np.minimum(np.maximum.accumulate(np.asarray(end or [0], dtype=np.int64)), len(text))[:len(tok)]
        ids.append(np.asarray(tok, dtype=np.int32))
        ends.append(end.astype(np.int32))
        lengths.append(len(tok))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return lead, np.concatenate(ids).astype(np.int32), np.concatenate(ends).astype(np.int32), offsets


def _plan(lengths: np.ndarray, batch_tokens: int, lead: int) -> list[np.ndarray]:
    """Batches of sentence ids with equal token length (no padding), shortest first, in a fixed order."""
    order = np.lexsort((np.arange(len(lengths)), lengths))
    batches = []
    for length in np.unique(lengths[lengths > 0]):
        same = order[lengths[order] == length]
        size = max(1, batch_tokens // int(length + lead))
        batches.extend(same[i:i + size] for i in range(0, len(same), size))
    return batches




def _partial(final: Path) -> Path:
    return final.with_name(final.name + ".partial")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _save_npy(path: Path, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        np.save(f, array, allow_pickle=False)
    os.replace(tmp, path)
