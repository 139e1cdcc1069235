"""The lines cut into regions at the headings (front matter, abstract, sections, references) and
each section built: heading, number, level (from the number, else from the heading's type size)
and its paragraphs of running text; captions met on the way are collected."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from qa_pipeline.extractors.cleanup import join_lines
from qa_pipeline.extractors.local.config import LocalExtractorConfig
from qa_pipeline.extractors.local.headings import split_number
from qa_pipeline.extractors.local.lines import Line
from qa_pipeline.extractors.local.paragraphs import is_prose, split_paragraphs
from qa_pipeline.extractors.local.patterns import ABSTRACT, ABSTRACT_PREFIX, CAPTION, KEYWORDS, REFERENCES
from qa_pipeline.paper import Section


@dataclass
class Regions:
    """A paper's lines sorted by the heading they fall under."""

    abstract: list[Line] = field(default_factory=list)
    sections: list[tuple[str, list[Line]]] = field(default_factory=list)  # (heading text, body lines)
    references: list[Line] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)


def cut_regions(
    lines: list[Line], headings: dict[int, tuple[int, str]], body: tuple[str, float], cfg: LocalExtractorConfig
) -> Regions:
    """Walk the lines, cutting them into regions at the headings.

    Before the first heading only an "Abstract:" prefixed paragraph is kept; an abstract ends at a
    keywords line; section text keeps body-sized lines only (footnotes, captions, tables and display
    maths are left out, captions collected). A paper with no structure at all becomes one untitled
    section of its body-sized lines.
    """
    out = Regions()
    region = "front"
    i = 0
    first_heading = min(headings) if headings else len(lines)
    while i < len(lines):
        line = lines[i]
        if i in headings:
            span, text = headings[i]
            i += span
            if ABSTRACT.match(text) and not out.abstract and region == "front":
                region = "abstract"
            elif REFERENCES.match(text):
                region = "references"
            else:
                region = "body"
                out.sections.append((text, []))
            continue
        i += 1
        if region == "front":
            match = ABSTRACT_PREFIX.match(line.text)
            if match and len(line.text) > match.end() + 20:
                region = "abstract"
                line = Line(**{**line.__dict__, "text": line.text[match.end() :]})
                out.abstract.append(line)
            continue
        if region == "abstract":
            if KEYWORDS.match(line.text):
                region = "front"
                continue
            if line.size >= 0.75 * body[1] and line.math_share <= 0.3:
                out.abstract.append(line)
        elif region == "references":
            out.references.append(line)
        else:
            if CAPTION.match(line.text) and abs(line.size - body[1]) > cfg.size_tolerance / 2:
                out.captions.append(line.text)
                continue
            if abs(line.size - body[1]) > cfg.size_tolerance or line.math_share > 0.3:
                continue  # footnotes, captions, tables, display maths
            out.sections[-1][1].append(line)
    if not out.abstract and not out.sections and first_heading == len(lines):
        # No structure found at all: keep every body-sized line as one untitled section.
        out.sections = [("", [ln for ln in lines if abs(ln.size - body[1]) <= cfg.size_tolerance])]
    return out


def build_sections(
    regions: Regions,
    lines: list[Line],
    headings: dict[int, tuple[int, str]],
    edges: dict[int, list[float]],
    vocabulary: Counter,
) -> list[Section]:
    """The :class:`Section` of every region section; captions found among the paragraphs are added
    to ``regions.captions``.

    A numbered heading's level is its depth ("2.1" -> 2, roman numerals 1); an unnumbered one's is
    the rank of its heading style by type size (at most 3).
    """
    heading_styles = sorted(
        {lines[j].style for j in headings if not (REFERENCES.match(headings[j][1]) or ABSTRACT.match(headings[j][1]))},
        key=lambda st: (-st[1], min(j for j in headings if lines[j].style == st)),
    )
    style_level = {st: rank + 1 for rank, st in enumerate(heading_styles)}
    heading_style_of = {headings[j][1]: lines[j].style for j in headings}

    out_sections: list[Section] = []
    for text, sec_lines in regions.sections:
        number, heading = split_number(text)
        heading = join_lines([heading], vocabulary)
        if number:
            level = number.count(".") + 1 if number[0].isdigit() else 1
        else:
            level = min(style_level.get(heading_style_of.get(text), 1), 3)
        paragraphs = []
        for para in split_paragraphs(sec_lines, edges):
            joined = join_lines([ln.text for ln in para], vocabulary)
            if CAPTION.match(joined):
                regions.captions.append(joined)
            elif is_prose(joined):
                paragraphs.append(joined)
        out_sections.append(Section(heading=heading, paragraphs=paragraphs, number=number, level=level))
    return out_sections
