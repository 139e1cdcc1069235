"""Question clean-up and filters, on outputs of the kind SmolLM2 really produces."""

from __future__ import annotations

import pytest

from qa_pipeline.filters import FilterConfig, clean_question, copied_share, is_question, normalised_key, reject_reason

PASSAGE = (
    "Functional Electrical Stimulation (FES) is increasingly applied in neurorehabilitation. "
    "The use of electrode arrays may allow for selective muscle recruitment."
)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("What is the function of the gene?", "What is the function of the gene?"),
        ("Question: What are the differences?", "What are the differences?"),
        ("Q: What is the origin of BC1 RNA?\nA: The origin is not known.", "What is the origin of BC1 RNA?"),
        ('The question would be: "What are the optimal methods?', "What are the optimal methods?"),
        ("1. How does FES work? It works by...", "How does FES work?"),
        ("  \n\nWhy is it slow?  ", "Why is it slow?"),
        ("Here is a question: which muscles respond?", "which muscles respond?"),
        ("Q1) Is the scientiﬁc method used?", "Is the scientific method used?"),
        (
            'What is the answer to the question "Which pathway regulates remodeling?',
            "Which pathway regulates remodeling?",
        ),
        ("", ""),
    ],
)
def test_clean_question(raw, clean):
    assert clean_question(raw) == clean


def test_is_question():
    assert is_question("What is FES?")
    assert is_question("In which year was the array introduced?")
    assert is_question("According to the study, how many electrodes were used?")
    assert not is_question("FES is applied in neurorehabilitation.")
    assert not is_question("FES is applied in neurorehabilitation?")  # no interrogative word
    assert not is_question("What is FES")  # no question mark


def test_copied_share():
    run, share = copied_share(
        "What is the use of electrode arrays may allow for selective muscle recruitment?", PASSAGE
    )
    assert run == 11  # "the use of electrode arrays may allow for selective muscle recruitment"
    assert share == pytest.approx(11 / 13)
    assert copied_share("", PASSAGE) == (0, 0.0)


def test_reject_reasons():
    cfg = FilterConfig()
    assert reject_reason("", "question", PASSAGE, cfg) == "empty"
    assert reject_reason("What is FES?", "question", PASSAGE, cfg) == "too_short"
    assert reject_reason("What " + "very " * 40 + "long?", "question", PASSAGE, cfg) == "too_long"
    assert reject_reason("FES is used in rehabilitation of the hand.", "question", PASSAGE, cfg) == "not_a_question"
    copied = "Is Functional Electrical Stimulation (FES) increasingly applied in neurorehabilitation?"
    assert reject_reason(copied, "question", PASSAGE, cfg) is None  # "Is" breaks the run: 7 of 9 words
    verbatim = "The use of electrode arrays may allow for selective muscle recruitment?"
    assert reject_reason(verbatim, "question", PASSAGE, cfg) == "not_a_question"
    assert reject_reason(verbatim, "pseudo_query", PASSAGE, cfg) == "copied_from_passage"
    assert (
        reject_reason("Why may electrode arrays allow selective muscle recruitment?", "question", PASSAGE, cfg) is None
    )
    assert reject_reason("What is the main idea of the passage?", "question", PASSAGE, cfg) == "about_the_text"
    assert (
        reject_reason('What is the purpose of the sentence "FES is used"?', "question", PASSAGE, cfg)
        == "about_the_text"
    )
    # Inverse-cloze queries need not be questions.
    assert reject_reason("Electrode arrays are placed on the forearm.", "pseudo_query", PASSAGE, cfg) is None


def test_normalised_key():
    assert normalised_key("What is FES?") == normalised_key("  what IS fes ? ")
    assert normalised_key("What is FES?") != normalised_key("What is EMG?")
