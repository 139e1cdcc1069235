"""Papers -> passages: the units questions are written about and the "answers" the
embedding model learns to retrieve.

A passage is the abstract, or a run of consecutive paragraphs of one section, cut to at
most ``max_words`` words at sentence boundaries (the base model reads 256 word pieces, so
longer passages would be truncated in training). Back matter (acknowledgements, funding,
competing interests...) yields no passages.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from embshared.io import DataError
from qa_pipeline.extractors.cleanup import normalise_text
from qa_pipeline.extractors.tei import TeiError, parse_tei
from qa_pipeline.paper import Paper, Section, load_paper, paper_id_from_path

BACK_MATTER = re.compile(
    r"acknowledg|funding|competing interest|conflicts? of interest|author(s|'s|s')? contribution|"
    r"declaration|ethics|availability|abbreviations|supplementary|references|bibliography|author details",
    re.IGNORECASE,
)
#: a sentence end followed by a capital, digit or bracket; or, in tokenised lower-case text
#: (Cranfield: "... slipstream .  the results ..."), a full stop standing alone between spaces.
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"'])|(?<=\s[.!?])\s+(?=[a-z])")


@dataclass
class PassageConfig:
    """How papers are cut into passages."""

    max_words: int = field(default=180, metadata={"help": "longest passage, in words"})
    min_words: int = field(default=30, metadata={"help": "shorter passages are merged or dropped"})
    title_in_passage: Literal["abstract", "all", "none"] = field(
        default="abstract", metadata={"help": "prefix the paper title to the abstract passage, every passage, or none"}
    )
    max_passages_per_paper: int = field(default=0, metadata={"help": "0 = all"})


@dataclass
class Passage:
    """A piece of a paper to write questions about.

    Attributes:
        passage_id: ``<paper_id>#<index>``.
        paper_id: the paper.
        section: the section heading ("Abstract" for the abstract, "" if untitled).
        text: the passage (with the title prefixed where configured).
        title: the paper's title.
    """

    passage_id: str
    paper_id: str
    section: str
    text: str
    title: str = ""


def split_sentences(text: str) -> list[str]:
    """Split on sentence ends followed by a capital, digit or bracket ("et al. (2019)" stays), and on
    the free-standing full stops of tokenised lower-case text ("... wing .  the results ...")."""
    parts = _SENTENCE_SPLIT.split(text.strip())
    out: list[str] = []
    for part in parts:
        # Re-join splits after common abbreviations.
        if out and re.search(r"\b(?:et al|e\.g|i\.e|Fig|Figs|Eq|Eqs|Ref|vs|cf|approx|No|Dr|Mr|Ms)\.$", out[-1]):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return [s for s in out if s]


def _chunks(paragraphs: list[str], max_words: int, min_words: int) -> list[str]:
    """Greedy packing of paragraphs (split into sentences when too long) into passages."""
    units: list[str] = []
    for paragraph in paragraphs:
        if len(paragraph.split()) <= max_words:
            units.append(paragraph)
        else:
            units.extend(split_sentences(paragraph))
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for unit in units:
        n = len(unit.split())
        if n > max_words:  # one very long "sentence" (a table row run): cut by words
            words = unit.split()
            pieces = [" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words)]
        else:
            pieces = [unit]
        for piece in pieces:
            n = len(piece.split())
            if current and size + n > max_words:
                chunks.append(" ".join(current))
                current, size = [], 0
            current.append(piece)
            size += n
    if current:
        if chunks and size < min_words and len(chunks[-1].split()) + size <= max_words + min_words:
            chunks[-1] = f"{chunks[-1]} {' '.join(current)}"
        else:
            chunks.append(" ".join(current))
    return [c for c in chunks if len(c.split()) >= min_words]


def paper_passages(paper: Paper, cfg: PassageConfig | None = None) -> list[Passage]:
    """The passages of ``paper``: the abstract first, then each body section's text."""
    cfg = cfg or PassageConfig()
    blocks: list[tuple[str, list[str]]] = []
    if paper.abstract.strip():
        blocks.append(("Abstract", [paper.abstract.strip()]))
    for section in paper.sections:
        if section.heading and BACK_MATTER.search(section.heading):
            continue
        if section.paragraphs:
            blocks.append((section.heading, section.paragraphs))
    passages: list[Passage] = []
    for heading, paragraphs in blocks:
        for chunk in _chunks(paragraphs, cfg.max_words, cfg.min_words):
            prefix = cfg.title_in_passage == "all" or (cfg.title_in_passage == "abstract" and heading == "Abstract")
            text = f"{paper.title}. {chunk}" if prefix and paper.title and not chunk.startswith(paper.title) else chunk
            passages.append(
                Passage(
                    passage_id=f"{paper.paper_id}#{len(passages)}",
                    paper_id=paper.paper_id,
                    section=heading,
                    text=text,
                    title=paper.title,
                )
            )
    if cfg.max_passages_per_paper > 0:
        passages = passages[: cfg.max_passages_per_paper]
    return passages


def text_paper(path: str | os.PathLike) -> Paper:
    """A plain-text file as a paper: paragraphs are separated by blank lines; the first
    line is the title when it is short."""
    path = Path(path)
    text = normalise_text(path.read_text(encoding="utf-8", errors="replace"))
    blocks = [" ".join(b.split()) for b in re.split(r"\n\s*\n", text) if b.strip()]
    title = ""
    if blocks and len(blocks[0].split()) <= 25 and len(blocks) > 1:
        title = blocks.pop(0)
    return Paper(
        paper_id=paper_id_from_path(path),
        title=title,
        sections=[Section(heading="", paragraphs=blocks)],
        source=str(path),
        extractor="text",
    )


def load_papers(folder: str | os.PathLike) -> list[Paper]:
    """Every paper in ``folder``: extracted paper JSON files, GROBID TEI files and plain
    ``.txt`` files, sorted by paper id.

    Raises:
        DataError: a missing folder, no papers, two files with the same paper id, a paper
            without text, or an unreadable file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "no such folder (run the extraction first, or set --input_dir)")
    papers: dict[str, Paper] = {}
    for path in sorted(folder.iterdir()):
        name = path.name.lower()
        if name == "extraction_report.json" or not path.is_file() or name.startswith("."):
            continue
        if name.endswith(".tei.xml"):
            try:
                paper = parse_tei(path)
            except TeiError as exc:
                raise DataError(path, str(exc).split(": ", 1)[-1]) from None
        elif name.endswith(".json"):
            paper = load_paper(path)
        elif name.endswith(".txt"):
            paper = text_paper(path)
        else:
            continue
        if not paper.abstract.strip() and not any(sec.paragraphs for sec in paper.sections):
            raise DataError(path, "no text: field 'abstract' is empty and no section in 'sections' has paragraphs")
        if paper.paper_id in papers:
            raise DataError(path, f"paper id '{paper.paper_id}' appears twice in {folder}")
        papers[paper.paper_id] = paper
    if not papers:
        raise DataError(folder, "no papers found (.json from qa_pipeline.extract, .tei.xml or .txt)")
    return [papers[k] for k in sorted(papers)]
