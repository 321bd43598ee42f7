"""Corpora to mine trigger examples from: a real one by default, or the user's own text.

    corpus = fw.load_corpus()                        # 107 Wikipedia articles shipped in the gensim wheel
    corpus = fw.load_corpus("lee")                   # 300 short news stories (gensim test data), small
    corpus = fw.load_corpus(["The cat sat.", ...])   # your own sentences, used as given
    corpus = fw.load_corpus("notes.txt")             # a text file, split into sentences
    corpus = fw.load_corpus(dataset, column="text")  # a Hugging Face ``datasets`` dataset
    corpus.sentences[:3], len(corpus), corpus.digest

Geva et al. mine *sentences*: every prefix of a sentence is a candidate trigger, so the corpus is a list
of sentences. Wikipedia markup that survives gensim's ``filter_wiki`` (lists, headings, tables,
reference sections, leftover brackets) is dropped rather than guessed at.
"""
from __future__ import annotations

import bz2
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..model import InputError
from ..model.loading import cache_dir

_WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_LEE_FILE = "lee_background.cor"
_CLEANER_VERSION = 1  # bump when the cleaning rules change: the cached sentences are keyed by it
_NAMED = ("wikipedia", "lee")


@dataclass
class Corpus:
    """Sentences plus where they came from; ``digest`` identifies the exact text (keys trigger indexes)."""

    sentences: list[str]
    name: str = "custom"
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sentences)

    def __getitem__(self, item):
        return self.sentences[item]

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for s in self.sentences:
            h.update(s.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()[:16]

    def head(self, n: int) -> "Corpus":
        """The first ``n`` sentences (a cheap slice for tests and quick looks)."""
        return Corpus(self.sentences[:n], f"{self.name}[:{n}]", dict(self.meta))

    def __repr__(self):
        return f"Corpus({self.name!r}, {len(self)} sentences, digest={self.digest})"


def load_corpus(source=None, *, column: str = "text", split: bool | None = None,
                max_sentences: int | None = None) -> Corpus:
    """A :class:`Corpus` from ``source``: ``None``/``"wikipedia"`` (default), ``"lee"``, a list of strings,
    a text file path, or a ``datasets`` dataset (``column`` names the text field).

    ``split`` cuts texts into sentences; by default lists are used as given and everything else is split.
    """
    if max_sentences is not None and (not isinstance(max_sentences, int) or max_sentences < 1):
        raise InputError(f"max_sentences must be a positive integer or None, got {max_sentences!r}.")
    if isinstance(source, Corpus):
        corpus = source
    elif source is None or (isinstance(source, str) and source.lower() in _NAMED):
        corpus = _named(source.lower() if isinstance(source, str) else "wikipedia")
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise InputError(f"Corpus {str(source)!r} is neither a file nor one of {', '.join(_NAMED)}; pass a text "
                             "file path, a list of strings, or a Hugging Face dataset.")
        text = path.read_text(encoding="utf-8", errors="replace")
        corpus = Corpus(_texts_to_sentences(text.split("\n\n"), split is not False), path.name)
    elif hasattr(source, "column_names") or _is_iterable_dataset(source):
        corpus = Corpus(_from_dataset(source, column, split is not False, max_sentences),
                        getattr(getattr(source, "info", None), "dataset_name", None) or "dataset")
    elif isinstance(source, Iterable) and not isinstance(source, (bytes, dict)):
        texts = list(source)
        bad = [t for t in texts if not isinstance(t, str)]
        if bad:
            raise InputError(f"A corpus list must hold strings; found {type(bad[0]).__name__}.")
        corpus = Corpus(_texts_to_sentences(texts, bool(split)), "list")
    else:
        raise InputError(f"Cannot read a corpus from {type(source).__name__}; pass None, 'wikipedia', 'lee', a "
                         "list of strings, a text file path, or a Hugging Face dataset.")
    if max_sentences is not None and len(corpus) > max_sentences:
        corpus = Corpus(corpus.sentences[:max_sentences], corpus.name, corpus.meta)
    if not corpus.sentences:
        raise InputError("The corpus is empty: it holds no non-blank sentence.")
    return corpus


# ---- the user's own text ------------------------------------------------------------------------
def _texts_to_sentences(texts: Iterable[str], split: bool) -> list[str]:
    out = []
    for text in texts:
        text = " ".join(text.split())
        if text:
            out.extend(split_sentences(text) if split else [text])
    return out


def _is_iterable_dataset(source) -> bool:
    return type(source).__name__ == "IterableDataset" and hasattr(source, "__iter__")


def _from_dataset(ds, column: str, split: bool, limit: int | None) -> list[str]:
    names = getattr(ds, "column_names", None)
    if names is not None and column not in names:
        raise InputError(f"The dataset has no column {column!r}; its columns are {', '.join(names)}. "
                         "Pass column=... to choose one.")
    out: list[str] = []
    for row in ds:
        text = row.get(column) if isinstance(row, dict) else None
        if not isinstance(text, str):
            raise InputError(f"Dataset rows need a string field {column!r}; got {type(text).__name__}.")
        out.extend(_texts_to_sentences([text], split))
        if limit is not None and len(out) >= limit:
            break
    return out


# ---- sentence splitting -------------------------------------------------------------------------
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "no", "vol", "c", "ca",
                  "inc", "ltd", "co", "corp", "gen", "col", "lt", "sgt", "prof", "rev", "mt", "ft", "approx",
                  "fig", "al", "u.s", "u.k", "jan", "feb", "mar", "apr", "aug", "sept", "sep", "oct", "nov", "dec"}
_BOUNDARY = re.compile(r"""(?<=[.!?])["')\]]?\s+(?=["'(\[]?[A-Z0-9])""")


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences at ``. ! ?`` followed by a capitalised word, not after an abbreviation
    or an initial ("J. R. R. Tolkien")."""
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        before = text[start:match.start()].rstrip("\"')]")
        last_word = before.rsplit(None, 1)[-1] if before.split() else ""
        stem = last_word.rstrip(".!?").lower().lstrip("(\"'")
        if before.endswith(".") and (stem in _ABBREVIATIONS or (len(stem) == 1 and stem.isalpha())):
            continue
        sentences.append(text[start:match.end()].strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


# ---- the built-in real corpora ------------------------------------------------------------------
def _gensim_data(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("The default corpus ships with the `gensim` package: install it with `pip install gensim`.")
    path = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data" / name
    if not path.exists():
        raise InputError(f"gensim is installed but its test data file {name} is missing; reinstall gensim.")
    return path


def _named(name: str) -> Corpus:
    path = _gensim_data(_WIKI_FILE if name == "wikipedia" else _LEE_FILE)
    cached = cache_dir() / "corpora" / f"{name}-{path.stat().st_size}-v{_CLEANER_VERSION}.json"
    if cached.exists():
        data = json.loads(cached.read_text(encoding="utf-8"))
        return Corpus(data["sentences"], name, data["meta"])
    if name == "wikipedia":
        sentences, meta = _wikipedia_sentences(path)
    else:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        sentences = [s for s in _texts_to_sentences(lines, True) if _is_prose(s)]
        meta = {"source": f"gensim test data {_LEE_FILE}", "documents": len(lines)}
    _write_json_atomic(cached, {"sentences": sentences, "meta": meta})
    return Corpus(sentences, name, meta)


def _write_json_atomic(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_END_SECTIONS = re.compile(r"^=+\s*(references|external links|see also|notes|bibliography|further reading|sources|"
                           r"citations|footnotes|works cited)\s*=+$", re.I)
_SKIP_LINE = tuple("=*#:;|!{}<")
_LEFTOVERS = [(re.compile(r"'{2,}"), ""), (re.compile(r"\(\s*[,;]?\s*\)"), ""), (re.compile(r"\(\s*[,;]\s*"), "("),
              (re.compile(r"\s+([,.;:!?])"), r"\1"), (re.compile(r"\s{2,}"), " ")]
_MARKUP = re.compile(r"\[\[|\]\]|\{\{|\}\}|\||==|<|>|https?:|&\w+;|\bthumb\b|\bpx\b")


def _wikipedia_sentences(path: Path) -> tuple[list[str], dict]:
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    sentences, articles = [], 0
    with bz2.BZ2File(path) as f:
        for title, text, _ in extract_pages(f):
            if text.lstrip().upper().startswith("#REDIRECT") or "(disambiguation)" in title:
                continue
            articles += 1
            for paragraph in _prose_paragraphs(filter_wiki(text)):
                sentences.extend(s for s in split_sentences(paragraph) if _is_prose(s))
    meta = {"source": f"gensim test data {_WIKI_FILE}", "articles": articles, "licence": "CC BY-SA (Wikipedia)"}
    return sentences, meta


def _prose_paragraphs(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if _END_SECTIONS.match(line):
            break
        if not line or line.startswith(_SKIP_LINE):
            continue
        for pattern, repl in _LEFTOVERS:
            line = pattern.sub(repl, line)
        out.append(line.strip())
    return out


def _is_prose(sentence: str) -> bool:
    """A real sentence: capitalised start, final punctuation, 4-80 words, no surviving markup."""
    words = sentence.split()
    return (4 <= len(words) <= 80 and (sentence[0].isupper() or sentence[0].isdigit() or sentence[0] in "\"'")
            and sentence.rstrip("\"')").endswith((".", "!", "?")) and not _MARKUP.search(sentence))
