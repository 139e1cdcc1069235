"""The local extractor: PDF -> Paper with pypdf only, no server.

pypdf gives the text of each page in content-stream order together with, for every text
run, its font, size and position (``visitor_text``). From those runs this module:

1. groups runs into lines (same baseline; superscripts stay on their line);
2. drops running heads, page numbers and rotated text (arXiv stamps);
3. finds the body style (the font and size with the most characters);
4. finds the title (the largest type on page 1), the abstract ("Abstract" line or prefix),
   headings (short lines set entirely in a style other than the body's, with body text
   after them; numbered headings such as "2.1 Overview" give their level), and the
   references (after a "References" heading, split by numbers or hanging indents);
5. splits section text into paragraphs (first-line indents and vertical gaps), leaves
   out footnotes, captions and table text (type smaller or larger than the body) and
   display maths, and cleans the text (NFKC, ligatures, words hyphenated at line ends).

It is a heuristic reader, not a layout model: GROBID is more accurate where it runs
(the benchmark compares the headings of both on the shared papers).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from qa_pipeline.extractors.base import ExtractionError
from qa_pipeline.extractors.cleanup import join_lines, normalise_text, word_counts
from qa_pipeline.paper import Paper, Reference, Section, paper_id_from_path

logger = logging.getLogger(__name__)

_MATH_FONT = re.compile(r"CMMI|CMSY|CMEX|MSBM|MSAM|Symbol|Math|CMR\d|rsfs|esint|wasy", re.IGNORECASE)
_NUMBERED = re.compile(r"^((?:\d{1,2}\.)*\d{1,2})\.?\s+(?=[A-Z])")
_ROMAN = re.compile(r"^([IVX]{1,4})\.\s+(?=[A-Z])")
_REFERENCES = re.compile(r"^(references|bibliography|literature cited|works cited|references and notes)$", re.I)
_ABSTRACT = re.compile(r"^(abstract|summary)$", re.I)
_ABSTRACT_PREFIX = re.compile(r"^(abstract|summary)\s*[.:\u2014\u2013-]\s*", re.I)
_KEYWORDS = re.compile(r"^(keywords|key words|index terms)\b", re.I)
_CAPTION = re.compile(r"^(fig\.?|figure|table|tab\.)\s*\d+[a-z]?\s*[:.|]?", re.I)
_NUMBERED_REF = re.compile(r"^\[?\d{1,3}[\].)]\s")
#: some Springer fonts (AdvTT) map "(" and ")" to "ð" and "Þ" in their text layer.
_ADVTT_PARENS = re.compile(r"ð([^ðÞ]{0,40})Þ")
_MARKER = re.compile(r"[\d,\-\u2013*\u2020\u2021\u2217\u00a7\u00b6\s]+")
_SENTENCE_END = re.compile(r"[.!?:][\"')\]\u201d]?$")


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


@dataclass
class LocalExtractorConfig:
    """Knobs of the local extractor (defaults fit journal and conference layouts)."""

    min_chars_per_page: int = 40  # below this on average the PDF has no usable text layer
    max_heading_words: int = 14
    size_tolerance: float = 0.6  # points a body line's size may differ from the body size
    running_head_share: float = 0.3  # a line on this share of pages (top/bottom) is a running head
    margin_share: float = 0.09  # top/bottom share of the page where running heads live


# ---------------------------------------------------------------------------------------
# Reading runs and lines


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


# ---------------------------------------------------------------------------------------
# Styles, title, headings


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
    if _CAPTION.match(text) or _KEYWORDS.match(text) or re.search(r"https?://|@|\bet al\b", text):
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
    return bool(_KEYWORDS.match(prev.text)) and prev.page == line.page and 0 < prev.y - line.y < 1.6 * prev.size


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
        if line.uniform and (_REFERENCES.match(text) or _ABSTRACT.match(text)):
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


# ---------------------------------------------------------------------------------------
# Paragraphs and references


def _left_edges(lines: list[Line]) -> dict[int, list[float]]:
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


def is_prose(text: str, min_words: int = 8, min_word_share: float = 0.4) -> bool:
    """True for running text; False for equations and table debris that share the body font
    ("S 1/4 cos θ A ffiffiffi A2 þ B2 p (2)"): too few tokens that are ordinary words."""
    tokens = text.split()
    if len(tokens) < min_words:
        return False
    words = sum(1 for t in tokens if re.fullmatch(r"[A-Za-z][a-z]{2,}[,.;:)]*", t) and not re.search(r"(ff?i){2}", t))
    return words / len(tokens) >= min_word_share


def _reference(entry: list[Line], vocabulary: Counter) -> Reference:
    raw = _NUMBERED_REF.sub("", join_lines([ln.text for ln in entry], vocabulary)).strip()
    years = re.findall(r"\b(?:19|20)\d\d\b", raw)
    return Reference(raw=raw, year=years[0] if years else "")


# ---------------------------------------------------------------------------------------
# The extractor


class LocalExtractor:
    """Extract a paper from a PDF's text layer with pypdf (no server, no OCR).

    Args:
        config: thresholds of the heuristics.
    """

    name = "local"

    def __init__(self, config: LocalExtractorConfig | None = None):
        self.config = config or LocalExtractorConfig()

    def _open(self, pdf_path: Path):
        from pypdf import PdfReader
        from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

        try:
            reader = PdfReader(pdf_path)
        except FileNotFoundError:
            raise ExtractionError(pdf_path, "no such file") from None
        except (PdfReadError, ValueError, OSError) as exc:
            raise ExtractionError(pdf_path, f"not a readable PDF ({exc})") from None
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except (DependencyError, NotImplementedError) as exc:
                raise ExtractionError(pdf_path, f"encrypted PDF; cannot decrypt it here ({exc})") from None
            except (FileNotDecryptedError, PdfReadError):
                ok = 0
            if not ok:
                raise ExtractionError(
                    pdf_path, "encrypted PDF that needs a password; decrypt it first (qpdf --decrypt)"
                )
        return reader

    def extract(self, pdf_path: str | os.PathLike) -> Paper:
        """Extract one PDF.

        Raises:
            ExtractionError: unreadable, encrypted or image-only PDF (no text layer).
        """
        pdf_path = Path(pdf_path)
        cfg = self.config
        reader = self._open(pdf_path)
        try:
            pages, heights = read_spans(reader)
        except Exception as exc:
            raise ExtractionError(pdf_path, f"cannot read the PDF's pages ({exc})") from None
        n_chars = sum(len(s.text.strip()) for spans in pages for s in spans)
        if not pages or n_chars < cfg.min_chars_per_page * len(pages):
            raise ExtractionError(
                pdf_path,
                f"no text layer ({n_chars} characters on {len(pages)} page(s)): an image-only or scanned PDF; "
                "run OCR first (e.g. ocrmypdf) or use GROBID",
            )
        lines = drop_running_heads(group_lines(pages), heights, cfg)
        body = body_style(lines)
        vocabulary = word_counts(ln.text for ln in lines)
        headings = find_headings(lines, body, cfg)
        edges = _left_edges([ln for ln in lines if abs(ln.size - body[1]) <= cfg.size_tolerance])
        meta = reader.metadata or {}
        title, title_lines = find_title(lines, body, str(meta.get("/Title") or ""))
        if title_lines:  # nothing up to the end of the title is a heading
            headings = {j: h for j, h in headings.items() if j > title_lines[-1]}
        abstract_at = [j for j, h in headings.items() if _ABSTRACT.match(h[1])]
        if abstract_at:  # nor anything between the title and the abstract (authors, affiliations)
            headings = {j: h for j, h in headings.items() if j >= abstract_at[0]}

        # Walk the lines, cutting them into regions at the headings.
        abstract_lines: list[Line] = []
        sections: list[tuple[str, list[Line]]] = []
        reference_lines: list[Line] = []
        captions: list[str] = []
        region = "front"
        i = 0
        first_heading = min(headings) if headings else len(lines)
        while i < len(lines):
            line = lines[i]
            if i in headings:
                span, text = headings[i]
                i += span
                if _ABSTRACT.match(text) and not abstract_lines and region == "front":
                    region = "abstract"
                elif _REFERENCES.match(text):
                    region = "references"
                else:
                    region = "body"
                    sections.append((text, []))
                continue
            i += 1
            if region == "front":
                match = _ABSTRACT_PREFIX.match(line.text)
                if match and len(line.text) > match.end() + 20:
                    region = "abstract"
                    line = Line(**{**line.__dict__, "text": line.text[match.end() :]})
                    abstract_lines.append(line)
                continue
            if region == "abstract":
                if _KEYWORDS.match(line.text):
                    region = "front"
                    continue
                if line.size >= 0.75 * body[1] and line.math_share <= 0.3:
                    abstract_lines.append(line)
            elif region == "references":
                reference_lines.append(line)
            else:
                if _CAPTION.match(line.text) and abs(line.size - body[1]) > cfg.size_tolerance / 2:
                    captions.append(line.text)
                    continue
                if abs(line.size - body[1]) > cfg.size_tolerance or line.math_share > 0.3:
                    continue  # footnotes, captions, tables, display maths
                sections[-1][1].append(line)
        if not abstract_lines and not sections and first_heading == len(lines):
            # No structure found at all: keep every body-sized line as one untitled section.
            sections = [("", [ln for ln in lines if abs(ln.size - body[1]) <= cfg.size_tolerance])]

        abstract = join_lines([ln.text for ln in abstract_lines], vocabulary)
        heading_styles = sorted(
            {
                lines[j].style
                for j in headings
                if not (_REFERENCES.match(headings[j][1]) or _ABSTRACT.match(headings[j][1]))
            },
            key=lambda st: (-st[1], min(j for j in headings if lines[j].style == st)),
        )
        style_level = {st: rank + 1 for rank, st in enumerate(heading_styles)}
        heading_style_of = {headings[j][1]: lines[j].style for j in headings}

        out_sections: list[Section] = []
        for text, sec_lines in sections:
            number, heading = split_number(text)
            heading = join_lines([heading], vocabulary)
            if number:
                level = number.count(".") + 1 if number[0].isdigit() else 1
            else:
                level = min(style_level.get(heading_style_of.get(text), 1), 3)
            paragraphs = []
            for para in split_paragraphs(sec_lines, edges):
                joined = join_lines([ln.text for ln in para], vocabulary)
                if _CAPTION.match(joined):
                    captions.append(joined)
                elif is_prose(joined):
                    paragraphs.append(joined)
            out_sections.append(Section(heading=heading, paragraphs=paragraphs, number=number, level=level))
        references = [_reference(e, vocabulary) for e in split_references(reference_lines)]
        references = [r for r in references if len(r.raw) >= 15]

        authors = [a.strip() for a in re.split(r";|,| and ", str(meta.get("/Author") or "")) if a.strip()]
        return Paper(
            paper_id=paper_id_from_path(pdf_path),
            title=title,
            abstract=abstract,
            sections=out_sections,
            references=references,
            authors=authors,
            source=str(pdf_path),
            extractor=self.name,
            metadata={"pages": len(pages), "captions": captions, "body_font": body[0], "body_size": body[1]},
        )
