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


@dataclass
class Candidate:
    """One generated query for a passage, before filtering.

    Attributes:
        question: the raw text (cleaned later by :func:`qa_pipeline.filters.clean_question`).
        kind: "question", or "pseudo_query" for inverse-cloze sentences (not phrased as questions).
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


def chat_messages(passage: str, n: int = 1) -> list[dict[str, str]]:
    """The chat prompt asking for ``n`` questions about ``passage``."""
    user = ONE_QUESTION.format(passage=passage) if n == 1 else MANY_QUESTIONS.format(passage=passage, n=n)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
