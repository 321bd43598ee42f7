"""Key statistics: C = E[k kᵀ], the uncentered second moment of a layer's down-projection inputs over a corpus.

ROME's update spreads a new value along C⁻¹k*: directions the layer's keys rarely take absorb the change,
so other inputs keep their outputs. C is a property of the *unedited* model (ROME, MEMIT and AlphaEdit
define it so): it is computed with every logged edit suspended and cached under the fingerprint of the
weights as loaded, so a log of many edits reuses it.

    C = fw.key_statistics(lm, layer=5)                    # default corpus, 100,000 tokens; cached on disk
    Cs = fw.key_statistics(lm, layer=[3, 5, 7])           # one pass for several layers

The corpus is read as a stream of 256-token texts (shorter where the model's context is) (sentences joined in corpus order). The forward stops
after the deepest wanted layer's MLP input; each batch adds ``Kᵀ K`` to a float64 sum. Checkpoints are
written atomically every ``checkpoint_seconds``, so an interrupted pass resumes; a corrupt cache file is
reported and computed again.
"""
from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from ..memories.corpus import Corpus, load_corpus
from ..model import LM, InputError
from ..model.loading import cache_dir
from ..model.long_runs import deferred_interrupt, progress_bar
from ..model.watch import same_model
from ..sharded.shards import given

DEFAULT_TOKENS = 100_000
TEXT_TOKENS = 256
BATCH_TEXTS = 8


def statistics_of(moments: "KeyMoments") -> dict[str, torch.Tensor]:
    """A finished pass's statistics by cache file name, to send with a cluster job (a worker finds them by
    the same name instead of its disk cache: :func:`ffn_widgets.sharded.shards.provided`)."""
    return {moments.paths[layer].name: moments.result[layer] for layer in moments.layers}


def for_workers(lm: LM, layers, corpus=None, tokens: int = DEFAULT_TOKENS, progress=False) -> dict[str, torch.Tensor]:
    """Inside ``fw.cluster()``: the key statistics of ``layers``, computed (and cached) here once, to send with a job's
    shards; ``{}`` in process (each edit reads the cache itself)."""
    from ..model.long_runs import run_steps
    from ..sharded.session import current

    if current() is None or not len(layers):
        return {}
    moments = KeyMoments(lm, list(layers), corpus, tokens)
    run_steps(moments.steps(progress))
    return statistics_of(moments)


class _Stop(Exception):
    """Raised by the hook of the deepest wanted layer: nothing above it needs computing."""


def key_statistics(lm: LM, layer, corpus=None, tokens: int = DEFAULT_TOKENS, *, progress=True,
                   force: bool = False, checkpoint_seconds: float = 30.0):
    """C ``[d_mlp, d_mlp]`` (float64, on the CPU) of ``layer`` over ``tokens`` tokens of ``corpus`` (anything
    :func:`~ffn_widgets.load_corpus` takes; default Wikipedia); a list of layers gives ``{layer: C}``."""
    one = isinstance(layer, int) and not isinstance(layer, bool)
    moments = KeyMoments(lm, [layer] if one else list(layer), corpus, tokens, force=force,
                         checkpoint_seconds=checkpoint_seconds)
    for _ in moments.steps(progress):
        pass
    return moments.result[layer] if one else moments.result


class KeyMoments:
    """One statistics pass, as steps (the editor widget shows their progress and can stop between them)."""

    def __init__(self, lm: LM, layers: list[int], corpus=None, tokens: int = DEFAULT_TOKENS, *,
                 force: bool = False, checkpoint_seconds: float = 30.0):
        if not layers:
            raise InputError("Give at least one layer.")
        self.layers = sorted({lm.check_layer(layer) for layer in layers})
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < TEXT_TOKENS:
            raise InputError(f"tokens must be an integer of at least {TEXT_TOKENS}, got {tokens!r}.")
        self.lm, self.tokens, self.checkpoint_seconds = lm, tokens, checkpoint_seconds
        self.corpus = corpus if isinstance(corpus, Corpus) else load_corpus(corpus)
        self.result: dict[int, torch.Tensor] = {}
        self.tokens_done = 0
        self.width = text_tokens(lm)
        key = f"{lm.edits.base_fingerprint}-{self.corpus.digest}-t{tokens}-w{self.width}"
        self.paths = {layer: stats_path(lm, key, layer) for layer in self.layers}
        if force:
            for p in self.paths.values():
                p.unlink(missing_ok=True)
        for layer, p in self.paths.items():
            loaded = given(p.name)
            loaded = _read(p, lm.d_mlp) if loaded is None else loaded
            if loaded is not None:
                self.result[layer] = loaded
        self.todo = [layer for layer in self.layers if layer not in self.result]
        self.partial = self.paths[self.todo[-1]].with_suffix(f".L{'-'.join(map(str, self.todo))}.partial") \
            if self.todo else None

    def steps(self, progress=False) -> Iterator[float]:
        """Run the pass, yielding the fraction done after each batch (nothing when everything is cached); inside
        ``fw.cluster()`` the texts are shared out to the workers and their sums added here."""
        if not self.todo:
            return
        from ..sharded.session import current

        texts = corpus_texts(self.lm, self.corpus, self.tokens)
        sums, done = self._resume(len(texts))
        cluster = current()
        if cluster is not None:
            yield from self._on_cluster(cluster, texts, sums, done, progress)
        else:
            yield from self._local(texts, sums, done, progress)
        count = texts.numel()
        for layer in self.todo:
            self.result[layer] = sums[layer] / count
            _write(self.paths[layer], {"moment": self.result[layer]}, {"tokens": str(count)})
        self.partial.unlink(missing_ok=True)
        self.todo = []

    def _local(self, texts, sums, done, progress) -> Iterator[float]:
        bar = progress_bar(progress, texts.numel(), f"key statistics {self.lm.name}", done * self.width, "tok")
        last_save = time.monotonic()
        try:
            with self.lm.edits.original():
                version = self.lm.state_version
                for start in range(done, len(texts), BATCH_TEXTS):
                    same_model(self.lm, version, "The key statistics")  # sums over one model only
                    batch = texts[start:start + BATCH_TEXTS]
                    with deferred_interrupt():
                        add_key_moments(self.lm, batch, self.todo, sums)
                        done = start + len(batch)
                    self.tokens_done = done * self.width
                    if bar is not None:
                        bar.update(batch.numel())
                    if time.monotonic() - last_save > self.checkpoint_seconds and done < len(texts):
                        self.save_partial(sums, done)
                        last_save = time.monotonic()
                    yield done / len(texts)
        except BaseException:
            if 0 < done < len(texts):
                self.save_partial(sums, done)
            raise
        finally:
            if bar is not None:
                bar.close()

    def _on_cluster(self, cluster, texts, sums, done, progress) -> Iterator[float]:
        """The pass over ``texts[done:]`` on the cluster's workers, in pieces of whole batches; ``sums`` grows in text
        order (the float64 sums do not depend on which worker finished first), checkpointed on Ctrl-C."""
        from ..sharded.dispatch import split, stream_shards
        from ..sharded.jobs import SHARDS_PER_WORKER, InOrder, started

        n = len(texts)
        pieces = split(-(-(n - done) // BATCH_TEXTS), cluster.workers * SHARDS_PER_WORKER)
        bounds = [(done + r.start * BATCH_TEXTS, min(n, done + r.stop * BATCH_TEXTS)) for r in pieces]
        shards = [(texts[a:b], self.todo) for a, b in bounds]
        version, order, merged = started(cluster, self.lm), InOrder(), done
        try:
            for i, part in stream_shards(cluster, self.lm, key_moment_sums, shards, progress=progress, unit="tok",
                                         desc=f"key statistics {self.lm.name}", weights=[s[0].numel() for s in shards]):
                for j, ready in order.add(i, part):
                    for layer in self.todo:
                        sums[layer] += ready[layer]
                    merged = bounds[j][1]
                self.tokens_done = merged * self.width
                yield merged / n
            same_model(self.lm, version, "The key statistics")
        except BaseException:
            if done < merged < n:
                self.save_partial(sums, merged)  # the texts merged in order so far: a later run resumes there
            raise

    def save_partial(self, sums: dict[int, torch.Tensor], done: int) -> None:
        _write(self.partial, {f"sum{layer}": s for layer, s in sums.items()}, {"done": str(done)})

    def _resume(self, n_texts: int) -> tuple[dict[int, torch.Tensor], int]:
        fresh = {layer: torch.zeros(self.lm.d_mlp, self.lm.d_mlp, dtype=torch.float64) for layer in self.todo}
        state = _read_raw(self.partial)
        if state is None:
            return fresh, 0
        tensors, meta = state
        try:
            done = int(meta["done"])
            sums = {layer: tensors[f"sum{layer}"] for layer in self.todo}
            assert 0 < done < n_texts and all(s.shape == fresh[layer].shape for layer, s in sums.items())
        except (KeyError, ValueError, AssertionError):
            return fresh, 0
        return sums, done


def key_moment_sums(lm: LM, texts: torch.Tensor, layers: list[int]) -> dict[int, torch.Tensor]:
    """A cluster worker's shard: Σ Kᵀ K of ``layers`` over ``texts``, batch by batch as in process, unedited."""
    sums = {layer: torch.zeros(lm.d_mlp, lm.d_mlp, dtype=torch.float64) for layer in layers}
    with lm.edits.original():
        for start in range(0, len(texts), BATCH_TEXTS):
            add_key_moments(lm, texts[start:start + BATCH_TEXTS], layers, sums)
    return sums


def text_tokens(lm: LM) -> int:
    return min(TEXT_TOKENS, lm.n_ctx)


def corpus_texts(lm: LM, corpus: Corpus, tokens: int) -> torch.Tensor:
    """``[n_texts, 256]`` token ids: the corpus's sentences in order, joined by spaces, cut into texts of 256
    tokens (or the model's context; each led by the tokenizer's BOS where it has one), for ``tokens`` tokens."""
    lead = lm.tokenizer("a")["input_ids"][:-len(lm.tokenizer("a", add_special_tokens=False)["input_ids"])]
    width = text_tokens(lm) - len(lead)
    n_texts = -(-tokens // text_tokens(lm))
    stream: list[int] = []
    for i in range(0, len(corpus.sentences), 512):
        chunk = corpus.sentences[i:i + 512]
        for ids in lm.tokenizer([" " + s if (i or j) else s for j, s in enumerate(chunk)],
                                add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
        if len(stream) >= n_texts * width:
            break
    if len(stream) < n_texts * width:
        raise InputError(f"The corpus {corpus.name!r} has {len(stream):,} tokens; {tokens:,} were asked for.")
    body = torch.as_tensor(stream[:n_texts * width]).reshape(n_texts, width)
    return torch.cat([torch.as_tensor(lead, dtype=body.dtype).expand(n_texts, len(lead)), body], 1)


def add_key_moments(lm: LM, ids: torch.Tensor, layers: list[int], sums: dict[int, torch.Tensor]) -> None:
    """One forward of ``ids`` up to the deepest of ``layers``, adding each layer's ``Kᵀ K`` to ``sums``."""
    def hook(layer):
        def fn(module, args, kwargs):
            k = (args[0] if args else kwargs["input"]).reshape(-1, lm.d_mlp).float()
            sums[layer] += (k.T @ k).to(device=sums[layer].device, dtype=torch.float64)
            if layer == layers[-1]:
                raise _Stop
        return fn

    handles = [lm.site_module("neurons", layer).register_forward_pre_hook(hook(layer), with_kwargs=True)
               for layer in layers]
    try:
        with torch.no_grad():
            lm.model(input_ids=ids.to(lm.device), use_cache=False)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()


def stats_path(lm: LM, key: str, layer: int) -> Path:
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in lm.name.split("/")[-1])[:40]
    digest = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
    return cache_dir() / "key_stats" / f"{slug}-{digest}-L{layer}.safetensors"


# ---- cache files ----------------------------------------------------------------------------------
def _write(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    """Atomically: a temporary file in the same folder, then a rename; a checksum guards against damage."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous().cpu() for k, v in tensors.items()}
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    save_file(tensors, tmp, metadata={**meta, "checksum": _checksum(tensors)})
    os.replace(tmp, path)


def _read_raw(path: Path | None):
    if path is None or not path.exists():
        return None
    from safetensors import safe_open

    try:
        with safe_open(path, "pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("checksum") != _checksum(tensors):
            raise ValueError("checksum mismatch")
    except Exception as exc:  # noqa: BLE001 - any damage: say so, drop the file, compute again
        warnings.warn(f"The cached key statistics {path} are damaged ({exc}); computing them again.", stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    return tensors, meta


def _read(path: Path, d_mlp: int) -> torch.Tensor | None:
    state = _read_raw(path)
    if state is None:
        return None
    moment = state[0].get("moment")
    if moment is None or moment.shape != (d_mlp, d_mlp) or not torch.isfinite(moment).all():
        warnings.warn(f"The cached key statistics {path} do not fit this model; computing them again.", stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    return moment


def _checksum(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.blake2b(digest_size=8)
    for k in sorted(tensors):
        h.update(k.encode())
        h.update(tensors[k].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
