"""A section's lines cut into paragraphs (first-line indents against the column margins, vertical
gaps, short last lines) and the test that keeps running text and drops equation or table debris."""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict

from qa_pipeline.extractors.local.lines import Line

_SENTENCE_END = re.compile(r"[.!?:][\"')\]\u201d]?$")


def left_edges(lines: list[Line]) -> dict[int, list[float]]:
    """Per page, the x positions where many lines start (the column margins)."""
    counts: dict[int, Counter] = defaultdict(Counter)
    for line in lines:
        counts[line.page][round(line.x)] += 1
    edges: dict[int, list[float]] = {}
    for page, counter in counts.items():
        frequent = sorted(x for x, n in counter.items() if n >= 3)
        merged: list[float] = []
        for x in frequent:
            if not merged or x - merged[-1] > 3:
                merged.append(x)
        edges[page] = merged
    return edges


def _indent(line: Line, edges: dict[int, list[float]]) -> float:
    """How far ``line`` starts right of the nearest column margin at or left of it."""
    left = [e for e in edges.get(line.page, []) if e <= line.x + 1.5]
    return line.x - left[-1] if left else 0.0


def split_paragraphs(lines: list[Line], edges: dict[int, list[float]]) -> list[list[Line]]:
    """Split a section's lines into paragraphs: a first-line indent, a gap clearly larger
    than the usual line spacing, or a short line ending a sentence ends a paragraph."""
    if not lines:
        return []
    gaps = [a.y - b.y for a, b in itertools.pairwise(lines) if a.page == b.page and 0 < a.y - b.y < 3 * a.size]
    spacing = sorted(gaps)[len(gaps) // 2] if gaps else 1.2 * lines[0].size
    lengths = sorted(len(ln.text) for ln in lines)
    typical = lengths[int(0.75 * (len(lengths) - 1))]
    paragraphs: list[list[Line]] = [[lines[0]]]
    for prev, line in itertools.pairwise(lines):
        indent = _indent(line, edges)
        same_column = prev.page == line.page and prev.y > line.y and abs(prev.x - line.x) < 0.3 * 612
        gap = prev.y - line.y if same_column else 0.0
        new = (
            (0.5 * line.size <= indent <= 4 * line.size and _SENTENCE_END.search(prev.text) is not None)
            or (same_column and gap > 1.6 * spacing)
            or (_SENTENCE_END.search(prev.text) is not None and len(prev.text) < 0.6 * typical)
        )
        if new:
            paragraphs.append([line])
        else:
            paragraphs[-1].append(line)
    return paragraphs


def is_prose(text: str, min_words: int = 8, min_word_share: float = 0.4) -> bool:
    """True for running text; False for equations and table debris that share the body font
    ("S 1/4 cos θ A ffiffiffi A2 þ B2 p (2)"): too few tokens that are ordinary words."""
    tokens = text.split()
    if len(tokens) < min_words:
        return False
    words = sum(1 for t in tokens if re.fullmatch(r"[A-Za-z][a-z]{2,}[,.;:)]*", t) and not re.search(r"(ff?i){2}", t))
    return words / len(tokens) >= min_word_share
