"""Abstract records (a test collection's documents, a JSONL of abstracts) as paper JSON, the
shape ``qa_pipeline.extract`` writes for PDFs, so they go through the same generation path.

A record with no text becomes no paper: it is counted and named, never written as an empty
paper (``qa_pipeline.generate`` refuses a paper JSON without text).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from qa_pipeline.paper import Paper, paper_id_from_path, save_paper

_TOKENISED_END = re.compile(r"\s+[.]\s*$")


@dataclass
class RecordPapers:
    """Papers made from records, and the ids of the records that had no text."""

    papers: list[Paper]
    empty: list[str] = field(default_factory=list)


def untokenise_title(title: str) -> str:
    """A title without the tokenised full stop some collections end it with ("... slipstream ." -> "... slipstream")."""
    return _TOKENISED_END.sub("", " ".join(title.split()))


def record_paper(record: dict, prefix: str, source: str, id_key: str = "_id") -> Paper | None:
    """One record (``title``, ``text``, optional ``author``) as a paper whose abstract is the text.

    Cranfield repeats the title as the first line of the text; that copy is removed so the
    abstract passage ("<title>. <abstract>") does not hold the title twice. Returns None for
    a record without text.
    """
    text = " ".join(str(record.get("text") or "").split())
    raw_title = " ".join(str(record.get("title") or "").split())
    if raw_title and text.startswith(raw_title):
        text = text[len(raw_title) :].strip()
    if not text:
        return None
    author = str(record.get("author") or "").strip()
    return Paper(
        paper_id=paper_id_from_path(f"{prefix}{record[id_key]}"),
        title=untokenise_title(raw_title),
        abstract=text,
        authors=[author] if author else [],
        source=source,
        extractor="records",
        metadata={"record_id": str(record[id_key])},
    )


def records_to_papers(records: Iterable[dict], prefix: str, source: str, id_key: str = "_id") -> RecordPapers:
    """Every record with text as a paper (ids ``<prefix><record id>``); the others are listed in ``empty``."""
    out = RecordPapers(papers=[])
    for record in records:
        paper = record_paper(record, prefix, source, id_key)
        if paper is None:
            out.empty.append(str(record[id_key]))
        else:
            out.papers.append(paper)
    return out


def write_papers(papers: Iterable[Paper], folder: str | os.PathLike) -> int:
    """Write one ``<paper_id>.json`` per paper into ``folder`` (atomically each, as qa-extract does).

    Returns:
        How many files were written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for paper in papers:
        save_paper(paper, folder / f"{paper.paper_id}.json")
        n += 1
    return n
