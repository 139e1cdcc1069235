"""What every question generator shares: the candidate it returns and the prompt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from qa_pipeline.passages import Passage

SYSTEM_PROMPT = "You are a helpful assistant that writes questions about scientific texts."
ONE_QUESTION = (
    "Read the passage and write one specific question that the passage answers.\n\n"
    "Passage: {passage}\n\nWrite only the question."
)
MANY_QUESTIONS = (
    "Read the passage and write {n} different, specific questions that the passage answers.\n\n"
    "Passage: {passage}\n\nWrite only the questions, one per line."
)
#: a claim the passage supports (SciFact's queries are claims): asked in the model's own words,
#: since a copied sentence is what the no-model inverse-cloze generator gives already.
CLAIM_SYSTEM_PROMPT = "You are a helpful assistant that states the findings of scientific texts."
ONE_CLAIM = (
    "Read the passage and write one short claim, a single statement of fact, that the passage supports. "
    "Use your own words; do not copy a sentence of the passage.\n\n"
    "Passage: {passage}\n\nWrite only the claim."
)
MANY_CLAIMS = (
    "Read the passage and write {n} different short claims, each a single statement of fact, that the passage "
    "supports. Use your own words; do not copy sentences of the passage.\n\n"
    "Passage: {passage}\n\nWrite only the claims, one per line."
)
#: what a generator can be asked to write about a passage.
QUERY_KINDS = ("question", "claim")


@dataclass
class Candidate:
    """One generated query for a passage, before filtering.

    Attributes:
        question: the raw text (cleaned later by :func:`qa_pipeline.filters.clean_question` or
            :func:`qa_pipeline.filters.clean_claim`).
        kind: "question", "claim" (a statement the passage supports), or "pseudo_query" for
            inverse-cloze sentences (kept as they are).
        answer: the passage text to pair it with, when it differs from the passage's
            (inverse cloze removes the query sentence from it); "" means the passage.
    """

    question: str
    kind: str = "question"
    answer: str = ""


class QuestionGenerator(Protocol):
    """Writes candidate questions for passages.

    ``generate`` returns one list of candidates per passage, in the passages' order.
    ``model_name`` is recorded with every pair.
    """

    name: str
    model_name: str

    def generate(self, passages: list[Passage]) -> list[list[Candidate]]: ...


def chat_messages(passage: str, n: int = 1, kind: str = "question") -> list[dict[str, str]]:
    """The chat prompt asking for ``n`` questions (or claims, ``kind="claim"``) about ``passage``."""
    if kind == "claim":
        user = ONE_CLAIM.format(passage=passage) if n == 1 else MANY_CLAIMS.format(passage=passage, n=n)
        return [{"role": "system", "content": CLAIM_SYSTEM_PROMPT}, {"role": "user", "content": user}]
    if kind != "question":
        raise ValueError(f"unknown query kind '{kind}' (one of {', '.join(QUERY_KINDS)})")
    user = ONE_QUESTION.format(passage=passage) if n == 1 else MANY_QUESTIONS.format(passage=passage, n=n)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
