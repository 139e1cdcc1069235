"""The character edits, the bench's typo generator and the training noise do exactly what they document."""

from __future__ import annotations

import random
import re
from collections import Counter

import numpy as np
import pytest

from embedding_model.typos import EDITS, CharNoise, edit_word, misspell, noisy_words

QUERY = "Vitamin D deficiency increases the risk of hip fractures in 1,234 elderly women."


def _one_edit_apart(before: str, after: str, kind: str, position: int) -> bool:
    if kind == "insert":
        return len(after) == len(before) + 1 and after[:position] + after[position + 1 :] == before
    if kind == "delete":
        return before[:position] + before[position + 1 :] == after
    if kind == "transpose":
        swapped = before[:position] + before[position + 1] + before[position] + before[position + 2 :]
        return before[position] != before[position + 1] and after == swapped
    diff = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    return len(before) == len(after) and diff == [position] and after[position] in "abcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize("kind", EDITS)
def test_each_edit_changes_the_word_as_documented(kind):
    rng = random.Random(0)
    for _ in range(200):
        word = "".join(rng.choice("abcde") for _ in range(rng.randint(2, 9)))
        result, position = edit_word(word, kind, rng)
        assert result != word
        applied = kind if not (kind == "transpose" and len(set(word)) == 1) else "substitute"
        assert _one_edit_apart(word, result, applied, position), (word, result, kind, position)


def test_edit_word_fixed_outputs():
    assert edit_word("fracture", "delete", random.Random(3)) == ("frature", 3)
    assert edit_word("fracture", "transpose", random.Random(3)) == ("farcture", 1)  # r and a swapped
    assert edit_word("aaaa", "transpose", random.Random(1))[0].count("a") == 3  # no two different letters: substitution
    with pytest.raises(ValueError, match="cannot delete"):
        edit_word("a", "delete", random.Random(0))
    with pytest.raises(ValueError, match="unknown edit"):
        edit_word("word", "swap", random.Random(0))


def test_misspell_is_deterministic_and_applies_exactly_its_edits():
    text, edits = misspell(QUERY, random.Random("typos:17:q1"))
    assert (text, edits) == misspell(QUERY, random.Random("typos:17:q1"))
    assert text == "Vitamin D qdeficiency increases the risk of hip fractures in 1,234 elderly wobmen."
    assert [(e.word, e.kind, e.position) for e in edits] == [("deficiency", "insert", 0), ("women", "insert", 2)]
    # rebuild the text from the edits: nothing else changed
    rebuilt, last = [], 0
    for edit in edits:
        assert QUERY[edit.start : edit.start + len(edit.word)] == edit.word
        assert _one_edit_apart(edit.word, edit.result, edit.kind, edit.position)
        rebuilt += [QUERY[last : edit.start], edit.result]
        last = edit.start + len(edit.word)
    assert "".join(rebuilt) + QUERY[last:] == text
    assert misspell(QUERY, random.Random(0), word_prob=0.0) == (QUERY, [])


def test_misspell_rates_and_eligible_words():
    words = re.findall(r"[^\W\d_]+", QUERY)
    eligible = sum(len(w) >= 4 for w in words)
    counts, kinds = [], Counter()
    for seed in range(2000):
        _, edits = misspell(QUERY, random.Random(seed))
        assert all(len(e.word) >= 4 for e in edits)  # "D", "the", "of", "hip", "in" and digits are never touched
        counts.append(len(edits))
        kinds.update(e.kind for e in edits)
    assert abs(np.mean(counts) / eligible - 0.4) < 0.01  # each of 8 words with probability 0.4
    assert all(abs(kinds[k] / sum(kinds.values()) - 0.25) < 0.02 for k in EDITS)  # kinds drawn uniformly


def test_training_noise_probabilities():
    assert noisy_words(QUERY, CharNoise(), random.Random(0)) == QUERY
    everything = noisy_words(QUERY, CharNoise(delete=1.0), random.Random(0))
    words_before = re.findall(r"[^\W\d_]+", QUERY)
    words_after = re.findall(r"[^\W\d_]+", everything)
    assert [len(a) for a in words_after] == [
        len(b) - (len(b) >= 4) for b in words_before
    ]  # every 4+ word lost one letter
    rng = random.Random(5)
    text = " ".join(["abcdefgh"] * 4000)
    noisy = noisy_words(text, CharNoise(insert=0.1, delete=0.1, transpose=0.05, substitute=0.05), rng).split()
    lengths = Counter(len(w) for w in noisy)
    assert abs(lengths[9] / 4000 - 0.1) < 0.015 and abs(lengths[7] / 4000 - 0.1) < 0.015
    assert abs(sum(w != "abcdefgh" for w in noisy) / 4000 - 0.3) < 0.02  # at most one edit per word, 30% edited
