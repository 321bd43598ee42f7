"""The on-disk trigger index: each neuron's top-k trigger prefixes and activation histogram.

A folder of ``.npy`` arrays plus JSON, read with ``np.load(allow_pickle=False)`` (no pickle, memory
mapped, so opening is instant and a card reads only its neuron's rows)::

    manifest.json          model, corpus digest, k, dtype, histogram bins, progress
    top_activation.npy     float32 [layer, neuron, k]   best first; ties -> earlier corpus position
    top_sentence.npy       int32   [layer, neuron, k]   sentence id (-1: fewer than k tokens mined)
    top_position.npy       int32   [layer, neuron, k]   token index of the trigger in that sentence
    histogram.npy          int32/64 [layer, neuron, bin] counts of every activation mined
    token_ids.npy          int32   [tokens]             the corpus tokens, sentence after sentence
    token_ends.npy         int32   [tokens]             character end of each token in its sentence
    sentence_offsets.npy   int64   [sentences + 1]      where each sentence's tokens start
    sentences.json         the sentences themselves

Histogram bins are signed and log-spaced (4 per octave from 2^-8 to 2^8, plus a bin around 0):
activations are leptokurtic, so linear bins would put nearly everything in one bar.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..model import InputError
from ..model.loading import cache_dir

if TYPE_CHECKING:
    from ..model import LM
    from .corpus import Corpus

FORMAT = "ffn_widgets.triggers"  # the on-disk format's name (not a module path)
VERSION = 1
SUB_BINS, MIN_EXP, MAX_EXP = 4, -8, 8
N_MAG = (MAX_EXP - MIN_EXP) * SUB_BINS  # magnitude bins per sign
N_BINS = 2 * N_MAG + 1  # negative bins, the bin around zero, positive bins


def histogram_edges() -> np.ndarray:
    """Bin edges ``[N_BINS + 1]`` (float64): ``-inf, ..., -2^-8, 2^-8, ..., inf``. Bin ``N_MAG`` holds
    |a| < 2^-8; the outermost bins also hold everything beyond ±224 (= 2^7·1.75)."""
    grid = np.array([2.0 ** e * (1 + j / SUB_BINS) for e in range(MIN_EXP, MAX_EXP) for j in range(SUB_BINS)])
    return np.concatenate([[-np.inf], -grid[:0:-1], [-grid[0]], grid, [np.inf]])


def bin_of(activation: float) -> int:
    """The histogram bin holding a value (for marking a prompt's activation on the histogram)."""
    edges = histogram_edges()
    a = abs(float(activation))
    mag = min(int(np.searchsorted(edges[N_MAG + 1:], a, side="right")), N_MAG)  # 0: |a| < 2^-8
    return N_MAG + mag if activation >= 0 else N_MAG - mag


@dataclass(frozen=True)
class Trigger:
    """One trigger example: the prefix ``text`` ends with ``token``, where the neuron fired ``activation``;
    ``next_token`` is what actually followed in the corpus (``None`` at the end of a sentence)."""

    layer: int
    neuron: int
    rank: int
    activation: float
    text: str
    token: str
    next_token: str | None
    next_token_id: int | None
    sentence: int
    position: int
    sentence_text: str

    @property
    def before(self) -> str:
        """The prefix without its triggering token."""
        return self.text[: len(self.text) - len(self.token)]


class TriggerIndex:
    """Top-k triggers and histograms for every neuron of every layer; see :func:`ffn_widgets.mine_triggers`."""

    def __init__(self, path: Path, manifest: dict, arrays: dict[str, np.ndarray], sentences: list[str]):
        self.path = Path(path)
        self.manifest = manifest
        self.values = arrays["top_activation"]
        self.sentence_ids = arrays["top_sentence"]
        self.positions = arrays["top_position"]
        self.counts = arrays["histogram"]
        self.token_ids = arrays["token_ids"]
        self.token_ends = arrays["token_ends"]
        self.offsets = arrays["sentence_offsets"]
        self.sentences = sentences
        self.edges = histogram_edges()

    # ---- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path) -> "TriggerIndex":
        """Open an index folder (a finished one, or a ``.partial`` folder of an interrupted run)."""
        path = Path(path)
        state = path
        if (path / "CURRENT").exists():  # an interrupted run: its latest consistent checkpoint
            state = path / (path / "CURRENT").read_text().strip()
        if not (state / "manifest.json").exists():
            raise InputError(f"{str(path)!r} is not a trigger index folder (no manifest.json); build one with "
                             "fw.mine_triggers(lm, corpus) or `python -m ffn_widgets mine`.")
        manifest = json.loads((state / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise InputError(f"{str(path)!r} holds format {manifest.get('format')!r} v{manifest.get('version')}; "
                             f"this version reads {FORMAT} v{VERSION}. Mine the index again.")
        arrays = {name: np.load(state / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                  for name in ("top_activation", "top_sentence", "top_position", "histogram")}
        for name in ("token_ids", "token_ends", "sentence_offsets"):
            arrays[name] = np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        sentences = json.loads((path / "sentences.json").read_text(encoding="utf-8"))
        return cls(path, manifest, arrays, sentences)

    # ---- what it holds ---------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return self.values.shape[0]

    @property
    def d_mlp(self) -> int:
        return self.values.shape[1]

    @property
    def k(self) -> int:
        return self.values.shape[2]

    @property
    def dtype(self) -> str:
        """The dtype the model ran in when these activations were recorded."""
        return self.manifest["dtype"]

    @property
    def complete(self) -> bool:
        return bool(self.manifest["progress"]["complete"])

    @property
    def tokens_mined(self) -> int:
        return int(self.manifest["progress"]["tokens_done"])

    def check(self, layer: int, neuron: int) -> None:
        if not isinstance(layer, (int, np.integer)) or not 0 <= layer < self.n_layers:
            raise InputError(f"layer must be an integer in 0..{self.n_layers - 1}, got {layer!r}.")
        if not isinstance(neuron, (int, np.integer)) or not 0 <= neuron < self.d_mlp:
            raise InputError(f"neuron must be an integer in 0..{self.d_mlp - 1}, got {neuron!r}.")

    # ---- per neuron ------------------------------------------------------------------------
    def top(self, layer: int, neuron: int, n: int | None = None) -> list[Trigger]:
        """The neuron's trigger examples, strongest first (at most ``n``)."""
        self.check(layer, neuron)
        out = []
        for rank in range(self.k if n is None else min(n, self.k)):
            sid = int(self.sentence_ids[layer, neuron, rank])
            if sid < 0:
                break
            out.append(self._trigger(layer, neuron, rank, sid, int(self.positions[layer, neuron, rank])))
        return out

    def _trigger(self, layer, neuron, rank, sid, pos) -> Trigger:
        start, stop = int(self.offsets[sid]), int(self.offsets[sid + 1])
        ends = self.token_ends[start:stop]
        text = self.sentences[sid]
        begin = int(ends[pos - 1]) if pos > 0 else 0
        end = int(ends[pos])
        has_next = start + pos + 1 < stop
        next_id = int(self.token_ids[start + pos + 1]) if has_next else None
        next_text = text[end:int(ends[pos + 1])] if has_next else None
        return Trigger(layer, neuron, rank, float(self.values[layer, neuron, rank]), text[:end], text[begin:end],
                       next_text, next_id, sid, pos, text)

    def next_token_ids(self, layer: int) -> np.ndarray:
        """``[neuron, k]`` id of the token after each trigger (-1 where none: sentence end or empty slot)."""
        sid = np.asarray(self.sentence_ids[layer]).astype(np.int64)
        flat = np.asarray(self.offsets)[np.maximum(sid, 0)] + np.asarray(self.positions[layer]) + 1
        ends = np.asarray(self.offsets)[np.maximum(sid, 0) + 1]
        valid = (sid >= 0) & (flat < ends)
        ids = np.asarray(self.token_ids)[np.minimum(flat, len(self.token_ids) - 1)]
        return np.where(valid, ids, -1)

    def histogram(self, layer: int, neuron: int) -> tuple[np.ndarray, np.ndarray]:
        """(counts ``[N_BINS]``, edges ``[N_BINS + 1]``) of all this neuron's activations over the corpus."""
        self.check(layer, neuron)
        return np.asarray(self.counts[layer, neuron]).astype(np.int64), self.edges

    def to_frame(self, layer: int, neuron: int):
        """The trigger examples as a pandas DataFrame."""
        import pandas as pd

        rows = [{"rank": t.rank, "activation": t.activation, "prefix": t.text, "token": t.token,
                 "next_token": t.next_token, "sentence": t.sentence} for t in self.top(layer, neuron)]
        return pd.DataFrame(rows)

    def figure(self, layer: int, neuron: int, mark: float | None = None):
        """Plotly bar chart of the neuron's activation histogram (log count), optionally marking a value."""
        import plotly.graph_objects as go

        from ..analysis.figure_layout import log_ticks, sized, title

        counts, _ = self.histogram(layer, neuron)
        labels = bin_labels()
        fig = go.Figure(go.Bar(x=labels, y=np.where(counts > 0, counts, np.nan), marker_color="#4c78a8",
                               hovertemplate="%{x}: %{y} activations<extra></extra>"))
        fig.update_yaxes(type="log", title="count", **log_ticks(counts.max(), 200))
        fig.update_xaxes(title="activation (signed log bins)", tickangle=-45, nticks=17)
        if mark is not None:
            fig.add_vline(x=bin_of(mark), line_color="#e45756", annotation_text=f"{mark:.3g}")
        fig.update_layout(title=title(f"L{layer} N{neuron}: activations over {self.tokens_mined:,} tokens "
                                      f"({self.dtype})"))
        return sized(fig, 200, bottom=100)

    def __repr__(self):
        state = "complete" if self.complete else "partial"
        return (f"TriggerIndex({self.manifest['model']!r}, corpus={self.manifest['corpus']['name']!r}, "
                f"layers={self.n_layers}, d_mlp={self.d_mlp}, k={self.k}, dtype={self.dtype}, {state}, "
                f"{self.tokens_mined:,} tokens)")


def bin_labels() -> list[str]:
    """A short label per bin: its lower edge (upper edge for negative bins), e.g. ``"0.25"``, ``"-1.5"``."""
    edges = histogram_edges()
    out = []
    for b in range(N_BINS):
        if b == N_MAG:
            out.append("0")
        elif b > N_MAG:
            out.append(f"{edges[b]:.3g}")
        else:
            out.append(f"{edges[b + 1]:.3g}")
    return out


def default_index_path(lm: LM, corpus: Corpus, k: int, dtype: str, max_tokens: int, batch_tokens: int) -> Path:
    """Where an index lives in the user cache: one folder per model, corpus and parameters."""
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in lm.name.split("/")[-1])[:40]
    name = f"{slug}-{lm.fingerprint[:8]}-{corpus.digest}-k{k}-{dtype}-t{max_tokens}-b{batch_tokens}"
    return cache_dir() / "triggers" / name


def load_triggers(path) -> TriggerIndex:
    """Open a trigger index folder written by :func:`ffn_widgets.mine_triggers` or the ``mine`` command."""
    return TriggerIndex.load(path)


def cached_triggers(lm, corpus=None, k: int = 25, max_tokens: int = 128, batch_tokens: int = 2048
                    ) -> TriggerIndex | None:
    """The finished index :func:`ffn_widgets.mine_triggers` (or ``python -m ffn_widgets mine``) left in the user
    cache for ``lm`` over ``corpus`` in the model's dtype, float32 or bfloat16; None if there is none. Opening
    never mines, so a notebook can use a full index when one exists and mine a slice otherwise."""
    from .corpus import Corpus, load_corpus

    corpus = corpus if isinstance(corpus, Corpus) else load_corpus(corpus)
    for dtype in dict.fromkeys((str(lm.dtype).replace("torch.", ""), "float32", "bfloat16")):
        path = default_index_path(lm, corpus, k=k, dtype=dtype, max_tokens=max_tokens, batch_tokens=batch_tokens)
        if (path / "manifest.json").exists():
            try:
                return TriggerIndex.load(path)
            except InputError:  # an older format: not usable, so not there
                continue
    return None
