"""Text clean-up: NFKC and ligatures, line-end hyphenation, footnote markers."""

from __future__ import annotations

from collections import Counter

from qa_pipeline.extractors.cleanup import (
    broken_words,
    has_ligatures,
    join_hyphenated,
    join_lines,
    normalise_text,
    strip_footnote_marker,
    word_counts,
)


def test_normalise_ligatures_spaces_and_invisible_characters():
    raw = "scientiﬁc \ufb02ow of e\ufb00ort\u00a0and\u200b soft\u00adhyphen\x07  twice"
    assert normalise_text(raw) == "scientific flow of effort and softhyphen twice"
    assert has_ligatures(raw) and not has_ligatures(normalise_text(raw))
    assert normalise_text("line one  \n  line two") == "line one\nline two"


def test_join_hyphenated_rules():
    vocab = Counter({"pretrained": 3, "pre-trained": 1, "inter-document": 2})
    assert join_hyphenated("ingre-", "dient") == "ingredient"  # default: a typesetting break
    assert join_hyphenated("pre-", "trained", vocab) == "pretrained"  # the document's spelling wins
    assert join_hyphenated("inter-", "document", vocab) == "inter-document"
    assert join_hyphenated("non-", "painful") == "non-painful"  # compound prefix
    assert join_hyphenated("BERT-", "Base") == "BERT-Base"  # capital after the hyphen
    assert join_hyphenated("COVID-", "19") == "COVID-19"
    assert join_hyphenated("(re-", "ranking),", Counter({"reranking": 1})) == "(reranking),"


def test_join_lines_paragraph():
    lines = [
        "Representation learning is a critical ingre-",
        "dient for sys-",
        "tems, in 12\u2013",
        "15 cases -",
        "a dash.",
    ]
    assert (
        join_lines(lines)
        == "Representation learning is a critical ingredient for systems, in 12\u201315 cases - a dash."
    )
    assert join_lines(["  ", "one", "", "two"]) == "one two"


def test_word_counts_and_broken_words():
    counts = word_counts(["Pre-trained models, pretrained MODELS"])
    assert counts["pre-trained"] == 1 and counts["pretrained"] == 1 and counts["models"] == 2
    assert broken_words("a repre- sentation of token- and X") == ["repre- sentation", "token- and"]


def test_strip_footnote_marker():
    assert strip_footnote_marker("on the benchmark. 1") == "on the benchmark."
    assert strip_footnote_marker("on the benchmark.12") == "on the benchmark."
    assert strip_footnote_marker("the value was 5") == "the value was 5"
