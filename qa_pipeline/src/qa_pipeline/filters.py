"""Cleaning and filtering of generated questions.

Generators (especially small LLMs) emit prefixes ("Question:", "1."), trailing answers
("Q: ... A: ..."), statements instead of questions, questions that copy a sentence of the
passage, and duplicates. :func:`clean_question` repairs what can be repaired;
:func:`reject_reason` names why an item is dropped (the counts end up in
``generation_stats.json``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from qa_pipeline.extractors.cleanup import normalise_text

QUESTION_WORDS = frozenset(
    [
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "is",
        "are",
        "was",
        "were",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "will",
        "has",
        "have",
        "had",
        "may",
        "might",
        "must",
        "shall",
    ]
)
WH_WORDS = frozenset(["what", "which", "who", "whom", "whose", "when", "where", "why", "how"])
_PREFIX = re.compile(
    r"^\s*(?:[-*\u2022]\s*|\d{1,2}[.)]\s*|q\d*\s*[:.)]\s*|question\s*\d*\s*[:.)]\s*|"
    r"(?:the|my|a) (?:question|query) (?:is|would be|could be)\s*:?\s*|here is (?:a|one|the) question\s*:?\s*)+",
    re.IGNORECASE,
)
_ANSWER_TAIL = re.compile(r"\s*(?:\bA\s*:|\bAnswer\s*:).*$", re.IGNORECASE | re.DOTALL)
_TOKEN = re.compile(r"[a-z0-9]+")
_QUOTED_QUESTION = re.compile(r"\bquestion\s*:?\s*[\"\u201c']\s*([A-Z][^\"\u201d]*\?)")
#: questions about the text itself ("What is the main idea of the passage?") retrieve nothing.
_META = re.compile(
    r"\b(?:the|this|that|given|following|above) (?:passage|text|sentence|statement|paragraph|excerpt|article|"
    r"question|quote|author)s?\b",
    re.IGNORECASE,
)


@dataclass
class FilterConfig:
    """Thresholds of the question filters."""

    min_words: int = field(default=4, metadata={"help": "fewer words: 'too_short'"})
    min_chars: int = field(default=15, metadata={"help": "fewer characters: 'too_short'"})
    max_words: int = field(default=40, metadata={"help": "more words: 'too_long'"})
    max_copied_share: float = field(
        default=0.8, metadata={"help": "longest run of words shared with the passage / question length"}
    )
    min_copied_run: int = field(default=6, metadata={"help": "shorter shared runs never count as copying"})
    max_sentence_similarity: float = field(
        default=0.8,
        metadata={"help": "claims: word-sequence similarity to a sentence of the passage at or above this is a copy"},
    )


def clean_question(text: str) -> str:
    """The first question in raw generator output, with list markers, "Question:" prefixes,
    quotes and any trailing answer removed."""
    text = normalise_text(text).strip()
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    if not lines:
        return ""
    # Prefer the first line that holds a question mark; else the first line.
    line = next((ln for ln in lines if "?" in ln and not re.match(r"^\s*a(nswer)?\s*:", ln, re.I)), lines[0])
    line = _ANSWER_TAIL.sub("", line)
    inner = _QUOTED_QUESTION.search(line)
    if inner:  # 'What is the answer to the question "Which pathway ...?"' -> 'Which pathway ...?'
        line = inner.group(1)
    line = _PREFIX.sub("", line).strip().strip("\"'\u201c\u201d*` ").strip()
    if "?" in line:
        line = line[: line.index("?") + 1]
    return " ".join(line.split())


_CLAIM_PREFIX = re.compile(
    r"^\s*(?:[-*\u2022]\s*|\d{1,2}[.)]\s*|(?:the |a |one )?claim(?:\s+is)?\s*\d*\s*[:.)]\s*)+", re.I
)


def clean_claim(text: str) -> str:
    """The first claim in raw generator output: its first non-empty line without list markers,
    a "Claim:" prefix or quotes, cut after its first sentence."""
    text = normalise_text(text).strip()
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    if not lines:
        return ""
    from qa_pipeline.passages import split_sentences

    line = re.sub('["\u201c\u201d*`]', "", lines[0])  # quotes and markdown emphasis
    line = _CLAIM_PREFIX.sub("", line.strip()).strip().strip("' ")
    sentences = split_sentences(line)
    return " ".join(sentences[0].split()) if sentences else ""


def sentence_similarity(claim: str, passage: str) -> float:
    """The highest word-sequence similarity (difflib ratio over lower-case tokens) between
    ``claim`` and a sentence of ``passage``: 1.0 for a verbatim copy of a sentence."""
    from qa_pipeline.passages import split_sentences

    words = _TOKEN.findall(claim.lower())
    if not words:
        return 0.0
    best = 0.0
    for sentence in split_sentences(passage):
        tokens = _TOKEN.findall(sentence.lower())
        if tokens:
            best = max(best, SequenceMatcher(None, words, tokens, autojunk=False).ratio())
    return best


def normalised_key(question: str) -> str:
    """The key duplicates are detected on: lower-case alphanumeric tokens."""
    return " ".join(_TOKEN.findall(question.lower()))


def copied_share(question: str, passage: str) -> tuple[int, float]:
    """(length, share) of the longest run of the question's words that appears verbatim in
    the passage (share = run / question words)."""
    q = _TOKEN.findall(question.lower())
    p = _TOKEN.findall(passage.lower())
    if not q or not p:
        return 0, 0.0
    match = SequenceMatcher(None, q, p, autojunk=False).find_longest_match(0, len(q), 0, len(p))
    return match.size, match.size / len(q)


def is_question(text: str) -> bool:
    """Ends with "?" and either starts with an interrogative or auxiliary word ("What ...?",
    "Does ...?") or has a wh-word among its first six words ("In which year ...?",
    "According to the study, how ...?")."""
    if not text.endswith("?"):
        return False
    tokens = _TOKEN.findall(text.lower())
    if not tokens:
        return False
    return tokens[0] in QUESTION_WORDS or any(w in WH_WORDS for w in tokens[:6])


def reject_reason(question: str, kind: str, passage: str, cfg: FilterConfig) -> str | None:
    """Why a cleaned question must be dropped, or None to keep it.

    Args:
        question: the cleaned question (see :func:`clean_question`) or claim (:func:`clean_claim`).
        kind: "question" (must look like one), "claim" (a statement, not a copied sentence)
            or "pseudo_query" (inverse-cloze sentences).
        passage: the answer passage it will be paired with.
        cfg: the thresholds.

    Returns:
        "empty", "too_short", "too_long", "not_a_question", "not_a_claim" (a claim phrased as a
        question), "about_the_text" (asks about the passage itself, not its content),
        "copied_sentence" (a claim that repeats a sentence of the passage, nearly or exactly),
        "copied_from_passage" or None.
    """
    if not question:
        return "empty"
    words = question.split()
    if len(words) < cfg.min_words or len(question) < cfg.min_chars:
        return "too_short"
    if len(words) > cfg.max_words:
        return "too_long"
    if kind == "question" and not is_question(question):
        return "not_a_question"
    if kind == "claim" and question.rstrip().endswith("?"):
        return "not_a_claim"
    if _META.search(question):
        return "about_the_text"
    if kind == "claim" and sentence_similarity(question, passage) >= cfg.max_sentence_similarity:
        return "copied_sentence"
    run, share = copied_share(question, passage)
    if run >= cfg.min_copied_run and share >= cfg.max_copied_share:
        return "copied_from_passage"
    return None
