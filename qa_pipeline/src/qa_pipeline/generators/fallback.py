"""A generator that needs no model: inverse-cloze pseudo-queries and heading questions.

- **Inverse cloze** (Lee et al., 2019, "Latent Retrieval for Weakly Supervised Open Domain
  Question Answering"): a sentence of the passage becomes the query and the passage
  *without* that sentence the answer, so the pair teaches topical matching rather than
  string matching. The sentence is drawn at random (seeded by the passage id) among
  sentences of 6-40 words.
- **Headings**: a templated question from the section heading and the paper title
  ("What does the paper 'SPECTER: ...' report about selecting negative distractors?").
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Literal

from qa_pipeline.generators.base import Candidate
from qa_pipeline.passages import Passage, split_sentences

_GENERIC_HEADINGS = re.compile(r"^(introduction|background|methods?|results?|discussion|conclusions?)$", re.I)


@dataclass
class FallbackConfig:
    """Settings of the no-model generator."""

    method: Literal["inverse_cloze", "heading", "both"] = field(
        default="inverse_cloze", metadata={"help": "inverse_cloze | heading | both"}
    )
    min_sentence_words: int = 6
    max_sentence_words: int = 40
    min_answer_words: int = field(default=20, metadata={"help": "the passage left after removing the sentence"})


def short_title(title: str, words: int = 10) -> str:
    parts = title.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def heading_question(passage: Passage) -> str:
    """A templated question about the passage's section."""
    paper = f"the paper '{short_title(passage.title)}'" if passage.title else "the paper"
    heading = passage.section.strip()
    if not heading or heading.lower() == "abstract":
        return f"What are the main findings of {paper}?"
    lowered = heading.lower()
    if _GENERIC_HEADINGS.match(heading):
        templates = {
            "intro": f"What problem does {paper} address?",
            "backg": f"What background does {paper} give?",
            "metho": f"What methods does {paper} use?",
            "resul": f"What results does {paper} report?",
            "discu": f"How does {paper} discuss its results?",
            "concl": f"What does {paper} conclude?",
        }
        return templates[lowered[:5]]
    return f"What does {paper} report about {lowered}?"


class FallbackGenerator:
    """Inverse-cloze pseudo-queries and/or heading questions, without a model.

    Args:
        cfg: which method and its limits.
        n: pseudo-queries per passage (inverse cloze); heading questions are one per passage.
        seed: seeds the sentence choice (combined with the passage id).
    """

    name = "fallback"

    def __init__(self, cfg: FallbackConfig, n: int = 2, seed: int = 42):
        self.cfg = cfg
        self.n = n
        self.seed = seed
        self.model_name = f"fallback:{cfg.method}"

    def inverse_cloze(self, passage: Passage) -> list[Candidate]:
        text = passage.text
        prefix = ""
        if passage.title and text.startswith(f"{passage.title}. "):
            prefix, text = f"{passage.title}. ", text[len(passage.title) + 2 :]
        sentences = split_sentences(text)
        eligible = [
            i
            for i, s in enumerate(sentences)
            if self.cfg.min_sentence_words <= len(s.split()) <= self.cfg.max_sentence_words
        ]
        rng = random.Random(f"{self.seed}:{passage.passage_id}")
        chosen = rng.sample(eligible, min(self.n, len(eligible)))
        out = []
        for i in sorted(chosen):
            rest = " ".join(s for j, s in enumerate(sentences) if j != i)
            if len(rest.split()) >= self.cfg.min_answer_words:
                out.append(Candidate(question=sentences[i], kind="pseudo_query", answer=prefix + rest))
        return out

    def generate(self, passages: list[Passage]) -> list[list[Candidate]]:
        out = []
        for passage in passages:
            items: list[Candidate] = []
            if self.cfg.method in ("inverse_cloze", "both"):
                items.extend(self.inverse_cloze(passage))
            if self.cfg.method in ("heading", "both"):
                items.append(Candidate(question=heading_question(passage)))
            out.append(items)
        return out
