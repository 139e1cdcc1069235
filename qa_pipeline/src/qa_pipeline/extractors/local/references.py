"""The reference list: its lines split into entries (by "[12]" / "12." labels, else by hanging
indents) and each entry as a :class:`~qa_pipeline.paper.Reference` (raw text and year)."""

from __future__ import annotations

import re
from collections import Counter

from qa_pipeline.extractors.cleanup import join_lines
from qa_pipeline.extractors.local.lines import Line
from qa_pipeline.paper import Reference

_NUMBERED_REF = re.compile(r"^\[?\d{1,3}[\].)]\s")


def split_references(lines: list[Line]) -> list[list[Line]]:
    """Split the reference list into entries: by "[12]"/"12." labels when several lines carry
    one, else by hanging indents (an entry starts at its column's left margin and its
    continuation lines are indented)."""
    if not lines:
        return []
    numbered = sum(1 for ln in lines if _NUMBERED_REF.match(ln.text))
    margins: dict[tuple[int, int], float] = {}
    mid = {
        page: (min(ln.x for ln in lines if ln.page == page) + max(ln.x for ln in lines if ln.page == page)) / 2
        for page in {ln.page for ln in lines}
    }

    def column(line: Line) -> tuple[int, int]:
        return line.page, int(line.x > mid[line.page] + 20)

    for line in lines:
        key = column(line)
        margins[key] = min(margins.get(key, line.x), line.x)
    entries: list[list[Line]] = []
    for line in lines:
        if numbered >= 3:
            start = _NUMBERED_REF.match(line.text) is not None
        else:
            start = line.x - margins[column(line)] < 2.0
        if start or not entries:
            entries.append([line])
        else:
            entries[-1].append(line)
    return entries


def parse_reference(entry: list[Line], vocabulary: Counter) -> Reference:
    """One entry as a Reference: its lines joined (line-end hyphens by the paper's vocabulary), the
    label dropped, the first year found kept."""
    raw = _NUMBERED_REF.sub("", join_lines([ln.text for ln in entry], vocabulary)).strip()
    years = re.findall(r"\b(?:19|20)\d\d\b", raw)
    return Reference(raw=raw, year=years[0] if years else "")
