"""Page text as lines: pypdf's text runs (font, size, position) read from every page, grouped
into visual lines (superscript markers dropped), and running heads and page numbers removed."""

from __future__ import annotations

import logging
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from qa_pipeline.extractors.cleanup import normalise_text
from qa_pipeline.extractors.local.config import LocalExtractorConfig

logger = logging.getLogger(__name__)

_MATH_FONT = re.compile(r"CMMI|CMSY|CMEX|MSBM|MSAM|Symbol|Math|CMR\d|rsfs|esint|wasy", re.IGNORECASE)
#: some Springer fonts (AdvTT) map "(" and ")" to "ð" and "Þ" in their text layer.
_ADVTT_PARENS = re.compile(r"ð([^ðÞ]{0,40})Þ")
_MARKER = re.compile(r"[\d,\-\u2013*\u2020\u2021\u2217\u00a7\u00b6\s]+")


@dataclass
class Span:
    """One text run of a page, as pypdf reports it."""

    page: int
    x: float
    y: float
    size: float
    font: str
    text: str


@dataclass
class Line:
    """A visual line: runs on one baseline, with the style of most of its characters."""

    page: int
    x: float
    y: float
    size: float
    font: str
    text: str
    uniform: bool
    math_share: float
    markers: int = 0  # superscript markers dropped from the line (authors, footnotes)
    spans: list[Span] = field(default_factory=list, repr=False)

    @property
    def style(self) -> tuple[str, float]:
        return self.font, round(self.size, 1)


def _font_name(font_dict) -> str:
    if not font_dict:
        return ""
    name = str(font_dict.get("/BaseFont", "") or "")
    return name.split("+", 1)[-1].lstrip("/")


def read_spans(reader) -> tuple[list[list[Span]], list[float]]:
    """The text runs of every page and each page's height (points)."""
    pages: list[list[Span]] = []
    heights: list[float] = []
    for number, page in enumerate(reader.pages):
        spans: list[Span] = []

        def visit(text, cm, tm, font_dict, font_size, spans=spans, number=number):
            if not text or not text.strip():
                if text and "\n" in text and spans:
                    spans[-1].text += "\n"
                return
            if abs(tm[1]) > 1e-3 or abs(tm[2]) > 1e-3 or abs(cm[1]) > 1e-3 or abs(cm[2]) > 1e-3:
                return  # rotated text: margin stamps, rotated table headers
            scale = math.hypot(tm[2], tm[3]) * math.hypot(cm[2], cm[3])
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            spans.append(Span(number, x, y, round(font_size * scale, 2), _font_name(font_dict), text))

        try:
            page.extract_text(visitor_text=visit)
        except Exception as exc:  # pypdf raises many types on broken content streams
            logger.warning("page %d: text extraction failed (%s); page skipped", number + 1, exc)
        pages.append(spans)
        try:
            heights.append(float(page.mediabox.height))
        except Exception:
            heights.append(792.0)
    return pages, heights


def _drop_markers(spans: list[Span]) -> list[Span]:
    """Drop superscript footnote and affiliation markers ("benchmark.¹", "Cohan†∗")."""
    size = max(s.size for s in spans)
    base = min(spans, key=lambda s: (-s.size, s.y)).y
    kept = [
        s for s in spans if not (s.size < 0.8 * size and s.y > base + 0.15 * size and _MARKER.fullmatch(s.text.strip()))
    ]
    return kept or spans


def _make_line(spans: list[Span]) -> Line:
    all_spans = spans
    spans = _drop_markers(spans)
    text = "".join(s.text.replace("\n", " ") for s in spans)
    text = normalise_text(text).replace("\n", " ").strip()
    text = _ADVTT_PARENS.sub(r"(\1)", text)
    weights: Counter = Counter()
    sizes: Counter = Counter()
    math_chars = 0
    total = 0
    for s in spans:
        n = len(s.text.strip())
        total += n
        weights[s.font] += n
        sizes[round(s.size, 1)] += n
        if _MATH_FONT.search(s.font):
            math_chars += n
    font = weights.most_common(1)[0][0]
    main_size = sizes.most_common(1)[0][0]
    # Uniform: nearly all characters in one font (superscripts and small caps do not count).
    big = sum(len(s.text.strip()) for s in spans if s.size >= 0.75 * main_size)
    same = sum(len(s.text.strip()) for s in spans if s.size >= 0.75 * main_size and s.font == font)
    return Line(
        page=spans[0].page,
        x=min(s.x for s in spans),
        y=spans[0].y,
        size=max(sizes, key=lambda sz: (sizes[sz], sz)),
        font=font,
        text=text,
        uniform=big > 0 and same / big >= 0.9,
        math_share=math_chars / max(total, 1),
        markers=len(all_spans) - len(spans),
        spans=spans,
    )


def group_lines(pages: list[list[Span]]) -> list[Line]:
    """Group each page's runs into lines, in reading order.

    A new line starts after a run ending in a newline, when the baseline moves by more than
    0.6 of the type size (superscripts move less), or when the text jumps back to the left.
    """
    lines: list[Line] = []
    for spans in pages:
        current: list[Span] = []
        for span in spans:
            if current:
                last = current[-1]
                base = current[0]
                tolerance = 0.6 * max(base.size, span.size)
                new_line = (
                    last.text.endswith("\n")
                    or abs(span.y - base.y) > tolerance
                    or (span.x < last.x - 1.0 and abs(span.y - base.y) > 0.5)
                    or span.x < base.x - 2 * max(base.size, 1)
                )
                if new_line:
                    lines.append(_make_line(current))
                    current = []
            current.append(span)
        if current:
            lines.append(_make_line(current))
    return [line for line in lines if line.text]


def drop_running_heads(lines: list[Line], heights: list[float], cfg: LocalExtractorConfig) -> list[Line]:
    """Remove page numbers and lines repeated at the top or bottom of many pages."""
    n_pages = len(heights)

    def in_margin(line: Line) -> bool:
        height = heights[line.page] or 792.0
        return line.y > height * (1 - cfg.margin_share) or line.y < height * cfg.margin_share

    def key(line: Line) -> str:
        return re.sub(r"\d+", "#", line.text.lower())

    pages_of: dict[str, set[int]] = defaultdict(set)
    for line in lines:
        if in_margin(line):
            pages_of[key(line)].add(line.page)
    threshold = max(2, math.ceil(cfg.running_head_share * n_pages))
    kept = []
    for line in lines:
        if in_margin(line) and (len(pages_of[key(line)]) >= threshold or re.fullmatch(r"[\d\s]+", line.text)):
            continue
        kept.append(line)
    return kept
