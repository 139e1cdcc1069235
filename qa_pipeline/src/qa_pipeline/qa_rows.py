"""The rows of ``questions_answers.jsonl``: each generated candidate cleaned ("Question:", numbering,
quotes), filtered (empty, too short or long, not a question or claim, copied, duplicate) and written
as one row with its passage, paper and generator; :class:`GenerationStats` counts what was kept and
why the rest was dropped (``generation_stats.json``)."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from qa_pipeline.filters import FilterConfig, clean_claim, clean_question, normalised_key, reject_reason
from qa_pipeline.generators import QuestionGenerator
from qa_pipeline.passages import Passage

#: the keys of every row of questions_answers.jsonl.
ROW_KEYS = (
    "id",
    "question",
    "answer",
    "paper_id",
    "section",
    "passage_id",
    "kind",
    "generator",
    "model",
    "created_at",
    "file_name",
)


@dataclass
class GenerationStats:
    """What one run did (``generation_stats.json``)."""

    generator: str = ""
    model: str = ""
    papers_done: int = 0
    papers_skipped: int = 0
    passages: int = 0
    candidates: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    generation_seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "generator": self.generator,
            "model": self.model,
            "papers_done": self.papers_done,
            "papers_skipped": self.papers_skipped,
            "passages": self.passages,
            "candidates": self.candidates,
            "kept": self.kept,
            "rejected": dict(sorted(self.rejected.items())),
            "generation_seconds": round(self.generation_seconds, 3),
            "seconds_per_question": round(self.generation_seconds / self.candidates, 4) if self.candidates else None,
            "seconds_per_kept_question": round(self.generation_seconds / self.kept, 4) if self.kept else None,
        }


def make_rows(
    passage: Passage,
    candidates,
    generator: QuestionGenerator,
    cfg: FilterConfig,
    seen: set[str],
    stats: GenerationStats,
    file_name: str,
) -> list[dict]:
    """Clean and filter the candidates of one passage into output rows (updates ``seen``)."""
    rows = []
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for cand in candidates:
        if cand.kind == "pseudo_query":
            question = cand.question
        else:
            question = clean_claim(cand.question) if cand.kind == "claim" else clean_question(cand.question)
        question = " ".join(question.split())
        answer = cand.answer or passage.text
        reason = reject_reason(question, cand.kind, answer, cfg)
        key = normalised_key(question)
        if reason is None and key in seen:
            reason = "duplicate"
        if reason is not None:
            stats.rejected[reason] += 1
            continue
        seen.add(key)
        rows.append(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{passage.passage_id}|{question}")),
                "question": question,
                "answer": answer,
                "paper_id": passage.paper_id,
                "section": passage.section,
                "passage_id": passage.passage_id,
                "kind": cand.kind,
                "generator": generator.name,
                "model": generator.model_name,
                "created_at": now,
                "file_name": file_name,
            }
        )
    stats.kept += len(rows)
    return rows
