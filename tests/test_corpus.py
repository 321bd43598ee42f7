"""Corpora: the real Wikipedia default, the news test corpus, and the user's own text in every form."""
import re

import pytest

import ffn_widgets as fw
from ffn_widgets.memories.corpus import load_corpus, split_sentences


def test_default_wikipedia_is_clean_real_prose():
    corpus = load_corpus()
    assert corpus.name == "wikipedia" and 15_000 < len(corpus) < 25_000
    assert corpus.meta["articles"] > 90
    assert any(s.startswith("Anarchism is a political philosophy") for s in corpus.sentences[:5])
    leftovers = re.compile(r"\[\[|\]\]|\{\{|\}\}|\||''|==|<ref|https?:|&nbsp;|^\*")
    assert not [s for s in corpus.sentences if leftovers.search(s)]
    assert all(s[-1] in ".!?\"')" and len(s.split()) >= 4 for s in corpus.sentences)
    assert load_corpus("wikipedia").digest == corpus.digest  # cached copy is identical


def test_lee_news_corpus():
    corpus = load_corpus("lee", max_sentences=50)
    assert len(corpus) == 50
    assert corpus.sentences[0].startswith("Hundreds of people have been forced to vacate their homes")
    assert corpus.sentences[1] == "A new blaze near Goulburn, south-west of Sydney, has forced the closure of the Hume Highway."


def test_list_used_as_given_and_split_on_request():
    texts = ["First text. It has two sentences.", "   ", "Second one"]
    assert load_corpus(texts).sentences == ["First text. It has two sentences.", "Second one"]
    assert load_corpus(texts, split=True).sentences == ["First text.", "It has two sentences.", "Second one"]
    assert load_corpus(texts).digest != load_corpus(texts, split=True).digest


def test_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Dr. Smith met J. R. R. Tolkien in 1950. They talked!\n\nA new paragraph starts here? Yes.\n")
    assert load_corpus(path).sentences == ["Dr. Smith met J. R. R. Tolkien in 1950.", "They talked!",
                                           "A new paragraph starts here?", "Yes."]
    assert load_corpus(str(path)).name == "notes.txt"


def test_sentence_splitter_keeps_abbreviations():
    assert split_sentences("The U.S. Army, e.g. the 1st division, moved. Then it rained.") == [
        "The U.S. Army, e.g. the 1st division, moved.", "Then it rained."]
    assert split_sentences('He said "stop." She left.') == ['He said "stop."', "She left."]


def test_huggingface_dataset():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": ["One sentence here. Another one here.", "Third."], "id": [1, 2]})
    assert load_corpus(ds).sentences == ["One sentence here.", "Another one here.", "Third."]
    assert load_corpus(ds.to_iterable_dataset(), max_sentences=2).sentences == ["One sentence here.",
                                                                              "Another one here."]
    with pytest.raises(fw.InputError, match="no column 'body'.*text, id"):
        load_corpus(ds, column="body")


def test_bad_sources(tmp_path):
    with pytest.raises(fw.InputError, match="neither a file nor one of"):
        load_corpus("no_such_corpus.txt")
    with pytest.raises(fw.InputError, match="hold strings"):
        load_corpus(["fine", 3])
    with pytest.raises(fw.InputError, match="empty"):
        load_corpus(["", "  "])
    with pytest.raises(fw.InputError, match="max_sentences"):
        load_corpus(["a"], max_sentences=0)
    with pytest.raises(fw.InputError, match="Cannot read a corpus"):
        load_corpus(42)
