"""Character edits inside words: the training noise of query views and the bench's misspellings.

One implementation of the four edits (insert, delete, transpose, substitute) serves two
callers that use them differently:

- :func:`noisy_words` is the *training* noise: each eligible word of a query-shaped view
  gets at most one edit, of each kind with its own probability (config keys
  ``noise_insert_prob`` ... ``noise_substitute_prob``).
- :func:`misspell` is the *benchmark's* typo generator (the typo track of ``make
  bench-json``): each word of ``min_letters`` or more letters independently gets exactly
  one edit with probability ``word_prob`` (0.4 in the bench), the kind drawn uniformly
  from the four. It returns the edits it made, so a reader (and a test) can check them.

Two more kinds of noise serve distillation only (the student's copies of the views the
teacher embeds clean): :func:`case_noise` (a word in upper case or capitalised) and
:func:`space_noise` (a missing space between two words, or a word split in two).

Every edit changes the word: an insertion adds a lower-case ASCII letter at a uniform
position (0 .. len), a deletion removes one letter, a transposition swaps two adjacent
*different* letters (a word with none, such as ``"aaaa"``, gets a substitution instead),
a substitution replaces a letter by a different lower-case ASCII letter. Only letters
are touched; digits, punctuation and spacing stay as they were. All randomness comes from
the ``random.Random`` passed in, so the output is a function of the seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

EDITS = ("insert", "delete", "transpose", "substitute")
LETTERS = "abcdefghijklmnopqrstuvwxyz"
#: a word is a run of letters (any script); digits and punctuation separate words
WORD = re.compile(r"[^\W\d_]+")


def edit_word(word: str, kind: str, rng: random.Random) -> tuple[str, int]:
    """One edit of ``kind`` applied to ``word``; returns (new word, position edited).

    Raises:
        ValueError: an unknown kind, or a word too short for the edit (empty; one letter
            for a deletion, which would remove the word).
    """
    if kind not in EDITS:
        raise ValueError(f"unknown edit {kind!r} (choose from {', '.join(EDITS)})")
    if not word or (kind == "delete" and len(word) < 2):
        raise ValueError(f"cannot {kind} in {word!r}")
    if kind == "transpose":
        positions = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
        if not positions:
            kind = "substitute"
        else:
            i = rng.choice(positions)
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :], i
    if kind == "insert":
        i = rng.randint(0, len(word))
        return word[:i] + rng.choice(LETTERS) + word[i:], i
    i = rng.randrange(len(word))
    if kind == "delete":
        return word[:i] + word[i + 1 :], i
    return word[:i] + rng.choice([c for c in LETTERS if c != word[i].lower()]) + word[i + 1 :], i  # substitute


@dataclass(frozen=True)
class Edit:
    """One edit made by :func:`misspell`: the word, where it starts in the original text, and the result."""

    start: int
    word: str
    kind: str
    position: int  # index inside the word
    result: str


def misspell(text: str, rng: random.Random, word_prob: float = 0.4, min_letters: int = 4) -> tuple[str, list[Edit]]:
    """The bench's typo generator: one edit in each chosen word (see the module docstring).

    Args:
        text: a query.
        rng: the source of randomness (the bench seeds one per query).
        word_prob: probability that a word of ``min_letters``+ letters gets an edit.
        min_letters: shorter words are never edited.

    Returns:
        (the misspelled text, the edits in text order).
    """
    edits: list[Edit] = []
    pieces: list[str] = []
    last = 0
    for match in WORD.finditer(text):
        word = match.group()
        if len(word) < min_letters or rng.random() >= word_prob:
            continue
        kind = EDITS[rng.randrange(len(EDITS))]
        result, position = edit_word(word, kind, rng)
        edits.append(Edit(match.start(), word, kind, position, result))
        pieces += [text[last : match.start()], result]
        last = match.end()
    pieces.append(text[last:])
    return "".join(pieces), edits


@dataclass(frozen=True)
class CharNoise:
    """Training noise: per eligible word, the probability of each edit (at most one per word).

    ``insert + delete + transpose + substitute`` must not exceed 1; words shorter than
    ``min_letters`` are left alone.
    """

    insert: float = 0.0
    delete: float = 0.0
    transpose: float = 0.0
    substitute: float = 0.0
    min_letters: int = 4

    @property
    def total(self) -> float:
        return self.insert + self.delete + self.transpose + self.substitute

    @classmethod
    def from_config(cls, cfg) -> CharNoise:
        return cls(
            cfg.noise_insert_prob,
            cfg.noise_delete_prob,
            cfg.noise_transpose_prob,
            cfg.noise_substitute_prob,
            cfg.noise_min_letters,
        )


def noisy_words(text: str, noise: CharNoise, rng: random.Random) -> str:
    """``text`` with each word of ``noise.min_letters``+ letters edited at most once (training noise)."""
    if noise.total <= 0.0:
        return text
    thresholds = []
    running = 0.0
    for kind in EDITS:
        running += getattr(noise, kind)
        thresholds.append((running, kind))

    def replace(match: re.Match) -> str:
        word = match.group()
        if len(word) < noise.min_letters:
            return word
        draw = rng.random()
        for threshold, kind in thresholds:
            if draw < threshold:
                return edit_word(word, kind, rng)[0]
        return word

    return WORD.sub(replace, text)


def case_noise(text: str, prob: float, rng: random.Random) -> str:
    """Each word upper-cased or capitalised (half each) with probability ``prob``.

    A model that lower-cases its input (``lowercase: true``, the default) reads the same
    characters either way; the noise matters for one that keeps case.
    """
    if prob <= 0.0:
        return text

    def replace(match: re.Match) -> str:
        word = match.group()
        if rng.random() >= prob:
            return word
        return word.upper() if rng.random() < 0.5 else word.capitalize()

    return WORD.sub(replace, text)


_GAP = re.compile(r"(?<=\S) (?=\S)")


def space_noise(text: str, prob: float, rng: random.Random, min_letters: int = 4) -> str:
    """Missing and extra spaces: each single space between two non-spaces is dropped with
    probability ``prob`` (``vitamin d`` -> ``vitamind``), then each word of ``min_letters``+
    letters is split in two at an inner position with ``prob`` (``fracture`` -> ``frac ture``).

    These survive search's whitespace normalisation (a doubled space would not), so they are
    the whitespace errors a query can really carry.
    """
    if prob <= 0.0:
        return text
    text = _GAP.sub(lambda m: "" if rng.random() < prob else " ", text)

    def split(match: re.Match) -> str:
        word = match.group()
        if len(word) < min_letters or rng.random() >= prob:
            return word
        i = rng.randint(1, len(word) - 1)
        return word[:i] + " " + word[i:]

    return WORD.sub(split, text)
