"""The one JSON shape every extractor writes: a paper with its sections and references.

Both back ends (GROBID's TEI and the local pypdf extractor) produce a :class:`Paper`, so the
Q&A generator never needs to know where the text came from. On disk a paper is one JSON
file per PDF::

    {"paper_id": "specter_2020", "title": "...", "abstract": "...",
     "sections": [{"heading": "Introduction", "number": "1", "level": 1, "paragraphs": ["..."]}],
     "references": [{"raw": "...", "title": "...", "authors": ["..."], "year": "2019"}],
     "source": "specter_2020.pdf", "extractor": "grobid", "metadata": {...}}
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embshared.files import write_json
from embshared.io import DataError

SCHEMA_VERSION = 1


@dataclass
class Section:
    """A titled block of body text.

    Attributes:
        heading: the heading text without its number ("Related Work"); "" for text before
            the first heading.
        paragraphs: the paragraphs, each one cleaned string.
        number: the section number as printed ("2.1"), "" if none.
        level: 1 for top-level sections, 2 for subsections...
    """

    heading: str
    paragraphs: list[str] = field(default_factory=list)
    number: str = ""
    level: int = 1

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


@dataclass
class Reference:
    """One bibliography entry; ``raw`` is always set, the parsed fields when known."""

    raw: str
    title: str = ""
    authors: list[str] = field(default_factory=list)
    year: str = ""
    venue: str = ""


@dataclass
class Paper:
    """A paper as extracted from one PDF (or one TEI file, or one abstract)."""

    paper_id: str
    title: str = ""
    abstract: str = ""
    sections: list[Section] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    source: str = ""
    extractor: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def headings(self) -> list[str]:
        return [s.heading for s in self.sections if s.heading]

    def n_words(self) -> int:
        """Words of title, abstract and body (a size check for "did extraction find text")."""
        body = " ".join(p for s in self.sections for p in s.paragraphs)
        return len(f"{self.title} {self.abstract} {body}".split())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema_version"] = SCHEMA_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "paper") -> Paper:
        """Build a paper from its JSON dict; a missing or mistyped field raises DataError."""
        if not isinstance(data.get("paper_id"), str) or not data["paper_id"].strip():
            raise DataError(source, "field 'paper_id' missing or not a string")
        for key in ("title", "abstract"):
            if key in data and not isinstance(data[key], str):
                raise DataError(source, f"field '{key}': expected a string")
        sections = []
        for index, sec in enumerate(data.get("sections") or []):
            if not isinstance(sec, dict) or not isinstance(sec.get("paragraphs", []), list):
                raise DataError(source, f"field 'sections[{index}]': expected an object with a 'paragraphs' list")
            paragraphs = [p for p in sec.get("paragraphs", []) if isinstance(p, str) and p.strip()]
            sections.append(
                Section(
                    heading=str(sec.get("heading") or ""),
                    paragraphs=paragraphs,
                    number=str(sec.get("number") or ""),
                    level=int(sec.get("level") or 1),
                )
            )
        references = [
            Reference(
                raw=str(ref.get("raw") or ""),
                title=str(ref.get("title") or ""),
                authors=[str(a) for a in ref.get("authors") or []],
                year=str(ref.get("year") or ""),
                venue=str(ref.get("venue") or ""),
            )
            for ref in data.get("references") or []
            if isinstance(ref, dict)
        ]
        return cls(
            paper_id=data["paper_id"].strip(),
            title=str(data.get("title") or ""),
            abstract=str(data.get("abstract") or ""),
            sections=sections,
            references=references,
            authors=[str(a) for a in data.get("authors") or []],
            source=str(data.get("source") or ""),
            extractor=str(data.get("extractor") or ""),
            metadata=dict(data.get("metadata") or {}),
        )


def paper_id_from_path(path: str | os.PathLike) -> str:
    """A file-name-safe id from a PDF path: the stem with unsafe characters replaced."""
    stem = Path(path).name
    for suffix in (".grobid.tei.xml", ".tei.xml", ".pdf", ".json", ".txt"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("_") or "paper"


def save_paper(paper: Paper, path: str | os.PathLike) -> None:
    """Write the paper JSON atomically."""
    write_json(path, paper.to_dict())


def load_paper(path: str | os.PathLike) -> Paper:
    """Read a paper JSON written by :func:`save_paper`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "no such file") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON ({exc.msg})", exc.lineno) from None
    if not isinstance(data, dict):
        raise DataError(path, "expected a JSON object (a paper)")
    return Paper.from_dict(data, source=str(path))
