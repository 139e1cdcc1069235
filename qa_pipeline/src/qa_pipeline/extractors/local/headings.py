"""Layout: the body style (the font and size of the running text), the title (the largest type
on page 1) and the section headings (short lines in a non-body style followed by body text;
"2.1 Overview" gives number and level)."""

from __future__ import annotations

import re
from collections import Counter

from qa_pipeline.extractors.cleanup import join_lines, normalise_text
from qa_pipeline.extractors.local.config import LocalExtractorConfig
from qa_pipeline.extractors.local.lines import Line
from qa_pipeline.extractors.local.patterns import ABSTRACT, CAPTION, KEYWORDS, REFERENCES

_NUMBERED = re.compile(r"^((?:\d{1,2}\.)*\d{1,2})\.?\s+(?=[A-Z])")
_ROMAN = re.compile(r"^([IVX]{1,4})\.\s+(?=[A-Z])")


def body_style(lines: list[Line]) -> tuple[str, float]:
    """The (font, size) with the most characters: the running text of the paper."""
    chars: Counter = Counter()
    for line in lines:
        chars[line.style] += len(line.text)
    if not chars:
        return "", 10.0
    return chars.most_common(1)[0][0]


def split_number(text: str) -> tuple[str, str]:
    """("2.1", "Overview") from "2.1 Overview"; ("", text) when unnumbered."""
    for pattern in (_NUMBERED, _ROMAN):
        match = pattern.match(text)
        if match:
            return match.group(1), text[match.end() :].strip()
    return "", text


def _looks_like_heading_text(text: str, max_words: int) -> bool:
    words = text.split()
    if not 1 <= len(words) <= max_words or len(text) > 150:
        return False
    if text[-1] in ".,;:-" and not _NUMBERED.match(text + " X"):
        return False
    _, rest = split_number(text)
    if not (rest[:1].isupper() or rest[:1].isdigit()):
        return False
    if CAPTION.match(text) or KEYWORDS.match(text) or re.search(r"https?://|@|\bet al\b", text):
        return False
    if re.search(r"[\u2020\u2021*\u2217\u00a7\u00b6]|[a-z]\d", rest) or rest.count(",") > 1:
        return False  # author lines: affiliation marks, "Marchis1,2"
    if re.search(r"\b\w \w \w \w\b", rest):
        return False  # letter-spaced banners ("R E S E A R C H")
    if sum(c.isalpha() for c in rest) < 4:
        return False
    return not (re.fullmatch(r"[\d\s.,%()\-+=±]+", rest))


def _is_heading_style(line: Line, body: tuple[str, float]) -> bool:
    font, size = body
    if not line.uniform or line.math_share > 0.2 or line.markers:
        return False
    if line.size < 0.85 * size:
        return False
    return line.font != font or line.size >= size + 0.8


def _continues_keywords(prev: Line, line: Line) -> bool:
    """True if ``line`` is the second line of a "Keywords: ..." block."""
    return bool(KEYWORDS.match(prev.text)) and prev.page == line.page and 0 < prev.y - line.y < 1.6 * prev.size


def find_headings(lines: list[Line], body: tuple[str, float], cfg: LocalExtractorConfig) -> dict[int, tuple[int, str]]:
    """Indices of heading lines -> (number of lines the heading spans, heading text).

    A heading is a block of 1-3 consecutive lines in one non-body style (another font, or
    bigger type), short, starting with a capital or a section number, not ending like a
    sentence, and followed by a line in a different style. A line reading "References" or
    "Abstract" is a heading whatever its style.
    """
    headings: dict[int, tuple[int, str]] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        text = line.text.strip()
        if line.uniform and (REFERENCES.match(text) or ABSTRACT.match(text)):
            headings[i] = (1, text)
            i += 1
            continue
        if not _is_heading_style(line, body) or (i > 0 and _continues_keywords(lines[i - 1], line)):
            i += 1
            continue
        block = [line]
        while (
            len(block) < 3
            and i + len(block) < len(lines)
            and lines[i + len(block)].style == line.style
            and lines[i + len(block)].uniform
            and lines[i + len(block)].page == line.page
            and 0 < block[-1].y - lines[i + len(block)].y < 2.0 * line.size
        ):
            block.append(lines[i + len(block)])
        following = lines[i + len(block)] if i + len(block) < len(lines) else None
        joined = " ".join(b.text for b in block)
        ok = (
            following is not None
            and (following.font != line.font or following.size < line.size - 0.5)
            and _looks_like_heading_text(joined, cfg.max_heading_words)
        )
        if ok:
            headings[i] = (len(block), joined)
            i += len(block)
        else:
            i += 1
    return headings


def find_title(lines: list[Line], body: tuple[str, float], metadata_title: str) -> tuple[str, list[int]]:
    """The run of lines in the largest type on the first page (else the PDF's /Title), and
    the indices of those lines in ``lines``."""
    first_page = [i for i, ln in enumerate(lines) if ln.page == 0 and sum(c.isalpha() for c in ln.text) >= 2]
    if first_page:
        top = max(lines[i].size for i in first_page)
        if top >= body[1] + 1.0:
            start = next(i for i in first_page if abs(lines[i].size - top) < 0.3)
            used = []
            for i in range(start, len(lines)):
                if lines[i].page != 0 or abs(lines[i].size - top) >= 0.3:
                    break
                used.append(i)
            title = join_lines([lines[i].text for i in used])
            if len(title.split()) >= 2:
                return title, used
    if metadata_title and len(metadata_title.split()) >= 2 and not metadata_title.lower().endswith((".doc", ".pdf")):
        return normalise_text(metadata_title).strip(), []
    return (lines[first_page[0]].text, [first_page[0]]) if first_page else ("", [])
