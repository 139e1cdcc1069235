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


CLAIM_PASSAGE = (
    "Functional electrical stimulation is used in neurorehabilitation. "
    "Electrode arrays allow the selective recruitment of forearm muscles for hand opening. "
    "Thirty contacts were tested in eight stroke patients."
)


def test_claim_filter_rejects_a_verbatim_sentence_copy():
    from qa_pipeline.filters import clean_claim, sentence_similarity

    cfg = FilterConfig()
    copy = clean_claim("Claim: Electrode arrays allow the selective recruitment of forearm muscles for hand opening.")
    assert copy == "Electrode arrays allow the selective recruitment of forearm muscles for hand opening."
    assert sentence_similarity(copy, CLAIM_PASSAGE) == 1.0
    assert reject_reason(copy, "claim", CLAIM_PASSAGE, cfg) == "copied_sentence"
    # one word changed is still a copy; a shortened sentence too (no run of 6 words needed)
    near = "Electrode arrays allow the selective activation of forearm muscles for hand opening."
    assert reject_reason(near, "claim", CLAIM_PASSAGE, cfg) == "copied_sentence"
    assert reject_reason("Thirty contacts were tested in stroke patients.", "claim", CLAIM_PASSAGE, cfg) == (
        "copied_sentence"
    )
    own_words = "Stimulating chosen forearm muscles through an electrode grid can open a stroke patient's hand."
    assert sentence_similarity(own_words, CLAIM_PASSAGE) < 0.5
    assert reject_reason(clean_claim(f"1. {own_words}\nA second line"), "claim", CLAIM_PASSAGE, cfg) is None
    assert reject_reason("Can electrode grids open the hand after stroke?", "claim", CLAIM_PASSAGE, cfg) == (
        "not_a_claim"
    )
    # the same sentence as a *question* candidate is judged by the question rules
    assert reject_reason(copy, "question", CLAIM_PASSAGE, cfg) == "not_a_question"


def test_clean_claim_keeps_the_first_sentence():
    from qa_pipeline.filters import clean_claim

    assert clean_claim('"The claim: FES opens the hand." It also...') == "FES opens the hand."
    assert clean_claim("\n\n- Arrays of 30 contacts (e.g. 5x6) select muscles. More text") == (
        "Arrays of 30 contacts (e.g. 5x6) select muscles."
    )
    assert clean_claim("   ") == ""
    # seen in the claims bench: SmolLM2 often opens with "The claim is:"
    assert clean_claim("The claim is: Humans expressing a defective AIRE develop autoimmune disease.") == (
        "Humans expressing a defective AIRE develop autoimmune disease."
    )
